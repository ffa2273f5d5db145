//! Outgoing HTTP(S) for the component. wasmtime-wasi-http's default sender trusts only its
//! bundled Mozilla roots; campus Grouper servers are often signed by a campus or InCommon CA that
//! admins add to the system store or hand us as a file. So the host sends requests itself: the
//! system roots (or the bundled ones when the system has none), plus `ca_file`; and it names the
//! certificate failure (unknown CA, expired, wrong host) to the component as the TLS alert a
//! client sends for it, so that the pass's error says which.

use bytes::Bytes;
use http::uri::Scheme;
use http_body::{Body, Frame};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{AlertDescription, CertificateError, ClientConfig, RootCertStore};
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpStream;
use wasmtime_wasi_http::{Error, RequestOptions};

/// The certificate authorities HTTPS requests are verified against.
pub type Trust = Arc<ClientConfig>;

/// The roots the host trusts: the system store by default, and the PEM certificates of
/// `ca_file` in addition.
pub fn client_config(ca_file: Option<&Path>) -> Result<Trust, String> {
    let mut roots = RootCertStore::empty();
    let system = rustls_native_certs::load_native_certs();
    let (added, _) = roots.add_parsable_certificates(system.certs);
    if added == 0 {
        tracing::debug!("no system CA certificates found; trusting the bundled Mozilla roots");
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    if let Some(path) = ca_file {
        for cert in ca_certificates(path)? {
            roots
                .add(cert)
                .map_err(|e| format!("ca_file {}: {e}", path.display()))?;
        }
    }
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The certificates of a PEM file; an unreadable file, or one without a certificate, is an error
/// (a typo in `ca_file` must not silently leave the campus CA out).
pub fn ca_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    use rustls::pki_types::pem::PemObject;
    let bytes =
        std::fs::read(path).map_err(|e| format!("ca_file {}: cannot read: {e}", path.display()))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            format!(
                "ca_file {}: not a PEM certificate file: {e}",
                path.display()
            )
        })?;
    if certs.is_empty() {
        return Err(format!(
            "ca_file {}: no PEM certificate (-----BEGIN CERTIFICATE-----) in it",
            path.display()
        ));
    }
    Ok(certs)
}

/// What a certificate failure means, as the alert a TLS client sends for it.
fn certificate_failure(e: &rustls::Error, host: &str) -> Option<(AlertDescription, String)> {
    let rustls::Error::InvalidCertificate(c) = e else {
        return None;
    };
    Some(match c {
        CertificateError::UnknownIssuer => (
            AlertDescription::UnknownCA,
            format!("the certificate of {host} is signed by an unknown certificate authority (add the CA with ca_file)"),
        ),
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => (
            AlertDescription::CertificateExpired,
            format!("the certificate of {host} has expired"),
        ),
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => (
            AlertDescription::CertificateExpired,
            format!("the certificate of {host} is not valid yet"),
        ),
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => (
            AlertDescription::BadCertificate,
            format!("the certificate of {host} is not valid for that host name"),
        ),
        CertificateError::Revoked => (
            AlertDescription::CertificateRevoked,
            format!("the certificate of {host} is revoked"),
        ),
        other => (
            AlertDescription::BadCertificate,
            format!("the certificate of {host} was not accepted: {other:?}"),
        ),
    })
}

/// The error a failed handshake gives the component: certificate problems and alerts from the
/// server as `TLS-alert-received` with a message, anything else as a TLS protocol error.
fn handshake_error(e: std::io::Error, host: &str) -> Error {
    let inner = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>());
    let named = match inner {
        Some(rustls::Error::AlertReceived(alert)) => Some((
            *alert,
            format!("{host} ended the TLS handshake with alert {alert:?}"),
        )),
        Some(other) => certificate_failure(other, host),
        None => None,
    };
    match named {
        Some((alert, message)) => {
            tracing::warn!(host, "TLS handshake failed: {message}");
            Error::TlsAlertReceived {
                alert_id: Some(u8::from(alert)),
                alert_message: Some(message),
            }
        }
        None => {
            tracing::warn!(host, "TLS handshake failed: {e}");
            Error::Tls(e)
        }
    }
}

/// `host:port` with the scheme's default port.
fn connect_authority(uri: &http::Uri, tls: bool) -> Result<(String, String), Error> {
    let authority = uri.authority().ok_or(Error::HttpRequestUriInvalid)?;
    let host = authority.host().trim_matches(['[', ']']).to_string();
    let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let addr = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    Ok((addr, host))
}

trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Sync + Unpin + 'static {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Sync + Unpin + 'static> Stream for T {}

pub type ResponseBody = http_body_util::combinators::UnsyncBoxBody<Bytes, Error>;

/// Sends one request on a new connection (as wasmtime's default sender does), over TLS for
/// `https` with `tls`'s roots, with all three timeouts of `options` applied.
pub async fn send<B>(
    mut request: http::Request<B>,
    options: RequestOptions,
    tls: Trust,
) -> Result<
    (
        http::Response<ResponseBody>,
        impl Future<Output = Result<(), Error>> + Send,
    ),
    Error,
>
where
    B: Body<Data = Bytes, Error = Error> + Send + 'static,
{
    use http_body_util::BodyExt;
    let use_tls = request.uri().scheme() == Some(&Scheme::HTTPS);
    let (addr, host) = connect_authority(request.uri(), use_tls)?;
    let connect_timeout = options.connect_timeout.unwrap_or(Duration::from_secs(600));
    let first_byte = options
        .first_byte_timeout
        .unwrap_or(Duration::from_secs(600));
    let between_bytes = options
        .between_bytes_timeout
        .unwrap_or(Duration::from_secs(600))
        .max(Duration::from_nanos(1));

    let tcp = tokio::time::timeout(connect_timeout, TcpStream::connect(&addr))
        .await
        .map_err(|_| Error::ConnectionTimeout)?
        .map_err(Error::Connect)?;
    let stream: Box<dyn Stream> = if use_tls {
        // What wasmtime-wasi-http's own client answers for a name rustls cannot take.
        let name = ServerName::try_from(host.clone()).map_err(|_| Error::DnsError {
            rcode: Some("invalid dns name".into()),
            info_code: None,
        })?;
        let connector = tokio_rustls::TlsConnector::from(tls);
        let handshake = connector.connect(name, tcp);
        let tls_stream = tokio::time::timeout(connect_timeout, handshake)
            .await
            .map_err(|_| Error::ConnectionTimeout)?
            .map_err(|e| handshake_error(e, &host))?;
        Box::new(tls_stream)
    } else {
        Box::new(tcp)
    };
    let (mut sender, conn) = tokio::time::timeout(
        connect_timeout,
        hyper::client::conn::http1::handshake(wasmtime_wasi_http::io::TokioIo::new(stream)),
    )
    .await
    .map_err(|_| Error::ConnectionTimeout)??;

    // The request line carries only the path: scheme and authority are for proxies.
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    *request.uri_mut() = http::Uri::builder()
        .path_and_query(path)
        .build()
        .map_err(|_| Error::HttpRequestUriInvalid)?;

    // The connection task runs beside the response: it ends when the body has been read.
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let _ = done_tx.send(conn.await);
    });
    let response = tokio::time::timeout(first_byte, sender.send_request(request))
        .await
        .map_err(|_| Error::ConnectionReadTimeout)?
        .map_err(Error::from)?;
    let response = response.map(|incoming| {
        TimedBody {
            incoming,
            timer: Box::pin(tokio::time::sleep(between_bytes)),
            between_bytes,
        }
        .boxed_unsync()
    });
    let io = async move {
        match done_rx.await {
            Ok(Err(e)) if e.is_timeout() => Err(Error::HttpResponseTimeout),
            Ok(Err(e)) => Err(Error::from(e)),
            _ => Ok(()),
        }
    };
    Ok((response, io))
}

/// A response body that fails when no bytes arrive for `between_bytes`.
struct TimedBody {
    incoming: hyper::body::Incoming,
    timer: Pin<Box<tokio::time::Sleep>>,
    between_bytes: Duration,
}

impl Body for TimedBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        match Pin::new(&mut self.incoming).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let next = tokio::time::Instant::now() + self.between_bytes;
                self.timer.as_mut().reset(next);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) if e.is_timeout() => {
                Poll::Ready(Some(Err(Error::HttpResponseTimeout)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Error::from(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match self.timer.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Error::ConnectionReadTimeout))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.incoming.size_hint()
    }
}
