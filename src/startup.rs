//! Builds the application, binds, serves and shuts down.
//!
//! Start-up order: the listener is bound and the health service answers NOT_SERVING first;
//! then the database is started (embedded) or reached, migrated, and only then does health
//! turn SERVING. A watcher flips health to NOT_SERVING while the database is unreachable.
//! On SIGTERM/SIGINT health turns NOT_SERVING at once, in-flight RPCs get a grace period,
//! and after the hard timeout the server is dropped regardless (hyper may otherwise wait
//! for idle connections indefinitely).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::transport::Server;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::auth::jwt::Verifier;
use crate::config::Settings;
use crate::crypto::{PageTokens, PiiCipher};
use crate::database::Database;
use crate::grpc::audit_service::AuditApi;
use crate::grpc::case_service::CaseApi;
use crate::grpc::catalog_service::CatalogApi;
use crate::grpc::hotline_service::HotlineApi;
use crate::grpc::mediation_service::MediationApi;
use crate::grpc::middleware::RpcLayer;
use crate::grpc::pb::audit_service_server::AuditServiceServer;
use crate::grpc::pb::case_service_server::CaseServiceServer;
use crate::grpc::pb::catalog_service_server::CatalogServiceServer;
use crate::grpc::pb::hotline_service_server::HotlineServiceServer;
use crate::grpc::pb::mediation_service_server::MediationServiceServer;
use crate::grpc::pb::region_service_server::RegionServiceServer;
use crate::grpc::pb::report_service_server::ReportServiceServer;
use crate::grpc::pb::service_request_service_server::ServiceRequestServiceServer;
use crate::grpc::region_service::RegionApi;
use crate::grpc::report_service::ReportApi;
use crate::grpc::service_request_service::ServiceRequestApi;
use crate::grpc::{AppState, FILE_DESCRIPTOR_SET};
use crate::store::{self, DbUrl};

/// Services whose health is reported (besides the overall "").
pub const SERVICES: [&str; 8] = [
    "gridhub.v1.RegionService",
    "gridhub.v1.AuditService",
    "gridhub.v1.ReportService",
    "gridhub.v1.CaseService",
    "gridhub.v1.CatalogService",
    "gridhub.v1.ServiceRequestService",
    "gridhub.v1.HotlineService",
    "gridhub.v1.MediationService",
];

/// A running server.
pub struct App {
    /// The bound address (useful with port 0).
    pub addr: SocketAddr,
    /// Shared state, for in-process tools and tests.
    pub state: Arc<AppState>,
    health: HealthReporter,
    shutdown: watch::Sender<bool>,
    server: JoinHandle<Result<(), tonic::transport::Error>>,
    watcher: JoinHandle<()>,
    janitor: JoinHandle<()>,
    ticker: JoinHandle<()>,
    /// Seals committed audit events into the chain.
    sealer: JoinHandle<()>,
    /// Pushes the 12345 updates (when an endpoint is configured).
    outbox: Option<JoinHandle<()>>,
    hotline: crate::config::HotlineSettings,
    feed_task: JoinHandle<()>,
    shutdown_timeout: Duration,
    idempotency_retention: Duration,
}

/// Forgets idempotency keys older than `retention`, hourly. Safe with several replicas: the
/// DELETE is idempotent.
async fn expire_idempotency_keys(
    pool: store::Pool,
    retention: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let days = retention
        .as_secs()
        .div_ceil(86_400)
        .clamp(1, i32::MAX as u64) as i32;
    loop {
        if let Ok(mut conn) = pool.get().await {
            match store::idempotency::expire(&mut conn, days).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(expired = n, "idempotency keys expired"),
                Err(e) => tracing::warn!(error = %e, "expiring idempotency keys failed"),
            }
        }
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
        }
    }
}

async fn set_health(h: &HealthReporter, status: ServingStatus) {
    h.set_service_status("", status).await;
    for s in SERVICES {
        h.set_service_status(s, status).await;
    }
}

impl App {
    /// Binds `settings.listen` and serves with health NOT_SERVING; call [`App::ready`] once
    /// the database at `url` is migrated.
    pub async fn bind(settings: &Settings, url: &DbUrl) -> anyhow::Result<App> {
        let pool = store::pool(url, &settings.db)?;
        let replica = match &settings.db.read_url {
            Some(u) => Some(store::replica_pool(&DbUrl::new(u.clone()), &settings.db)?),
            None => None,
        };
        let (shutdown, mut shutdown_rx) = watch::channel(false);
        let (feed, feed_task) =
            crate::grpc::feed::Feed::start(url.clone(), pool.clone(), shutdown.subscribe());
        let work_orders = crate::app::group::Group::start(pool.clone());
        let state = Arc::new(AppState {
            app: crate::app::Context {
                pool,
                pii: PiiCipher::with_keys(
                    settings.pii_key_id,
                    &settings.pii_key,
                    &settings.pii_previous_keys,
                ),
                blobs: Arc::new(crate::attachments::FsStore::new(
                    settings.data_dir.join("attachments"),
                )),
                attachment_max_bytes: settings.attachment_max_bytes,
                idempotency_retention: settings.idempotency_retention,
                grids: Arc::default(),
                workflow: settings.workflow.clone(),
                anchor: Arc::new(crate::anchor::Anchor::new(
                    &settings.data_dir,
                    &settings.pii_key,
                )),
                work_orders,
                reads: crate::app::reads::Reads::new(replica, settings.db.max_replica_lag),
            },
            pages: PageTokens::new(&settings.pii_key),
            feed,
        });
        let verifier = Verifier::new(&settings.jwt_key, &settings.jwt_audience)?;
        let listener = TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("binding {}", settings.listen))?;
        let addr = listener.local_addr()?;
        let (health, health_service) = tonic_health::server::health_reporter();
        set_health(&health, ServingStatus::NotServing).await;
        let reflection_v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            // google.rpc's error details (BadRequest …), so a client that only uses
            // reflection (grpcurl) shows the field violations.
            .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
            .build_v1()?;
        let reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            // google.rpc's error details (BadRequest …), so a client that only uses
            // reflection (grpcurl) shows the field violations.
            .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()?;
        let l = &settings.limits;
        let max = l.max_message_bytes;
        let router = Server::builder()
            .accept_http1(true)
            .timeout(l.rpc_timeout)
            .max_concurrent_streams(l.max_concurrent_streams)
            .http2_keepalive_interval(Some(l.keepalive_interval))
            .http2_keepalive_timeout(Some(l.keepalive_timeout))
            .layer(crate::grpc::console::ConsoleLayer::new(&settings.console))
            .layer(tonic_web::GrpcWebLayer::new())
            .layer(RpcLayer::new(verifier, l.concurrency_limit))
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(
                RegionServiceServer::new(RegionApi {
                    state: state.clone(),
                })
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
            )
            .add_service(
                AuditServiceServer::new(AuditApi {
                    state: state.clone(),
                })
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
            )
            .add_service(
                ReportServiceServer::new(ReportApi {
                    state: state.clone(),
                    intake: crate::intake::Intake::start(
                        state.app.pool.clone(),
                        state.app.grids.clone(),
                        crate::app::reports::retention(&state.app),
                    ),
                })
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
            )
            .add_service(
                CaseServiceServer::new(CaseApi {
                    state: state.clone(),
                })
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
            )
            .add_service(
                CatalogServiceServer::new(CatalogApi {
                    state: state.clone(),
                })
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
            )
            .add_service(
                ServiceRequestServiceServer::new(ServiceRequestApi {
                    state: state.clone(),
                })
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
            )
            .add_service(
                HotlineServiceServer::new(HotlineApi {
                    state: state.clone(),
                })
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
            )
            .add_service(
                crate::grpc::pb::session_service_server::SessionServiceServer::new(
                    crate::grpc::session_service::SessionApi,
                ),
            )
            .add_service(
                MediationServiceServer::new(MediationApi {
                    state: state.clone(),
                })
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
            );
        let server = tokio::spawn(
            router.serve_with_incoming_shutdown(
                // Accepted sockets get TCP_NODELAY: without it small responses wait ~40 ms for
                // delayed ACKs (measured: one client's SubmitReport p50 went from 44 ms to a few).
                tonic::transport::server::TcpIncoming::from(listener)
                    .with_nodelay(Some(true))
                    .with_keepalive(Some(Duration::from_secs(60))),
                async move {
                    let _ = shutdown_rx.wait_for(|s| *s).await;
                },
            ),
        );
        Ok(App {
            addr,
            state,
            health,
            shutdown,
            server,
            watcher: tokio::spawn(async {}),
            janitor: tokio::spawn(async {}),
            ticker: tokio::spawn(async {}),
            sealer: tokio::spawn(async {}),
            outbox: None,
            hotline: settings.hotline.clone(),
            feed_task,
            shutdown_timeout: l.shutdown_timeout,
            idempotency_retention: settings.idempotency_retention,
        })
    }

    /// Marks the server SERVING, starts watching the database and expiring old
    /// idempotency keys.
    pub async fn ready(&mut self) {
        self.sealer = tokio::spawn(crate::sealer::Sealer::run(
            self.state.app.pool.clone(),
            self.state.app.anchor.clone(),
            self.shutdown.subscribe(),
        ));
        self.ticker = crate::sla::Ticker {
            pool: self.state.app.pool.clone(),
            settings: self.state.app.workflow.clone(),
            pii: self.state.app.pii.clone(),
        }
        .spawn(self.shutdown.subscribe());
        match crate::outbox::Deliverer::new(self.state.app.pool.clone(), self.hotline.clone()) {
            Ok(Some(d)) => self.outbox = Some(d.spawn(self.shutdown.subscribe())),
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "the 12345 outbox cannot deliver"),
        }
        self.janitor = tokio::spawn(expire_idempotency_keys(
            self.state.app.pool.clone(),
            self.idempotency_retention,
            self.shutdown.subscribe(),
        ));
        set_health(&self.health, ServingStatus::Serving).await;
        let (pool, health, mut stop) = (
            self.state.app.pool.clone(),
            self.health.clone(),
            self.shutdown.subscribe(),
        );
        self.watcher = tokio::spawn(async move {
            let mut serving = true;
            loop {
                tokio::select! {
                    _ = stop.wait_for(|s| *s) => return,
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                }
                let ok = tokio::time::timeout(Duration::from_secs(2), store::ping(&pool))
                    .await
                    .map(|r| r.is_ok())
                    .unwrap_or(false);
                if *stop.borrow() {
                    return;
                }
                if ok != serving {
                    serving = ok;
                    tracing::warn!(database_reachable = ok, "health changed");
                    set_health(
                        &health,
                        if ok {
                            ServingStatus::Serving
                        } else {
                            ServingStatus::NotServing
                        },
                    )
                    .await;
                }
            }
        });
    }

    /// Health NOT_SERVING at once, then graceful shutdown bounded by the hard timeout.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        set_health(&self.health, ServingStatus::NotServing).await;
        self.watcher.abort();
        self.janitor.abort();
        self.ticker.abort();
        if let Some(outbox) = self.outbox {
            // It finishes the delivery under way (bounded by its HTTP timeout) and stops.
            let _ =
                tokio::time::timeout(self.hotline.timeout + Duration::from_secs(1), outbox).await;
        }
        self.feed_task.abort();
        // Let health checkers observe NOT_SERVING before the listener closes.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut server = self.server;
        match tokio::time::timeout(self.shutdown_timeout, &mut server).await {
            Ok(_) => tracing::info!("server stopped"),
            Err(_) => {
                tracing::warn!(timeout = ?self.shutdown_timeout, "graceful shutdown timed out; dropping connections");
                server.abort();
            }
        }
        // What committed last is sealed now rather than at the next start.
        let _ = self.sealer.await;
        let last = async {
            let mut conn = self.state.app.pool.get().await.ok()?;
            store::audit::seal(&mut conn).await.ok()?;
            self.state.app.anchor.record(&mut conn).await.ok()
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), last).await;
        self.state.app.pool.close();
    }
}

/// `gridhub serve`: run until SIGTERM/SIGINT. `before_ready` runs once the database is
/// migrated, before the server turns SERVING (the CLI's `--demo` loads the demo there).
pub async fn serve<F, Fut>(settings: Settings, before_ready: F) -> anyhow::Result<()>
where
    F: FnOnce(Arc<AppState>, Settings, SocketAddr) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    // Bind first: health answers NOT_SERVING while the database starts and migrates.
    let mut db = Database::prepare(&settings)?;
    let mut app = App::bind(&settings, &db.url).await?;
    tracing::info!(addr = %app.addr, "listening; NOT_SERVING until the database is ready");
    let started = async {
        db.launch(true).await?;
        db.migrate().await?;
        before_ready(app.state.clone(), settings.clone(), app.addr).await?;
        anyhow::Ok(())
    }
    .await;
    if let Err(e) = started {
        app.shutdown().await;
        db.close();
        return Err(e);
    }
    app.ready().await;
    tracing::info!(addr = %app.addr, "gridhub serving");
    wait_for_signal().await;
    tracing::info!("shutting down");
    app.shutdown().await;
    db.close();
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
