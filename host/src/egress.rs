//! Outgoing HTTP policy for the component: only the configured hub and Grouper hosts, deny by
//! default, and every HTTP timeout clamped (waki-based guests set only the connect timeout, and
//! wasmtime's default for the others is 600 s).

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;
use wasmtime_wasi_http::{RequestOptions, WasiBody, WasiHttpHooks};

type IoFuture = Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>;

pub struct EgressPolicy {
    /// Lower-case `host:port` entries; `None` allows every host (used by tests only).
    pub allowed: Option<Arc<Vec<String>>>,
    pub timeout_cap: Duration,
    pub tls: crate::tls::Trust,
    /// Requests refused in this pass.
    pub denied: Arc<AtomicU32>,
}

/// `host:port` of a request URI, read the same way as the configured URLs.
pub fn authority_of(uri: &http::Uri) -> String {
    jupyterhub_grouper_sync::settings::url_authority(&uri.to_string()).unwrap_or_default()
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
        let authority = authority_of(request.uri());
        let allowed = self
            .allowed
            .as_ref()
            .is_none_or(|hosts| hosts.contains(&authority));
        if !allowed {
            self.denied.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(host = %authority, "outgoing request denied: not the hub's or Grouper's host");
            return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) });
        }
        let options = clamp(options, self.timeout_cap);
        let tls = self.tls.clone();
        Box::new(async move {
            let (res, io) = crate::tls::send(request, options, tls).await?;
            Ok((res, Box::new(io) as IoFuture))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorities_and_clamping() {
        assert_eq!(
            authority_of(&"https://CalGroups.Berkeley.edu/gws".parse().unwrap()),
            "calgroups.berkeley.edu:443"
        );
        assert_eq!(
            authority_of(&"http://127.0.0.1:8081/hub/api".parse().unwrap()),
            "127.0.0.1:8081"
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
