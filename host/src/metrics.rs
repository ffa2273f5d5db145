//! Pass metrics in Prometheus text format, and a small HTTP endpoint serving `/metrics`,
//! `/healthz` (the process is alive) and `/readyz` (the last success is younger than two intervals).

use crate::outcome::PassSummary;
use jupyterhub_grouper_sync::error::ErrorKind;
use jupyterhub_grouper_sync::report::Outcome;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const RESULTS: &[Outcome] = &[
    Outcome::Converged,
    Outcome::ChangesRemaining,
    Outcome::RemovalsWithheld,
    Outcome::Failed,
];

#[derive(Default)]
struct State {
    passes: BTreeMap<Outcome, u64>,
    errors: BTreeMap<ErrorKind, u64>,
    last_attempt: Option<f64>,
    last_success: Option<f64>,
    last_duration: Option<f64>,
    duration_sum: f64,
    added: u64,
    removed: u64,
    skipped: u64,
    withheld: u64,
    egress_denied: u64,
}

#[derive(Default)]
pub struct Metrics {
    state: Mutex<State>,
}

fn now_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl Metrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records one pass. A pass that withheld removals (or left changes for the next pass) still
    /// brought the group as far as safety allows, so it counts as a success for readiness.
    pub fn record(&self, pass: &PassSummary) {
        let mut s = self.lock();
        let now = now_seconds();
        *s.passes.entry(pass.outcome).or_default() += 1;
        for kind in &pass.error_kinds {
            *s.errors.entry(*kind).or_default() += 1;
        }
        s.last_attempt = Some(now);
        if pass.succeeded() {
            s.last_success = Some(now);
        }
        s.last_duration = Some(pass.duration.as_secs_f64());
        s.duration_sum += pass.duration.as_secs_f64();
        s.added += pass.added as u64;
        s.removed += pass.removed as u64;
        s.skipped += pass.unmapped as u64;
        s.withheld += pass.withheld as u64;
        s.egress_denied += pass.denied_requests as u64;
    }

    pub fn ready(&self, sync_every: Duration) -> bool {
        self.lock()
            .last_success
            .is_some_and(|t| now_seconds() - t < 2.0 * sync_every.as_secs_f64())
    }

    pub fn render(&self) -> String {
        let s = self.lock();
        let mut out = String::new();
        let _ = writeln!(out, "# HELP grouper_sync_passes_total Sync passes by result.\n# TYPE grouper_sync_passes_total counter");
        for r in RESULTS {
            let _ = writeln!(
                out,
                "grouper_sync_passes_total{{result=\"{}\"}} {}",
                r.as_str(),
                s.passes.get(r).copied().unwrap_or(0)
            );
        }
        let _ = writeln!(out, "# HELP grouper_sync_pass_errors_total Errors of passes, by kind.\n# TYPE grouper_sync_pass_errors_total counter");
        for kind in ErrorKind::ALL {
            let _ = writeln!(
                out,
                "grouper_sync_pass_errors_total{{kind=\"{}\"}} {}",
                kind.as_str(),
                s.errors.get(kind).copied().unwrap_or(0)
            );
        }
        let gauge = |out: &mut String, name: &str, help: &str, v: Option<f64>| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
            if let Some(v) = v {
                let _ = writeln!(out, "{name} {v}");
            }
        };
        gauge(
            &mut out,
            "grouper_sync_last_attempt_timestamp_seconds",
            "When the last pass finished.",
            s.last_attempt,
        );
        gauge(
            &mut out,
            "grouper_sync_last_success_timestamp_seconds",
            "When the last pass that did not fail finished.",
            s.last_success,
        );
        gauge(
            &mut out,
            "grouper_sync_last_pass_duration_seconds",
            "Duration of the last pass.",
            s.last_duration,
        );
        let total: u64 = s.passes.values().sum();
        let _ = writeln!(
            out,
            "# HELP grouper_sync_pass_duration_seconds Pass durations.\n# TYPE grouper_sync_pass_duration_seconds summary\n\
             grouper_sync_pass_duration_seconds_sum {}\ngrouper_sync_pass_duration_seconds_count {total}",
            s.duration_sum
        );
        for (name, help, v) in [
            (
                "grouper_sync_members_added_total",
                "Members added to Grouper groups.",
                s.added,
            ),
            (
                "grouper_sync_members_removed_total",
                "Members removed from Grouper groups.",
                s.removed,
            ),
            (
                "grouper_sync_users_skipped_total",
                "Selected hub users without a usable subject.",
                s.skipped,
            ),
            (
                "grouper_sync_removals_withheld_total",
                "Removals held back by the safety rules.",
                s.withheld,
            ),
            (
                "grouper_sync_egress_denied_total",
                "Outgoing requests refused by the egress policy.",
                s.egress_denied,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        }
        out
    }
}

/// Serves the endpoints until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, metrics: Arc<Metrics>, sync_every: Duration) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let mut read = 0;
            while read < buf.len() {
                match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf[read..]))
                    .await
                {
                    Ok(Ok(0)) | Err(_) | Ok(Err(_)) => break,
                    Ok(Ok(n)) => read += n,
                }
                if buf[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            let request = String::from_utf8_lossy(&buf[..read]);
            let path = request.split_whitespace().nth(1).unwrap_or("");
            let (status, content_type, body) = match path {
                "/metrics" => ("200 OK", "text/plain; version=0.0.4", metrics.render()),
                "/healthz" => ("200 OK", "text/plain", "ok\n".to_string()),
                "/readyz" if metrics.ready(sync_every) => {
                    ("200 OK", "text/plain", "ready\n".to_string())
                }
                "/readyz" => (
                    "503 Service Unavailable",
                    "text/plain",
                    "no successful pass in the last two intervals\n".to_string(),
                ),
                _ => ("404 Not Found", "text/plain", "not found\n".to_string()),
            };
            let head = format!("HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(body.as_bytes()).await;
        });
    }
}

pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pass(outcome: Outcome, kinds: &[ErrorKind]) -> PassSummary {
        let call = crate::runner::Call {
            result: Err(crate::runner::Stopped::Trapped("x".into())),
            denied_requests: 0,
            duration: Duration::from_millis(500),
            stdout: String::new(),
            stderr: String::new(),
        };
        let mut p = PassSummary::from_call(&call);
        p.outcome = outcome;
        p.error_kinds = kinds.to_vec();
        p
    }

    #[test]
    fn records_and_renders() {
        let m = Metrics::default();
        assert!(!m.ready(Duration::from_secs(60)));
        let mut ok = pass(Outcome::Converged, &[]);
        (ok.added, ok.removed, ok.unmapped) = (3, 1, 2);
        m.record(&ok);
        let mut failed = pass(
            Outcome::Failed,
            &[ErrorKind::GrouperUnavailable, ErrorKind::EgressDenied],
        );
        failed.denied_requests = 2;
        m.record(&failed);
        let text = m.render();
        assert!(text.contains("grouper_sync_passes_total{result=\"converged\"} 1"));
        assert!(text.contains("grouper_sync_passes_total{result=\"failed\"} 1"));
        assert!(text.contains("grouper_sync_passes_total{result=\"removals_withheld\"} 0"));
        assert!(text.contains("grouper_sync_pass_errors_total{kind=\"grouper-unavailable\"} 1"));
        assert!(text.contains("grouper_sync_pass_errors_total{kind=\"egress-denied\"} 1"));
        assert!(text.contains("grouper_sync_pass_errors_total{kind=\"config\"} 0"));
        assert!(text.contains("grouper_sync_members_added_total 3"));
        assert!(text.contains("grouper_sync_users_skipped_total 2"));
        assert!(text.contains("grouper_sync_egress_denied_total 2"));
        assert!(text.contains("grouper_sync_pass_duration_seconds_count 2"));
        assert!(text.contains("grouper_sync_last_success_timestamp_seconds "));
        assert!(m.ready(Duration::from_secs(60)));
    }
}
