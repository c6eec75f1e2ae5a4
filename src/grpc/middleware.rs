//! The layer every request passes through before any handler:
//!
//! 1. looks the method up in [`crate::auth::policy`] (no rule → PERMISSION_DENIED);
//! 2. authenticates the bearer token (→ UNAUTHENTICATED) and checks the caller's roles
//!    (→ PERMISSION_DENIED), then hands the [`Principal`] to the handler in the extensions;
//! 3. sheds load: beyond the configured number of RPCs in flight, new ones get UNAVAILABLE
//!    at once instead of queueing without bound;
//! 4. opens the RPC's span (method, principal, region, code, latency; never personal data)
//!    and records request metrics.

use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use futures::future::BoxFuture;
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram};
use tokio::sync::Semaphore;
use tonic::Status;
use tonic::body::Body;
use tower::{Layer, Service};
use tracing::Instrument;

use crate::auth::jwt::Verifier;
use crate::auth::policy::{self, Access};
use crate::domain::principal::Principal;

/// Configuration of the middleware.
#[derive(Clone)]
pub struct RpcLayer {
    verifier: Arc<Verifier>,
    in_flight: Arc<Semaphore>,
}

impl RpcLayer {
    /// A layer verifying with `verifier` and allowing `concurrency_limit` RPCs in flight.
    pub fn new(verifier: Verifier, concurrency_limit: usize) -> RpcLayer {
        RpcLayer {
            verifier: Arc::new(verifier),
            in_flight: Arc::new(Semaphore::new(concurrency_limit)),
        }
    }
}

impl<S> Layer<S> for RpcLayer {
    type Service = RpcService<S>;
    fn layer(&self, inner: S) -> RpcService<S> {
        RpcService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service produced by [`RpcLayer`].
#[derive(Clone)]
pub struct RpcService<S> {
    inner: S,
    layer: RpcLayer,
}

struct Metrics {
    requests: Counter<u64>,
    latency: Histogram<f64>,
}

fn metrics() -> &'static Metrics {
    static M: OnceLock<Metrics> = OnceLock::new();
    M.get_or_init(|| {
        let meter = opentelemetry::global::meter("gridhub");
        Metrics {
            requests: meter
                .u64_counter("rpc.server.requests")
                .with_description("RPCs handled, by method and code")
                .build(),
            latency: meter
                .f64_histogram("rpc.server.duration")
                .with_unit("ms")
                .with_description("RPC latency until response headers, by method and code")
                .build(),
        }
    })
}

fn deny(status: Status) -> http::Response<Body> {
    status.into_http()
}

/// What the layer decided before calling the handler.
enum Gate {
    Public,
    Allowed(Principal),
    Refused(Status),
}

impl<S> RpcService<S> {
    fn gate(&self, req: &http::Request<Body>) -> Gate {
        let path = req.uri().path();
        let Some(access) = policy::access(path) else {
            return Gate::Refused(Status::permission_denied(format!(
                "no access rule for {path}"
            )));
        };
        if access == Access::Public {
            return Gate::Public;
        }
        let header = req
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let principal = match self.layer.verifier.verify_header(header) {
            Ok(p) => p,
            Err(e) => return Gate::Refused(Status::unauthenticated(e.to_string())),
        };
        match access {
            Access::Roles(roles) if !principal.has_any(roles) => {
                let need: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
                Gate::Refused(Status::permission_denied(format!(
                    "{path} needs one of the roles {}",
                    need.join(", ")
                )))
            }
            _ => Gate::Allowed(principal),
        }
    }
}

impl<S> Service<http::Request<Body>> for RpcService<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<Body>) -> Self::Future {
        // The clone that was driven to readiness serves this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let method = req.uri().path().to_owned();
        let started = Instant::now();
        let gate = self.gate(&req);
        let permit = match &gate {
            Gate::Public => None,
            _ => self
                .layer
                .in_flight
                .clone()
                .try_acquire_owned()
                .ok()
                .map(Some)
                .unwrap_or(None),
        };
        let overloaded = !matches!(gate, Gate::Public) && permit.is_none();
        let (principal, region) = match &gate {
            Gate::Allowed(p) => (p.sub.clone(), p.scope.to_string()),
            _ => (String::new(), String::new()),
        };
        let span = tracing::info_span!("rpc", %method, %principal, %region, code = tracing::field::Empty, latency_ms = tracing::field::Empty);
        Box::pin(
            async move {
                let result = match gate {
                    Gate::Refused(status) => Ok(deny(status)),
                    _ if overloaded => Ok(deny(Status::unavailable(
                        "server overloaded; retry with backoff",
                    ))),
                    Gate::Public => inner.call(req).await,
                    Gate::Allowed(p) => {
                        req.extensions_mut().insert(p);
                        inner.call(req).await
                    }
                };
                drop(permit);
                let code = match &result {
                    Ok(resp) => resp
                        .headers()
                        .get("grpc-status")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|s| s.parse::<i32>().ok())
                        .unwrap_or(0),
                    Err(_) => 2,
                };
                let ms = started.elapsed().as_secs_f64() * 1000.0;
                let span = tracing::Span::current();
                span.record("code", code);
                span.record("latency_ms", ms);
                let attrs = [
                    KeyValue::new("rpc.method", method.clone()),
                    KeyValue::new("rpc.grpc.status_code", code as i64),
                ];
                metrics().requests.add(1, &attrs);
                metrics().latency.record(ms, &attrs);
                if code == 0 {
                    tracing::debug!("rpc finished");
                } else {
                    tracing::info!(code, "rpc finished with error");
                }
                result
            }
            .instrument(span),
        )
    }
}
