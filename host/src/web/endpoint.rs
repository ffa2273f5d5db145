//! The service's HTTP endpoint, routed by axum: `/metrics` (OpenMetrics), `/healthz` (the process
//! is alive), `/readyz` (the last pass that did not fail is younger than two intervals), the status
//! page `/` and its actions (`POST /login`, `/approve`, `/run`). Every route also answers below the
//! hub proxy's prefix (`/services/grouper-sync/metrics`). Connections are served by hyper with a
//! deadline per connection and a graceful shutdown.

use crate::web::metrics::Metrics;
use crate::web::ui::Answer;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::{StatusCode, Uri};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The largest form body read (a plan name and a CSRF token are far smaller).
const MAX_FORM_BYTES: usize = 16 << 10;

/// A client that never finishes its exchange does not hold a connection longer than this.
const CONNECTION_DEADLINE: Duration = Duration::from_secs(30);

/// What the status page reads: the pass history and what the service knows of itself.
pub struct Board {
    pub history: crate::store::history::RecentPasses,
    pub context: Mutex<crate::web::status_page::Context>,
    pub ui: crate::web::ui::Ui,
    /// The path the hub's proxy puts in front (`JUPYTERHUB_SERVICE_PREFIX`), if any.
    pub prefix: Option<String>,
}

#[derive(Clone)]
struct Served {
    metrics: Arc<Metrics>,
    board: Arc<Board>,
    sync_every: Duration,
}

/// Every route, at the root and below the hub proxy's prefix.
pub fn router(metrics: Arc<Metrics>, board: Arc<Board>, sync_every: Duration) -> Router {
    let prefix = board
        .prefix
        .as_deref()
        .map(|p| p.trim_end_matches('/').to_string())
        .filter(|p| !p.is_empty());
    let routes = Router::new()
        .route("/", get(page))
        .route("/metrics", get(openmetrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/login", post(action))
        .route("/approve", post(action))
        .route("/run", post(action));
    let routes = match prefix {
        // `nest` serves the prefix itself; the proxy's own form of it ends with a slash
        Some(p) => Router::new()
            .route(&format!("{p}/"), get(page))
            .nest(&p, routes.clone())
            .merge(routes),
        None => routes,
    };
    routes
        .layer(DefaultBodyLimit::max(MAX_FORM_BYTES))
        .with_state(Served {
            metrics,
            board,
            sync_every,
        })
}

async fn openmetrics(State(s): State<Served>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, OPENMETRICS)], s.metrics.render())
}

async fn readyz(State(s): State<Served>) -> (StatusCode, &'static str) {
    if s.metrics.ready(s.sync_every) {
        (StatusCode::OK, "ready\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "no successful pass in the last two intervals\n",
        )
    }
}

fn header(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

async fn page(State(s): State<Served>, uri: Uri, headers: HeaderMap) -> impl IntoResponse {
    let auth = s.board.ui.auth(
        header(&headers, header::COOKIE),
        header(&headers, header::AUTHORIZATION),
    );
    let passes = s.board.history.get();
    let context = s
        .board
        .context
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    // the page holds CSRF tokens: never cached, never framed
    (
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::CONTENT_SECURITY_POLICY, "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"),
        ],
        Html(crate::web::status_page::render(
            &passes,
            &context,
            &auth,
            crate::web::ui::Notice::from_query(uri.query()).as_ref(),
        )),
    )
}

/// `POST /login`, `/approve`, `/run`; the path is the one below the prefix.
async fn action(State(s): State<Served>, uri: Uri, headers: HeaderMap, form: Bytes) -> Response {
    let request = crate::web::ui::Request {
        method: "POST",
        path: uri.path(),
        cookie: header(&headers, header::COOKIE),
        authorization: header(&headers, header::AUTHORIZATION),
        form: form_urlencoded::parse(&form).into_owned().collect(),
    };
    match s.board.ui.handle(&request) {
        Some(answer) => answer.into_response(),
        None => StatusCode::METHOD_NOT_ALLOWED.into_response(),
    }
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, self.body).into_response();
        for (name, value) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&value) {
                response.headers_mut().insert(name, v);
            }
        }
        response
    }
}

pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}

/// Connections served at once; one more waits in the listen queue until a slot frees.
pub const MAX_CONNECTIONS: usize = 64;

/// After an accept error (out of file descriptors, most likely) the loop waits this long.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(500);

/// Serves `router` until `shutdown` turns true; connections in progress then finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: watch::Receiver<bool>,
) {
    serve_at_most(listener, router, shutdown, MAX_CONNECTIONS).await
}

async fn serve_at_most(
    listener: tokio::net::TcpListener,
    router: Router,
    mut shutdown: watch::Receiver<bool>,
    max_connections: usize,
) {
    use hyper::server::conn::http1;
    use hyper_util::rt::TokioIo;
    use hyper_util::service::TowerToHyperService;
    let slots = Arc::new(tokio::sync::Semaphore::new(max_connections));
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            _ = shutdown.changed() => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!("cannot accept a connection ({e}); retrying in {} ms", ACCEPT_BACKOFF.as_millis());
                    tokio::select! {
                        _ = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                        _ = shutdown.changed() => break,
                    }
                }
            },
            _ = shutdown.changed() => break,
        };
        let service = TowerToHyperService::new(router.clone());
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = tokio::time::sleep(CONNECTION_DEADLINE) => {}
                _ = shutdown.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(1), conn).await;
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    fn board(prefix: Option<&str>, token: Option<&str>) -> Arc<Board> {
        let dir = std::env::temp_dir().join(format!(
            "grouper-sync-endpoint-{}-{}",
            std::process::id(),
            prefix.is_some()
        ));
        Arc::new(Board {
            history: crate::store::history::RecentPasses::new(crate::store::history::History::new(
                &dir,
            )),
            context: Mutex::new(crate::web::status_page::Context {
                schedule: Vec::new(),
                next_pass: None,
                settings: Vec::new(),
            }),
            ui: crate::web::ui::Ui::new(token.map(str::to_string), &dir),
            prefix: prefix.map(str::to_string),
        })
    }

    async fn status(router: &Router, method: &str, path: &str, body: &str) -> (u16, String) {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, "Bearer t0ken")
            .body(Body::from(body.to_string()))
            .unwrap();
        let response = router.clone().oneshot(request).await.unwrap();
        let location = response
            .headers()
            .get(header::LOCATION)
            .map(|l| l.to_str().unwrap().to_string())
            .unwrap_or_default();
        (response.status().as_u16(), location)
    }

    #[tokio::test]
    async fn routes_at_the_root_and_below_the_hub_proxy_prefix() {
        let metrics = Arc::new(Metrics::default());
        let router = router(
            metrics,
            board(Some("/services/grouper-sync/"), Some("t0ken")),
            Duration::from_secs(60),
        );
        for path in [
            "/",
            "/metrics",
            "/healthz",
            "/services/grouper-sync",
            "/services/grouper-sync/",
            "/services/grouper-sync/metrics",
            "/services/grouper-sync/healthz",
        ] {
            assert_eq!(status(&router, "GET", path, "").await.0, 200, "{path}");
        }
        for path in ["/readyz", "/services/grouper-sync/readyz"] {
            assert_eq!(status(&router, "GET", path, "").await.0, 503, "{path}");
        }
        // an action below the prefix is the same action, and sends the browser back to the page
        for path in ["/run", "/services/grouper-sync/run"] {
            assert_eq!(
                status(&router, "POST", path, "").await,
                (303, "./?done=run".to_string())
            );
        }
        assert_eq!(status(&router, "POST", "/approve", "plan=zz").await.0, 400);
        assert_eq!(status(&router, "POST", "/", "").await.0, 405);
        assert_eq!(status(&router, "GET", "/nothing", "").await.0, 404);
        assert_eq!(
            status(&router, "GET", "/services/grouper-syncx/metrics", "")
                .await
                .0,
            404
        );
        let big = format!("plan={}", "0".repeat(MAX_FORM_BYTES));
        assert_eq!(status(&router, "POST", "/approve", &big).await.0, 413);
    }

    #[tokio::test]
    async fn without_a_prefix_only_the_root_routes() {
        let router = router(
            Arc::new(Metrics::default()),
            board(None, None),
            Duration::from_secs(60),
        );
        assert_eq!(status(&router, "GET", "/metrics", "").await.0, 200);
        assert_eq!(
            status(&router, "GET", "/services/grouper-sync/metrics", "")
                .await
                .0,
            404
        );
        // read-only: no ui_token
        assert_eq!(status(&router, "POST", "/run", "").await.0, 403);
    }

    #[tokio::test]
    async fn connections_beyond_the_limit_wait_for_a_free_slot() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = router(
            Arc::new(Metrics::default()),
            board(None, None),
            Duration::from_secs(60),
        );
        let (stop, stopped) = watch::channel(false);
        let server = tokio::spawn(serve_at_most(listener, router, stopped, 1));
        // a client that connects and says nothing holds the only slot
        let idle = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut second = tokio::net::TcpStream::connect(addr).await.unwrap();
        second
            .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        let early =
            tokio::time::timeout(Duration::from_millis(300), second.read_to_end(&mut answer)).await;
        assert!(early.is_err(), "answered beyond the limit: {answer:?}");
        drop(idle);
        tokio::time::timeout(Duration::from_secs(120), second.read_to_end(&mut answer))
            .await
            .expect("the freed slot serves the waiting connection")
            .unwrap();
        assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"));
        stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(120), server)
            .await
            .unwrap()
            .unwrap();
    }
}
