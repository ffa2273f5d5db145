//! `Transport` over `wasi:http/outgoing-handler`: all three timeouts set, and bounded fan-out by
//! polling several response pollables with `wasi:io/poll`.

use crate::settings::Settings;
use crate::wire::http::{
    Method, Outcome as HttpOutcome, Request, Response, Transport, TransportError,
    MAX_RESPONSE_BYTES,
};
use std::time::Duration;
use waki::bindings::wasi::http::outgoing_handler;
use waki::bindings::wasi::http::types::{
    http_error_code, ErrorCode, FutureIncomingResponse, Headers, IncomingBody,
    Method as WasiMethod, OutgoingBody, OutgoingRequest, RequestOptions, Scheme,
};
use waki::bindings::wasi::io::poll;
use waki::bindings::wasi::io::streams::StreamError;

/// HTTP over `wasi:http`, through waki's bindings and body handling.
pub struct WasiTransport<'a> {
    pub settings: &'a Settings,
}

fn classify(code: &ErrorCode) -> TransportError {
    use ErrorCode as E;
    let text = format!("{code:?}");
    match code {
        E::HttpRequestDenied => TransportError::Denied(text),
        E::DnsTimeout
        | E::ConnectionTimeout
        | E::ConnectionReadTimeout
        | E::ConnectionWriteTimeout
        | E::HttpResponseTimeout => TransportError::Timeout(text),
        E::HttpProtocolError
        | E::HttpResponseIncomplete
        | E::ConnectionTerminated
        | E::HttpResponseBodySize(_)
        | E::HttpResponseTransferCoding(_)
        | E::HttpResponseContentCoding(_) => TransportError::Body(text),
        E::DnsError(_)
        | E::DestinationNotFound
        | E::DestinationUnavailable
        | E::DestinationIpProhibited
        | E::DestinationIpUnroutable
        | E::ConnectionRefused
        | E::ConnectionLimitReached => TransportError::Connect(text),
        // grouper-sync names certificate failures as the alert a client sends for them
        E::TlsAlertReceived(alert) => TransportError::Tls(match &alert.alert_message {
            Some(m) => m.clone(),
            None => format!("TLS alert {:?}", alert.alert_id),
        }),
        E::TlsCertificateError => {
            TransportError::Tls("the server's certificate was not accepted".into())
        }
        E::TlsProtocolError => TransportError::Tls("TLS protocol error".into()),
        _ => TransportError::Other(text),
    }
}

struct Parts<'u> {
    scheme: Scheme,
    authority: &'u str,
    path_and_query: &'u str,
}

fn split_url(url: &str) -> Result<Parts<'_>, TransportError> {
    let (scheme, rest) = if let Some(r) = url.strip_prefix("https://") {
        (Scheme::Https, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (Scheme::Http, r)
    } else {
        return Err(TransportError::Other(format!("not an http(s) URL: {url}")));
    };
    let (authority, path_and_query) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    Ok(Parts {
        scheme,
        authority,
        path_and_query,
    })
}

impl WasiTransport<'_> {
    fn start(&self, req: &Request) -> Result<FutureIncomingResponse, TransportError> {
        let parts = split_url(&req.url)?;
        let mut fields: Vec<(String, Vec<u8>)> = req
            .headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone().into_bytes()))
            .collect();
        if let Some(body) = &req.body {
            fields.push(("content-length".into(), body.len().to_string().into_bytes()));
        }
        let headers = Headers::from_list(&fields)
            .map_err(|e| TransportError::Other(format!("invalid header: {e:?}")))?;
        let outgoing = OutgoingRequest::new(headers);
        let method = match req.method {
            Method::Get => WasiMethod::Get,
            Method::Post => WasiMethod::Post,
            Method::Put => WasiMethod::Put,
            Method::Patch => WasiMethod::Patch,
            Method::Delete => WasiMethod::Delete,
        };
        let bad =
            |what: &str| TransportError::Other(format!("could not set {what} of {}", req.url));
        outgoing.set_method(&method).map_err(|()| bad("method"))?;
        outgoing
            .set_scheme(Some(&parts.scheme))
            .map_err(|()| bad("scheme"))?;
        outgoing
            .set_authority(Some(parts.authority))
            .map_err(|()| bad("authority"))?;
        outgoing
            .set_path_with_query(Some(parts.path_and_query))
            .map_err(|()| bad("path"))?;
        let body = outgoing.body().map_err(|()| bad("body"))?;

        let ns = |d: Duration| d.as_nanos().min(u64::MAX as u128) as u64;
        let h = &self.settings.http;
        let options = RequestOptions::new();
        // A host may refuse to take a timeout; it then applies its own.
        let _ = options.set_connect_timeout(Some(ns(h.connect_timeout)));
        let _ = options.set_first_byte_timeout(Some(ns(h.request_timeout)));
        let _ = options.set_between_bytes_timeout(Some(ns(h.request_timeout)));

        let future = outgoing_handler::handle(outgoing, Some(options)).map_err(|e| classify(&e))?;
        if let Err(write_error) = Self::write_body(body, req.body.as_deref()) {
            // When the host refuses or fails the request it closes the body stream; its reason
            // (e.g. HttpRequestDenied) is on the response future and says more than the write error.
            future.subscribe().block();
            return match Self::finish(future) {
                Err(e) => Err(e),
                Ok(_) => Err(write_error),
            };
        }
        Ok(future)
    }

    fn write_body(body: OutgoingBody, bytes: Option<&[u8]>) -> Result<(), TransportError> {
        if let Some(bytes) = bytes {
            let stream = body
                .write()
                .map_err(|()| TransportError::Other("request body stream unavailable".into()))?;
            for chunk in bytes.chunks(4096) {
                stream
                    .blocking_write_and_flush(chunk)
                    .map_err(|e| TransportError::Connect(format!("writing request body: {e:?}")))?;
            }
            drop(stream);
        }
        OutgoingBody::finish(body, None).map_err(|e| classify(&e))
    }

    fn finish(future: FutureIncomingResponse) -> HttpOutcome {
        let incoming = match future.get() {
            Some(Ok(Ok(resp))) => resp,
            Some(Ok(Err(code))) => return Err(classify(&code)),
            Some(Err(())) => return Err(TransportError::Other("response already taken".into())),
            None => return Err(TransportError::Other("response not ready".into())),
        };
        drop(future);
        let status = incoming.status();
        let headers: Vec<(String, String)> = incoming
            .headers()
            .entries()
            .into_iter()
            .map(|(k, v)| {
                (
                    k.to_ascii_lowercase(),
                    String::from_utf8_lossy(&v).into_owned(),
                )
            })
            .collect();
        let declared = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|n| n > MAX_RESPONSE_BYTES as u64) {
            return Err(TransportError::TooLarge);
        }
        let taken = || TransportError::Other("response body already taken".into());
        let incoming_body = incoming.consume().map_err(|()| taken())?;
        let body = Self::read_body(&incoming_body)?;
        let _trailers = IncomingBody::finish(incoming_body);
        Ok(Response {
            status,
            headers,
            body,
        })
    }
}

impl WasiTransport<'_> {
    /// Reads a body to its end, up to the cap. A failed read says why in the host's own terms
    /// (`http-error-code`), so that a stalled body reads as a timeout, not as an opaque I/O error.
    fn read_body(incoming_body: &IncomingBody) -> Result<Vec<u8>, TransportError> {
        let stream = incoming_body
            .stream()
            .map_err(|()| TransportError::Other("response body stream already taken".into()))?;
        let mut body = Vec::new();
        loop {
            match stream.blocking_read(1 << 20) {
                Ok(chunk) => {
                    if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                        return Err(TransportError::TooLarge);
                    }
                    body.extend_from_slice(&chunk);
                }
                Err(StreamError::Closed) => return Ok(body),
                Err(StreamError::LastOperationFailed(e)) => {
                    return Err(match http_error_code(&e) {
                        Some(code) => match classify(&code) {
                            TransportError::Connect(m) => TransportError::Body(m),
                            other => other,
                        },
                        None => TransportError::Body(e.to_debug_string()),
                    })
                }
            }
        }
    }
}

impl Transport for WasiTransport<'_> {
    fn send_all(&mut self, requests: &[Request], max_in_flight: usize) -> Vec<HttpOutcome> {
        let mut outcomes: Vec<Option<HttpOutcome>> = vec![None; requests.len()];
        let mut in_flight: Vec<(usize, FutureIncomingResponse)> = Vec::new();
        let mut next = 0;
        while next < requests.len() || !in_flight.is_empty() {
            while in_flight.len() < max_in_flight.max(1) && next < requests.len() {
                match self.start(&requests[next]) {
                    Ok(future) => in_flight.push((next, future)),
                    Err(e) => outcomes[next] = Some(Err(e)),
                }
                next += 1;
            }
            if in_flight.is_empty() {
                continue;
            }
            let pollables: Vec<_> = in_flight.iter().map(|(_, f)| f.subscribe()).collect();
            let refs: Vec<&_> = pollables.iter().collect();
            let mut ready: Vec<usize> = poll::poll(&refs).into_iter().map(|i| i as usize).collect();
            drop(refs);
            drop(pollables);
            ready.sort_unstable_by(|a, b| b.cmp(a));
            for i in ready {
                let (index, future) = in_flight.swap_remove(i);
                outcomes[index] = Some(Self::finish(future));
            }
        }
        outcomes
            .into_iter()
            .map(|o| {
                o.unwrap_or_else(|| Err(TransportError::Other("request was never sent".into())))
            })
            .collect()
    }

    fn sleep(&mut self, duration: Duration) {
        std::thread::sleep(duration);
    }
}
