//! HTTP as the sync core sees it: plain request/response values, a transport trait that the
//! WASI adapter implements, and the retry policy (which failures are transient, how long to wait).

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }
}

#[derive(Clone, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
}

// Headers carry credentials, so Debug shows only method and URL.
impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.method.as_str(), self.url)
    }
}

impl Request {
    pub fn new(method: Method, url: impl Into<String>) -> Self {
        Request {
            method,
            url: url.into(),
            headers: Vec::new(),
            body: None,
        }
    }
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }
    pub fn body(mut self, body: Vec<u8>) -> Self {
        self.body = Some(body);
        self
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// Header names are lower-case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A request that did not produce a complete response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportError {
    /// Could not connect (refused, DNS, TLS setup): worth retrying.
    Connect(String),
    /// The request timed out (connect, first byte or between bytes).
    Timeout(String),
    /// The host refused to send it (egress policy): never retried.
    Denied(String),
    /// The TLS handshake failed (certificate not trusted, expired, other host): never retried.
    Tls(String),
    /// The answer is larger than [`MAX_RESPONSE_BYTES`]; it was not read.
    TooLarge,
    /// The body could not be read to its end (reset, truncated).
    Body(String),
    /// Anything else the transport reports.
    Other(String),
}

impl std::fmt::Display for TransportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TransportError::Connect(m) => write!(f, "connection failed: {m}"),
            TransportError::Timeout(m) => write!(f, "timed out: {m}"),
            TransportError::Denied(m) => {
                write!(f, "request denied by the host's egress policy: {m}")
            }
            TransportError::Tls(m) => write!(f, "TLS handshake failed: {m}"),
            TransportError::TooLarge => write!(
                f,
                "the answer is larger than {} MiB and was not read",
                MAX_RESPONSE_BYTES >> 20
            ),
            TransportError::Body(m) => write!(f, "response body could not be read: {m}"),
            TransportError::Other(m) => write!(f, "{m}"),
        }
    }
}

pub type Outcome = Result<Response, TransportError>;

/// The largest answer read. A hub page of 200 users or a Grouper page of 1,000 members is far
/// below 1 MiB; a bigger answer is not one the sync can use, and reading it would only exhaust the
/// component's memory.
pub const MAX_RESPONSE_BYTES: usize = 32 << 20;

/// Sends HTTP requests. `send_all` keeps up to `max_in_flight` requests outstanding and returns
/// one outcome per request, in order.
pub trait Transport {
    fn send_all(&mut self, requests: &[Request], max_in_flight: usize) -> Vec<Outcome>;

    /// Waits before a retry. The component sleeps on the WASI monotonic clock.
    fn sleep(&mut self, duration: Duration);
}

/// Is this outcome worth another attempt? Connect errors, timeouts, truncated bodies, 429 and
/// 502-504 are; everything else (including 500, which Grouper uses for definite answers) is not.
pub fn is_transient(outcome: &Outcome) -> bool {
    match outcome {
        Ok(r) => matches!(r.status, 429 | 502 | 503 | 504),
        Err(
            TransportError::Denied(_)
            | TransportError::Tls(_)
            | TransportError::TooLarge
            | TransportError::Other(_),
        ) => false,
        Err(_) => true,
    }
}

/// The longest `Retry-After` honoured, so that a pass cannot stall for hours.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(120);

/// A `Retry-After` header in either form (RFC 9110 §10.2.3): delay-seconds, or an HTTP-date, which
/// is measured against the same answer's `Date` header (the server's clock, not ours).
fn retry_after(r: &Response) -> Option<Duration> {
    let value = r.header("retry-after")?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    let now = httpdate::parse_http_date(r.header("date")?.trim()).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Delay before retry number `attempt` (1-based): exponential from `base`, capped at 30 s, or the
/// server's `Retry-After` when given (capped at 120 s).
pub fn retry_delay(attempt: u32, base: Duration, outcome: &Outcome) -> Duration {
    if let Some(delay) = outcome.as_ref().ok().and_then(retry_after) {
        return delay.min(MAX_RETRY_AFTER);
    }
    let factor = 1u32 << attempt.saturating_sub(1).min(10);
    (base * factor).min(Duration::from_secs(30))
}

/// Sends requests with retries of the transient failures. Returns the final outcomes in order
/// and the number of requests actually sent.
pub fn send_with_retries(
    transport: &mut dyn Transport,
    requests: &[Request],
    max_in_flight: usize,
    retries: u32,
    backoff: Duration,
) -> (Vec<Outcome>, u32) {
    let mut outcomes = transport.send_all(requests, max_in_flight);
    let mut sent = requests.len() as u32;
    for attempt in 1..=retries {
        let pending: Vec<usize> = (0..outcomes.len())
            .filter(|&i| is_transient(&outcomes[i]))
            .collect();
        if pending.is_empty() {
            break;
        }
        let delay = pending
            .iter()
            .map(|&i| retry_delay(attempt, backoff, &outcomes[i]))
            .max()
            .unwrap_or(backoff);
        transport.sleep(delay);
        let again: Vec<Request> = pending.iter().map(|&i| requests[i].clone()).collect();
        sent += again.len() as u32;
        for (i, outcome) in pending
            .into_iter()
            .zip(transport.send_all(&again, max_in_flight))
        {
            outcomes[i] = outcome;
        }
    }
    (outcomes, sent)
}

/// Percent-encodes one URL path segment or query value: everything but RFC 3986 unreserved bytes.
pub fn encode_segment(s: &str) -> String {
    // `.` and `..` as a whole segment would be resolved as "this" and "parent" by every URL
    // normalizer on the way (a user named `..` must not become `/users/..`, i.e. `/`).
    if s == "." || s == ".." {
        return s.replace('.', "%2E");
    }
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Standard base64 (for HTTP Basic credentials).
pub fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &b)| acc | (b as u32) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// At most `max` characters of `s`, on a char boundary, with an ellipsis when cut.
pub fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::Fake;
    use std::collections::VecDeque;

    fn resp(status: u16) -> Outcome {
        Ok(Response {
            status,
            headers: vec![],
            body: vec![],
        })
    }

    #[test]
    fn transient_classification() {
        assert!(is_transient(&resp(429)));
        assert!(is_transient(&resp(503)));
        assert!(!is_transient(&resp(500)));
        assert!(!is_transient(&resp(404)));
        assert!(is_transient(&Err(TransportError::Connect(
            "refused".into()
        ))));
        assert!(is_transient(&Err(TransportError::Body("truncated".into()))));
        assert!(!is_transient(&Err(TransportError::Denied("x".into()))));
    }

    #[test]
    fn retry_after_wins_and_backoff_grows() {
        let r = Ok(Response {
            status: 429,
            headers: vec![("retry-after".into(), "7".into())],
            body: vec![],
        });
        assert_eq!(
            retry_delay(1, Duration::from_millis(100), &r),
            Duration::from_secs(7)
        );
        let plain = resp(503);
        assert_eq!(
            retry_delay(1, Duration::from_millis(100), &plain),
            Duration::from_millis(100)
        );
        assert_eq!(
            retry_delay(3, Duration::from_millis(100), &plain),
            Duration::from_millis(400)
        );
        assert_eq!(
            retry_delay(20, Duration::from_secs(1), &plain),
            Duration::from_secs(30)
        );
    }

    #[test]
    fn retry_after_as_an_http_date_counts_from_the_servers_date() {
        let dated = |retry_after: &str, date: Option<&str>| {
            let mut headers = vec![("retry-after".to_string(), retry_after.to_string())];
            if let Some(d) = date {
                headers.push(("date".into(), d.into()));
            }
            Ok(Response {
                status: 503,
                headers,
                body: vec![],
            })
        };
        let base = Duration::from_millis(100);
        let r = dated(
            "Mon, 30 Nov 2026 10:00:45 GMT",
            Some("Mon, 30 Nov 2026 10:00:00 GMT"),
        );
        assert_eq!(retry_delay(1, base, &r), Duration::from_secs(45));
        let far = dated(
            "Tue, 01 Dec 2026 10:00:00 GMT",
            Some("Mon, 30 Nov 2026 10:00:00 GMT"),
        );
        assert_eq!(retry_delay(1, base, &far), MAX_RETRY_AFTER);
        let past = dated(
            "Mon, 30 Nov 2026 09:00:00 GMT",
            Some("Mon, 30 Nov 2026 10:00:00 GMT"),
        );
        assert_eq!(retry_delay(1, base, &past), Duration::ZERO);
        // without the server's Date, or with a date that does not parse: the normal backoff
        let undated = dated("Mon, 30 Nov 2026 10:00:45 GMT", None);
        assert_eq!(retry_delay(1, base, &undated), base);
        assert_eq!(retry_delay(1, base, &dated("soon", None)), base);
    }

    /// Answers in order, one per request.
    fn scripted(answers: Vec<Outcome>) -> Fake<impl FnMut(&Request) -> Outcome> {
        let mut answers = VecDeque::from(answers);
        Fake::new(move |_: &Request| answers.pop_front().expect("an answer for every request"))
    }

    #[test]
    fn retries_only_transient_failures_in_order() {
        let mut t = scripted(vec![resp(503), resp(200), resp(404), resp(200)]);
        let reqs = vec![
            Request::new(Method::Get, "a"),
            Request::new(Method::Get, "b"),
            Request::new(Method::Get, "c"),
        ];
        let (out, sent) = send_with_retries(&mut t, &reqs, 2, 2, Duration::from_millis(10));
        assert_eq!(
            out.iter()
                .map(|o| o.as_ref().unwrap().status)
                .collect::<Vec<_>>(),
            [200, 200, 404]
        );
        assert_eq!(t.log, ["GET a", "GET b", "GET c", "GET a"]);
        assert_eq!(sent, 4);
        assert_eq!(t.slept, [Duration::from_millis(10)]);
    }

    #[test]
    fn gives_up_after_the_retry_budget() {
        let mut t = scripted(vec![resp(502), resp(502), resp(502)]);
        let (out, sent) = send_with_retries(
            &mut t,
            &[Request::new(Method::Get, "a")],
            1,
            2,
            Duration::ZERO,
        );
        assert_eq!(out[0].as_ref().unwrap().status, 502);
        assert_eq!(sent, 3);
    }

    #[test]
    fn encodes_segments() {
        assert_eq!(encode_segment("edu:berkeley:app"), "edu%3Aberkeley%3Aapp");
        assert_eq!(encode_segment("a b/ü"), "a%20b%2F%C3%BC");
        assert_eq!(encode_segment("user.name-1_~"), "user.name-1_~");
        assert_eq!(encode_segment("."), "%2E");
        assert_eq!(encode_segment(".."), "%2E%2E");
        assert_eq!(encode_segment("..."), "...");
    }

    #[test]
    fn base64_matches_rfc4648() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
            ("user:pa:ss", "dXNlcjpwYTpzcw=="),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    #[test]
    fn truncates_on_char_boundary() {
        assert_eq!(truncate("héllo", 2), "hé…");
        assert_eq!(truncate("ok", 5), "ok");
    }
}
