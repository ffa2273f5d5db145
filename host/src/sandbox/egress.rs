//! Outgoing HTTP policy for the component: only the configured hub and Grouper hosts, deny by
//! default, and every HTTP timeout clamped (waki-based guests set only the connect timeout, and
//! wasmtime's default for the others is 600 s).

use jupyterhub_grouper_sync::model::HttpUrl;
use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;
use wasmtime_wasi_http::{RequestOptions, WasiBody, WasiHttpHooks};

type IoFuture = Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>;

pub struct EgressPolicy {
    /// Lower-case `scheme://host:port` origins; `None` allows every host (used by tests only).
    pub allowed: Option<Arc<Vec<String>>>,
    pub timeout_cap: Duration,
    pub tls: crate::sandbox::tls::Trust,
    /// Requests refused in this pass.
    pub denied: Arc<AtomicU32>,
}

/// `scheme://host:port` of a configured URL in the form requests are compared in
/// ([`HttpUrl::origin`]); `None` for anything but an `http://` or `https://` URL without credentials.
pub fn url_origin(text: &str) -> Option<String> {
    HttpUrl::parse(text).ok().map(|u| u.origin())
}

/// Is this an `http://` URL to a host other than this machine? Credentials sent to it cross the
/// network unencrypted.
pub fn is_cleartext_remote(text: &str) -> bool {
    HttpUrl::parse(text).is_ok_and(|u| u.is_cleartext_remote())
}

/// `scheme://host:port` of a request URI (empty when it has none: never allowed).
pub fn origin_of(uri: &http::Uri) -> String {
    HttpUrl::from_uri(uri)
        .map(|u| u.origin())
        .unwrap_or_default()
}

impl EgressPolicy {
    /// May the component send this request?
    pub fn allows(&self, uri: &http::Uri) -> bool {
        let origin = origin_of(uri);
        self.allowed
            .as_ref()
            .is_none_or(|origins| !origin.is_empty() && origins.contains(&origin))
    }
}

pub fn clamp(options: Option<RequestOptions>, cap: Duration) -> RequestOptions {
    let o = options.unwrap_or_default();
    let c = |t: Option<Duration>| Some(t.map_or(cap, |t| t.min(cap)));
    RequestOptions {
        connect_timeout: c(o.connect_timeout),
        first_byte_timeout: c(o.first_byte_timeout),
        between_bytes_timeout: c(o.between_bytes_timeout),
    }
}

impl WasiHttpHooks for EgressPolicy {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: IoFuture,
    ) -> Box<
        dyn Future<Output = wasmtime_wasi_http::Result<(http::Response<WasiBody>, IoFuture)>>
            + Send,
    > {
        if !self.allows(request.uri()) {
            self.denied.fetch_add(1, Ordering::Relaxed);
            let origin = origin_of(request.uri());
            tracing::warn!(origin = %origin, "outgoing request denied: not the hub's or Grouper's scheme, host and port");
            return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) });
        }
        let options = clamp(options, self.timeout_cap);
        let tls = self.tls.clone();
        Box::new(async move {
            let (res, io) = crate::sandbox::tls::send(request, options, tls).await?;
            Ok((res, Box::new(io) as IoFuture))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_urls_are_read_as_requests_are() {
        assert_eq!(
            url_origin("https://[::1]/gws").as_deref(),
            Some("https://[::1]:443")
        );
        assert_eq!(
            url_origin("HTTP://Hub.Example.EDU:80/hub/api").as_deref(),
            Some("http://hub.example.edu:80")
        );
        assert_eq!(url_origin("https://user:pw@g.example.edu/"), None);
        assert_eq!(url_origin("ftp://g.example.edu/"), None);
        assert_eq!(url_origin("https://g.example.edu:99999/"), None);
        for (url, remote) in [
            ("http://grouper.example.edu/gws", true),
            ("HTTP://10.0.0.5:8081/hub/api", true),
            ("http://hub:8081/hub/api", true),
            ("https://grouper.example.edu/gws", false),
            ("http://127.0.0.1:8081/hub/api", false),
            ("http://127.9.9.9/x", false),
            ("http://localhost:8081/hub/api", false),
            ("http://[::1]:8081/hub/api", false),
            ("not a url", false),
        ] {
            assert_eq!(is_cleartext_remote(url), remote, "{url}");
        }
    }

    #[test]
    fn the_allow_list_compares_scheme_host_and_port() {
        let policy = EgressPolicy {
            allowed: Some(Arc::new(vec![
                url_origin("https://grouper.example.edu/gws").unwrap(),
                url_origin("http://127.0.0.1:8081/hub/api").unwrap(),
            ])),
            timeout_cap: Duration::from_secs(5),
            tls: crate::sandbox::tls::client_config(None).unwrap(),
            denied: Arc::default(),
        };
        let allows = |u: &str| policy.allows(&u.parse().unwrap());
        assert!(allows("https://grouper.example.edu/gws/servicesRest"));
        assert!(allows("https://GROUPER.example.edu:443/x"));
        assert!(allows("http://127.0.0.1:8081/hub/api/users"));
        // the same host and port, another scheme: cleartext to where TLS was configured
        assert!(!allows("http://grouper.example.edu:443/gws"));
        assert!(!allows("https://127.0.0.1:8081/hub/api/users"));
        assert!(!allows("https://grouper.example.edu:8443/gws"));
        assert!(!allows("/relative"));
    }

    #[test]
    fn authorities_and_clamping() {
        assert_eq!(
            origin_of(&"https://CalGroups.Berkeley.edu/gws".parse().unwrap()),
            "https://calgroups.berkeley.edu:443"
        );
        assert_eq!(
            origin_of(&"http://127.0.0.1:8081/hub/api".parse().unwrap()),
            "http://127.0.0.1:8081"
        );
        let cap = Duration::from_secs(5);
        let o = clamp(
            Some(RequestOptions {
                connect_timeout: Some(Duration::from_secs(1)),
                first_byte_timeout: None,
                between_bytes_timeout: Some(Duration::from_secs(99)),
            }),
            cap,
        );
        assert_eq!(
            (
                o.connect_timeout,
                o.first_byte_timeout,
                o.between_bytes_timeout
            ),
            (Some(Duration::from_secs(1)), Some(cap), Some(cap))
        );
    }
}
