//! Telemetry through the real binary: JSON logs with a span per RPC and no personal data, and
//! traces and metrics exported over OTLP to a real OTLP/gRPC receiver.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gridhub::crypto::SecretKey;
use gridhub::grpc::pb;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;

use crate::helpers::FreshDb;

/// A span's name and its attributes as text.
type Span = (String, Vec<(String, String)>);

#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<Span>>>,
    metrics: Arc<Mutex<Vec<String>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        r: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.spans.lock().unwrap();
        for rs in r.into_inner().resource_spans {
            for ss in rs.scope_spans {
                for s in ss.spans {
                    let attrs = s
                        .attributes
                        .into_iter()
                        .map(|kv| {
                            let v = match kv.value.and_then(|v| v.value) {
                                Some(Value::StringValue(s)) => s,
                                Some(Value::IntValue(i)) => i.to_string(),
                                Some(other) => format!("{other:?}"),
                                None => String::new(),
                            };
                            (kv.key, v)
                        })
                        .collect();
                    spans.push((s.name, attrs));
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for Collector {
    async fn export(
        &self,
        r: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        let mut names = self.metrics.lock().unwrap();
        for rm in r.into_inner().resource_metrics {
            for sm in rm.scope_metrics {
                names.extend(sm.metrics.into_iter().map(|m| m.name));
            }
        }
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

#[tokio::test]
async fn json_logs_and_otlp_traces_and_metrics_without_personal_data() {
    let collector = Collector::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let otlp = listener.local_addr().unwrap();
    let c = collector.clone();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(c.clone()))
            .add_service(MetricsServiceServer::new(c))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );

    let db = FreshDb::create().await;
    let key = SecretKey::generate().to_base64();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let logs = tempfile::NamedTempFile::new().unwrap();
    let mut server = tokio::process::Command::new(env!("CARGO_BIN_EXE_gridhub"))
        .args([
            "serve",
            "--log-format",
            "json",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .env("DATABASE_URL", db.url.expose())
        .env("GRIDHUB_JWT_SECRET", &key)
        .env("GRIDHUB_PII_KEY", SecretKey::generate().to_base64())
        .env("GRIDHUB_DATA_DIR", tempfile::tempdir().unwrap().path())
        .env("RUST_LOG", "info,gridhub=debug")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{otlp}"))
        .env("OTEL_METRIC_EXPORT_INTERVAL", "300")
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .stdout(Stdio::null())
        .stderr(logs.reopen().unwrap())
        .spawn()
        .unwrap();

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gridhub"))
        .args([
            "token", "issue", "--sub", "op-7", "--roles", "admin", "--region", "*",
        ])
        .env("GRIDHUB_JWT_SECRET", &key)
        .output()
        .unwrap();
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let deadline = Instant::now() + Duration::from_secs(60);
    let channel = loop {
        if let Ok(ch) = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
            .unwrap()
            .connect()
            .await
        {
            break ch;
        }
        assert!(Instant::now() < deadline, "server did not start");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let header: tonic::metadata::MetadataValue<_> = format!("Bearer {token}").parse().unwrap();
    let mut c = pb::region_service_client::RegionServiceClient::with_interceptor(
        channel,
        move |mut r: tonic::Request<()>| {
            r.metadata_mut().insert("authorization", header.clone());
            Ok(r)
        },
    );
    let records: Vec<pb::RegionRecord> = [
        ("50", "", 1),
        ("5001", "50", 2),
        ("500110", "5001", 3),
        ("500110111", "500110", 4),
        ("500110111201", "500110111", 5),
    ]
    .into_iter()
    .map(|(code, parent, level)| pb::RegionRecord {
        code: code.into(),
        name: format!("区{code}"),
        level,
        parent_code: parent.into(),
        ..Default::default()
    })
    .collect();
    // Until health says SERVING, RPCs may race the migrations; retry the first one briefly.
    let mut ok = false;
    for _ in 0..50 {
        if c.import_regions(tokio_stream::iter(records.clone()))
            .await
            .is_ok()
        {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(ok);
    let w = |phone: &str| pb::UpsertWorkerRequest {
        worker: Some(pb::Worker {
            worker_id: "W-T".into(),
            name: "王芳".into(),
            phone: phone.into(),
            region_code: "500110111201".into(),
            active: true,
            ..Default::default()
        }),
        request_id: String::new(),
    };
    c.upsert_worker(w("13912345678")).await.unwrap();
    c.upsert_worker(w("1391234567x")).await.unwrap_err();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &server.id().unwrap().to_string()])
        .status();
    assert!(server.wait().await.unwrap().success());

    let text = std::fs::read_to_string(logs.path()).unwrap();
    assert!(
        !text.contains("13912345678") && !text.contains("1391234567x"),
        "personal data in logs:\n{text}"
    );
    let lines: Vec<serde_json::Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let rpc_lines: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["span"]["method"] == "/gridhub.v1.RegionService/UpsertWorker")
        .collect();
    assert_eq!(rpc_lines.len(), 2, "{text}");
    assert!(
        rpc_lines
            .iter()
            .all(|l| l["span"]["principal"] == "op-7" && l["span"]["region"] == "*")
    );
    assert!(
        rpc_lines.iter().any(|l| l["fields"]["code"] == 3),
        "the failed call logs INVALID_ARGUMENT: {text}"
    );

    let spans = collector.spans.lock().unwrap().clone();
    let upserts: Vec<_> = spans
        .iter()
        .filter(|(name, attrs)| {
            name == "rpc"
                && attrs
                    .iter()
                    .any(|(k, v)| k == "method" && v == "/gridhub.v1.RegionService/UpsertWorker")
        })
        .collect();
    assert_eq!(upserts.len(), 2, "{spans:?}");
    assert!(
        upserts
            .iter()
            .all(|(_, attrs)| attrs.iter().any(|(k, v)| k == "principal" && v == "op-7"))
    );
    assert!(
        spans
            .iter()
            .all(|(_, attrs)| attrs.iter().all(|(_, v)| !v.contains("1391234567")))
    );
    let metrics = collector.metrics.lock().unwrap().clone();
    assert!(
        metrics.iter().any(|m| m == "rpc.server.requests"),
        "{metrics:?}"
    );
    assert!(
        metrics.iter().any(|m| m == "rpc.server.duration"),
        "{metrics:?}"
    );
}
