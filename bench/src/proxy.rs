//! A TCP proxy in front of the hub that holds every request back by a fixed delay, as a hub that
//! is not on loopback would: the first bytes of each request (after the previous answer, or on
//! a new connection) wait `delay` before they are forwarded.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub struct DelayProxy {
    pub addr: std::net::SocketAddr,
}

pub fn start(upstream: std::net::SocketAddr, delay: Duration) -> std::io::Result<DelayProxy> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            std::thread::spawn(move || {
                if let Ok(server) = TcpStream::connect(upstream) {
                    relay(client, server, delay);
                }
            });
        }
    });
    Ok(DelayProxy { addr })
}

fn relay(client: TcpStream, server: TcpStream, delay: Duration) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let request_starts = Arc::new(AtomicBool::new(true));
    let (mut c_in, mut s_out) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    let starts = request_starts.clone();
    let upstream = std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match c_in.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if starts.swap(false, Ordering::SeqCst) {
                std::thread::sleep(delay);
            }
            if s_out.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = s_out.shutdown(Shutdown::Write);
    });
    let (mut s_in, mut c_out) = (server, client);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match s_in.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        request_starts.store(true, Ordering::SeqCst);
        if c_out.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = c_out.shutdown(Shutdown::Write);
    let _ = upstream.join();
}
