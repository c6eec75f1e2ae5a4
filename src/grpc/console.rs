//! The web console (`web/`), served on the hub's own port beside gRPC and gRPC-Web. gRPC and
//! gRPC-Web are always POST; a GET or HEAD is a browser asking for the console's files:
//!
//! - `/config.json`: what the console needs to know of this deployment (the base map's tiles);
//! - `/assets/…`: the built, content-hashed files (cached for a year);
//! - anything else: the file if it exists, else `index.html` (never cached, so a new build is
//!   picked up at once).
//!
//! The console holds no data and no secret: it calls the same RPCs (over gRPC-Web) as every
//! other client, with the token the user pasted, and the server decides what it may see.

use std::path::PathBuf;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use http::header::{self, HeaderValue};
use http::{Method, StatusCode};
use tonic::body::Body;
use tower::{Layer, Service, ServiceExt};
use tower_http::services::{ServeDir, ServeFile};

use crate::config::ConsoleSettings;

/// What the console's pages may load: their own origin (scripts, styles, the API), images and
/// tiles from the configured map server, and MapLibre's workers from blobs.
fn security_policy(tiles: Option<&str>) -> String {
    let tile_origin = tiles
        .and_then(|t| {
            let rest = t.split_once("://")?.1;
            let host = rest.split('/').next()?;
            // A template's host may itself hold a {s} sub-domain placeholder.
            let host = host.replace("{s}", "*");
            Some(format!(" {}://{host}", t.split_once("://")?.0))
        })
        .unwrap_or_default();
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
         img-src 'self' data: blob:{tile_origin}; connect-src 'self'{tile_origin}; \
         worker-src 'self' blob:; child-src blob:; frame-ancestors 'none'; base-uri 'none'; \
         form-action 'none'"
    )
}

/// The layer serving the console in front of the RPCs.
#[derive(Clone)]
pub struct ConsoleLayer {
    inner: Arc<Console>,
}

struct Console {
    dir: Option<PathBuf>,
    config: String,
    policy: HeaderValue,
}

impl ConsoleLayer {
    /// A layer serving `settings.dir` (when set).
    pub fn new(settings: &ConsoleSettings) -> ConsoleLayer {
        let config = serde_json::json!({ "map_tiles": settings.map_tiles }).to_string();
        let policy = HeaderValue::from_str(&security_policy(settings.map_tiles.as_deref()))
            .unwrap_or_else(|_| HeaderValue::from_static("default-src 'self'"));
        ConsoleLayer {
            inner: Arc::new(Console {
                dir: settings.dir.clone(),
                config,
                policy,
            }),
        }
    }
}

impl<S> Layer<S> for ConsoleLayer {
    type Service = ConsoleService<S>;
    fn layer(&self, inner: S) -> ConsoleService<S> {
        ConsoleService {
            inner,
            console: self.inner.clone(),
        }
    }
}

/// The service produced by [`ConsoleLayer`].
#[derive(Clone)]
pub struct ConsoleService<S> {
    inner: S,
    console: Arc<Console>,
}

impl<S> Service<http::Request<Body>> for ConsoleService<S>
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

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return Box::pin(self.inner.call(req));
        }
        let console = self.console.clone();
        Box::pin(async move { Ok(serve(&console, req).await) })
    }
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> http::Response<Body> {
    let mut r = http::Response::new(Body::new(http_body_util::Full::new(bytes::Bytes::from(
        body,
    ))));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

async fn serve(console: &Console, req: http::Request<Body>) -> http::Response<Body> {
    let path = req.uri().path().to_owned();
    let mut resp = if path == "/config.json" {
        text(StatusCode::OK, "application/json", console.config.clone())
    } else if let Some(dir) = &console.dir {
        let index = dir.join("index.html");
        let files = ServeDir::new(dir)
            .precompressed_gzip()
            .fallback(ServeFile::new(index));
        match files.oneshot(req).await {
            Ok(r) => r.map(Body::new),
            // ServeDir's error type is Infallible.
            Err(never) => match never {},
        }
    } else {
        text(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "This hub serves no console: build it (cd web && npm ci && npm run build, or \
             scripts/serve) or pass --console-dir.\n"
                .to_owned(),
        )
    };
    let cache = if path.starts_with("/assets/") && resp.status() == StatusCode::OK {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(header::CONTENT_SECURITY_POLICY, console.policy.clone());
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_admits_the_tile_server_and_nothing_else() {
        let p = security_policy(Some("https://t{s}.tianditu.gov.cn/img_w/wmts?x={x}"));
        assert!(p.contains("img-src 'self' data: blob: https://t*.tianditu.gov.cn;"));
        assert!(p.contains("connect-src 'self' https://t*.tianditu.gov.cn;"));
        let offline = security_policy(None);
        assert!(offline.contains("connect-src 'self';"));
        assert!(offline.contains("script-src 'self';"));
    }
}
