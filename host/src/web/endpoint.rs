//! The service's two HTTP listeners, routed by axum. `metrics_addr` serves `/metrics`
//! (OpenMetrics), `/healthz` (the process is alive) and `/readyz` (the last pass that did not fail
//! is younger than two intervals), and nothing else, so opening it to Prometheus opens no page.
//! `status_addr` serves the status page `/`, its actions (`POST /login`, `/approve`, `/run`), the
//! hub's OAuth callback and `/healthz`, only to requests whose `Host` is one of its names. Every
//! route also answers below the hub proxy's prefix (`/services/grouper-sync/metrics`).
//! Connections are limited in number, served by hyper with a deadline per connection and a
//! graceful shutdown.

use crate::web::guard::{AllowedHosts, FetchMetadata};
use crate::web::metrics::Metrics;
use crate::web::ui::{Answer, PageAccess};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, OriginalUri, Request, State};
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::{StatusCode, Uri};
use axum::middleware::{self, Next};
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
    /// The names the page answers to in `Host`.
    pub hosts: AllowedHosts,
}

#[derive(Clone)]
struct Scraped {
    metrics: Arc<Metrics>,
    sync_every: Duration,
}

/// The prefix without its trailing slash, if there is one.
fn bare_prefix(prefix: Option<&str>) -> Option<String> {
    prefix
        .map(|p| p.trim_end_matches('/').to_string())
        .filter(|p| !p.is_empty())
}

/// `routes` at the root and below `prefix`; `home` also answers the prefix itself with and
/// without the slash (the proxy's own form of it ends with one).
fn at_root_and_below<S: Clone + Send + Sync + 'static>(
    routes: Router<S>,
    prefix: Option<&str>,
    home: Option<axum::routing::MethodRouter<S>>,
) -> Router<S> {
    match bare_prefix(prefix) {
        Some(p) => {
            let mut below = Router::new();
            if let Some(home) = home {
                below = below.route(&format!("{p}/"), home);
            }
            below.nest(&p, routes.clone()).merge(routes)
        }
        None => routes,
    }
}

/// `/metrics`, `/healthz` and `/readyz`: the listener Prometheus and probes may reach.
pub fn metrics_router(metrics: Arc<Metrics>, sync_every: Duration, prefix: Option<&str>) -> Router {
    let routes = Router::new()
        .route("/metrics", get(openmetrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz));
    at_root_and_below(routes, prefix, None).with_state(Scraped {
        metrics,
        sync_every,
    })
}

/// The status page, its actions and the OAuth callback, behind the `Host` check.
pub fn status_router(board: Arc<Board>) -> Router {
    let routes = Router::new()
        .route("/", get(page))
        .route("/healthz", get(healthz))
        .route("/oauth_callback", get(oauth_callback))
        .route("/login", post(action))
        .route("/approve", post(action))
        .route("/run", post(action));
    at_root_and_below(routes, board.prefix.as_deref(), Some(get(page)))
        .layer(middleware::from_fn_with_state(board.clone(), check_host))
        .layer(DefaultBodyLimit::max(MAX_FORM_BYTES))
        .with_state(board)
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn openmetrics(State(s): State<Scraped>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, OPENMETRICS)], s.metrics.render())
}

async fn readyz(State(s): State<Scraped>) -> (StatusCode, &'static str) {
    if s.metrics.ready(s.sync_every) {
        (StatusCode::OK, "ready\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "no successful pass in the last two intervals\n",
        )
    }
}

/// A page read through another name (DNS rebinding, a stray port-forward) gets nothing; probes
/// reach `/healthz` by any name.
async fn check_host(State(board): State<Arc<Board>>, request: Request, next: Next) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| request.uri().authority().map(|a| a.to_string()));
    if request.uri().path().ends_with("/healthz") || board.hosts.allows(host.as_deref()) {
        return next.run(request).await;
    }
    tracing::warn!(
        host = host.as_deref().unwrap_or("(none)"),
        "refused a status page request for a host name it does not answer to"
    );
    (
        StatusCode::MISDIRECTED_REQUEST,
        format!(
            "this status page answers to {}; add the name you used to status_hosts\n",
            board.hosts.names().join(", ")
        ),
    )
        .into_response()
}

fn header(headers: &HeaderMap, name: HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn fetch_metadata(headers: &HeaderMap) -> FetchMetadata<'_> {
    let get = |name: &'static str| headers.get(name).and_then(|v| v.to_str().ok());
    FetchMetadata {
        mode: get("sec-fetch-mode"),
        dest: get("sec-fetch-dest"),
        site: get("sec-fetch-site"),
    }
}

/// The proxy says the browser used HTTPS.
fn forwarded_https(headers: &HeaderMap) -> bool {
    header(headers, HeaderName::from_static("x-forwarded-proto")).is_some_and(|p| {
        p.split(',')
            .next()
            .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"))
    })
}

/// What the page's requests carry, for `ui`.
fn ui_request<'a>(
    method: &'a str,
    uri: &'a Uri,
    original: &'a Uri,
    headers: &'a HeaderMap,
) -> crate::web::ui::Request<'a> {
    crate::web::ui::Request {
        method,
        path: uri.path(),
        full_path: original
            .path_and_query()
            .map_or(original.path(), |p| p.as_str()),
        query: uri.query(),
        cookie: header(headers, header::COOKIE),
        authorization: header(headers, header::AUTHORIZATION),
        fetch: fetch_metadata(headers),
        forwarded_https: forwarded_https(headers),
        form: Vec::new(),
    }
}

/// Every answer of the status listener: never cached, never framed, no scripts, no referrer.
fn page_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    response
}

async fn page(
    State(board): State<Arc<Board>>,
    uri: Uri,
    OriginalUri(original): OriginalUri,
    headers: HeaderMap,
) -> Response {
    let request = ui_request("GET", &uri, &original, &headers);
    let notice = crate::web::ui::Notice::from_query(uri.query());
    let html = match board.ui.page(&request) {
        PageAccess::Answer(answer) => return page_headers(answer.into_response()),
        PageAccess::SignInForm => crate::web::status_page::render_sign_in(notice.as_ref()),
        PageAccess::Show(viewer) => {
            let passes = board.history.get();
            let context = board
                .context
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            crate::web::status_page::render(&passes, &context, &viewer, notice.as_ref())
        }
    };
    page_headers(Html(html).into_response())
}

async fn oauth_callback(
    State(board): State<Arc<Board>>,
    uri: Uri,
    OriginalUri(original): OriginalUri,
    headers: HeaderMap,
) -> Response {
    let request = ui_request("GET", &uri, &original, &headers);
    page_headers(board.ui.oauth_callback(&request).await.into_response())
}

/// `POST /login`, `/approve`, `/run`; the path is the one below the prefix.
async fn action(
    State(board): State<Arc<Board>>,
    uri: Uri,
    OriginalUri(original): OriginalUri,
    headers: HeaderMap,
    form: Bytes,
) -> Response {
    let mut request = ui_request("POST", &uri, &original, &headers);
    request.form = form_urlencoded::parse(&form).into_owned().collect();
    match board.ui.handle(&request) {
        Some(answer) => page_headers(answer.into_response()),
        None => StatusCode::METHOD_NOT_ALLOWED.into_response(),
    }
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, self.body).into_response();
        for (name, value) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&value) {
                // two cookies are two headers
                response.headers_mut().append(name, v);
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
    use crate::web::session::CookiePolicy;
    use axum::body::Body;
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
            context: Mutex::new(crate::web::status_page::Context::default()),
            ui: crate::web::ui::Ui::new(
                None,
                token.map(str::to_string),
                CookiePolicy {
                    path: prefix.unwrap_or("/").to_string(),
                    always_secure: false,
                },
                &dir,
            ),
            prefix: prefix.map(str::to_string),
            hosts: AllowedHosts::new(["hub.example.org"]),
        })
    }

    /// One request with `Host`, and a bearer token: status and `Location`.
    async fn call(
        router: &Router,
        method: &str,
        host: &str,
        path: &str,
        body: &str,
    ) -> (u16, String) {
        let request = axum::http::Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, host)
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

    async fn status(router: &Router, method: &str, path: &str, body: &str) -> (u16, String) {
        call(router, method, "127.0.0.1:9101", path, body).await
    }

    fn metrics() -> Router {
        metrics_router(
            Arc::new(Metrics::default()),
            Duration::from_secs(60),
            Some("/services/grouper-sync/"),
        )
    }

    #[tokio::test]
    async fn the_metrics_listener_serves_metrics_and_health_and_no_page() {
        let router = metrics();
        for path in [
            "/metrics",
            "/healthz",
            "/services/grouper-sync/metrics",
            "/services/grouper-sync/healthz",
        ] {
            assert_eq!(status(&router, "GET", path, "").await.0, 200, "{path}");
        }
        for path in ["/readyz", "/services/grouper-sync/readyz"] {
            assert_eq!(status(&router, "GET", path, "").await.0, 503, "{path}");
        }
        for path in ["/", "/services/grouper-sync/", "/services/grouper-sync"] {
            assert_eq!(status(&router, "GET", path, "").await.0, 404, "{path}");
        }
        for path in ["/run", "/approve", "/login", "/services/grouper-sync/run"] {
            assert_eq!(status(&router, "POST", path, "").await.0, 404, "{path}");
        }
        assert_eq!(
            status(&router, "GET", "/services/grouper-syncx/metrics", "")
                .await
                .0,
            404
        );
    }

    #[tokio::test]
    async fn page_routes_at_the_root_and_below_the_hub_proxy_prefix() {
        let router = status_router(board(Some("/services/grouper-sync/"), Some("t0ken")));
        for path in [
            "/",
            "/healthz",
            "/services/grouper-sync",
            "/services/grouper-sync/",
            "/services/grouper-sync/healthz",
        ] {
            assert_eq!(status(&router, "GET", path, "").await.0, 200, "{path}");
        }
        assert_eq!(status(&router, "GET", "/metrics", "").await.0, 404);
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
        // no hub client: the callback is not a way in
        assert_eq!(
            status(
                &router,
                "GET",
                "/services/grouper-sync/oauth_callback?code=x&state=y",
                ""
            )
            .await
            .0,
            404
        );
        let big = format!("plan={}", "0".repeat(MAX_FORM_BYTES));
        assert_eq!(status(&router, "POST", "/approve", &big).await.0, 413);
    }

    #[tokio::test]
    async fn the_page_answers_only_to_its_host_names() {
        let router = status_router(board(Some("/services/grouper-sync/"), Some("t0ken")));
        for host in ["hub.example.org", "HUB.example.org:443", "localhost:9101"] {
            assert_eq!(
                call(&router, "GET", host, "/services/grouper-sync/", "")
                    .await
                    .0,
                200,
                "{host}"
            );
        }
        for host in [
            "evil.example",
            "evil.example:9101",
            "hub.example.org.evil.example",
        ] {
            for (method, path) in [
                ("GET", "/services/grouper-sync/"),
                ("POST", "/run"),
                ("GET", "/oauth_callback"),
            ] {
                assert_eq!(
                    call(&router, method, host, path, "").await.0,
                    421,
                    "{host} {method} {path}"
                );
            }
            // a probe reaches /healthz by any name
            assert_eq!(call(&router, "GET", host, "/healthz", "").await.0, 200);
        }
    }

    #[tokio::test]
    async fn without_a_sign_in_the_page_shows_nothing() {
        let router = status_router(board(None, None));
        let request = axum::http::Request::builder()
            .uri("/")
            .header(header::HOST, "127.0.0.1")
            .body(Body::empty())
            .unwrap();
        let response = router.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), 403);
        assert_eq!(response.headers()[header::X_FRAME_OPTIONS], "DENY");
        assert_eq!(status(&router, "POST", "/run", "").await.0, 403);
        assert_eq!(
            status(&router, "GET", "/services/grouper-sync/", "")
                .await
                .0,
            404
        );
    }

    #[tokio::test]
    async fn connections_beyond_the_limit_wait_for_a_free_slot() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = metrics();
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
