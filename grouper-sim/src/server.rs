//! A small HTTP/1.1 server: one request per connection (`Connection: close`), a thread per
//! connection. Closing after every answer is what lets a fault cut a body short for real.

use crate::{SimRequest, SimResponse};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub type Handler = Arc<dyn Fn(&SimRequest) -> SimResponse + Send + Sync>;

/// A running server; stops accepting when dropped.
pub struct ServerHandle {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ServerHandle {
    /// The base URL a sync client is configured with, e.g.
    /// `http://127.0.0.1:PORT/grouper-ws/servicesRest/json/v2_2_100`.
    pub fn base_url(&self, version: &str) -> String {
        format!(
            "http://{}/grouper-ws/servicesRest/json/{version}",
            self.addr
        )
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr); // wake the accept loop
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Serves `handler` on `addr` (e.g. "127.0.0.1:0").
pub fn serve(addr: &str, handler: Handler) -> std::io::Result<ServerHandle> {
    let listener = TcpListener::bind(addr)?;
    let local = listener.local_addr()?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let thread = std::thread::spawn(move || {
        for conn in listener.incoming() {
            if flag.load(Ordering::SeqCst) {
                break;
            }
            if let Ok(stream) = conn {
                let handler = Arc::clone(&handler);
                std::thread::spawn(move || {
                    let _ = serve_connection(stream, &handler);
                });
            }
        }
    });
    Ok(ServerHandle {
        addr: local,
        stop,
        thread: Some(thread),
    })
}

fn bad_request(mut stream: TcpStream, why: &str) -> std::io::Result<()> {
    let body = format!("bad request: {why}\n");
    write!(
        stream,
        "HTTP/1.1 400 Bad Request\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

fn read_request(reader: &mut BufReader<TcpStream>) -> Result<SimRequest, String> {
    let mut line = String::new();
    reader.read_line(&mut line).map_err(|e| e.to_string())?;
    let mut parts = line.split_whitespace();
    let (method, target) = match (parts.next(), parts.next()) {
        (Some(m), Some(t)) => (m.to_string(), t.to_string()),
        _ => return Err("no request line".into()),
    };
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).map_err(|e| e.to_string())?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':').ok_or("malformed header")?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let mut body = Vec::new();
    if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).map_err(|e| e.to_string())?;
            let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| "bad chunk size")?;
            let mut chunk = vec![0; n + 2];
            reader.read_exact(&mut chunk).map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    } else if let Some(len) = header("content-length") {
        let n: usize = len.parse().map_err(|_| "bad content-length")?;
        body.resize(n, 0);
        reader.read_exact(&mut body).map_err(|e| e.to_string())?;
    }
    Ok(SimRequest {
        method,
        target,
        headers,
        body,
    })
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        409 => "Conflict",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

fn serve_connection(stream: TcpStream, handler: &Handler) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let req = match read_request(&mut reader) {
        Ok(r) => r,
        Err(why) => return bad_request(stream, &why),
    };
    let resp = handler(&req);
    if let Some(d) = resp.delay {
        std::thread::sleep(d);
    }
    let mut out = stream;
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        resp.status,
        reason(resp.status),
        resp.body.len()
    );
    for (k, v) in &resp.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    out.write_all(head.as_bytes())?;
    let body = match resp.truncate_at {
        Some(cut) => &resp.body[..cut.min(resp.body.len())],
        None => &resp.body[..],
    };
    match resp.stall {
        Some(pause) => {
            let (first, rest) = body.split_at(body.len() / 2);
            out.write_all(first)?;
            out.flush()?;
            std::thread::sleep(pause);
            out.write_all(rest)?;
        }
        None => out.write_all(body)?,
    }
    out.flush()?;
    out.shutdown(std::net::Shutdown::Both)
}
