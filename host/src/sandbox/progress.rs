//! The component's stdout under the typed exports: one JSON line per write batch the hub or
//! Grouper confirmed and per log record (`jupyterhub_grouper_sync::sync::report::ProgressLine`),
//! handled as each line ends: a pass stopped midway still leaves every confirmed change in the
//! change log, and the component's records are logged live, with their level and fields.

use bytes::Bytes;
use jupyterhub_grouper_sync::settings::LogLevel;
use jupyterhub_grouper_sync::sync::log::LogRecord;
use jupyterhub_grouper_sync::sync::report::{ConfirmedBatch, ProgressLine};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

/// What the host does with each confirmed batch (called on the runtime's thread, in order).
pub type OnBatch = Arc<dyn Fn(ConfirmedBatch) + Send + Sync>;

/// A line longer than this is not a progress line: it is dropped (and said so) unread.
const MAX_LINE: usize = 8 << 20;

/// The component's stdout, cut into lines as it is written.
#[derive(Clone)]
pub struct ProgressStdout {
    partial: Arc<Mutex<Vec<u8>>>,
    on_batch: OnBatch,
}

impl ProgressStdout {
    pub fn new(on_batch: OnBatch) -> ProgressStdout {
        ProgressStdout {
            partial: Arc::default(),
            on_batch,
        }
    }

    fn take(&self, bytes: &[u8]) {
        let mut lines = Vec::new();
        {
            let mut partial = self.partial.lock().unwrap_or_else(|e| e.into_inner());
            partial.extend_from_slice(bytes);
            while let Some(end) = partial.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = partial.drain(..=end).collect();
                lines.push(line);
            }
            if partial.len() > MAX_LINE {
                tracing::warn!("the component wrote an overlong line to stdout; dropped");
                partial.clear();
            }
        }
        for line in lines {
            let text = String::from_utf8_lossy(&line);
            if text.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<ProgressLine>(&text) {
                Ok(ProgressLine::Confirmed(batch)) => (self.on_batch)(batch),
                Ok(ProgressLine::Log(record)) => emit(&record),
                Err(e) => tracing::warn!(
                    "the component wrote a line to stdout that is not a progress line ({e})"
                ),
            }
        }
    }
}

/// Logs one of the component's records through tracing: its level, its message, and its fields
/// (`group` as a field of its own, the rest as `fields`).
pub fn emit(record: &LogRecord) {
    let group = record
        .fields
        .iter()
        .find(|(k, _)| k == "group")
        .map(|(_, v)| v.as_str());
    let rest: Vec<String> = record
        .fields
        .iter()
        .filter(|(k, _)| k != "group")
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let rest = (!rest.is_empty()).then(|| rest.join(" "));
    let message = record.message.as_str();
    macro_rules! at {
        ($level:ident) => {
            tracing::$level!(target: "component", group, fields = rest.as_deref(), "{message}")
        };
    }
    match record.level {
        LogLevel::Error => at!(error),
        LogLevel::Warn => at!(warn),
        LogLevel::Info => at!(info),
        LogLevel::Debug => at!(debug),
    }
}

/// The log records among lines the component wrote (a `check`'s stdout, read after the call).
pub fn emit_logged(stdout: &str) {
    for line in stdout.lines() {
        if let Ok(ProgressLine::Log(record)) = serde_json::from_str::<ProgressLine>(line) {
            emit(&record);
        }
    }
}

impl IsTerminal for ProgressStdout {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for ProgressStdout {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for ProgressStdout {
    async fn ready(&mut self) {}
}

impl OutputStream for ProgressStdout {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.take(&bytes);
        Ok(())
    }
    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }
    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(1 << 20)
    }
}

impl tokio::io::AsyncWrite for ProgressStdout {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.take(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_handed_over_as_they_end_whatever_the_write_sizes() {
        let seen: Arc<Mutex<Vec<ConfirmedBatch>>> = Arc::default();
        let sink = seen.clone();
        let out = ProgressStdout::new(Arc::new(move |b| sink.lock().unwrap().push(b)));
        let line = r#"{"confirmed": {"target": "a:b", "direction": "to_grouper", "hub_group": null, "written": "grouper:a:b", "approved_plan": null, "changes": [{"op": "remove", "subject": "1", "source": "ldap", "hub_user": null, "reason": "not-in-hub"}]}}"#;
        let text = format!("{line}\nnot json\n{line}\n");
        let (first, rest) = text.as_bytes().split_at(40);
        out.take(first);
        assert!(
            seen.lock().unwrap().is_empty(),
            "half a line is not a batch"
        );
        out.take(rest);
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].removals(), 1);
        assert_eq!(seen[0].written, "grouper:a:b");
    }

    /// A buffer the test's subscriber writes to.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn log_lines_are_logged_with_their_level_and_fields_not_taken_for_batches() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(move || writer.clone())
            .finish();
        let batches: Arc<Mutex<usize>> = Arc::default();
        let count = batches.clone();
        let out = ProgressStdout::new(Arc::new(move |_| *count.lock().unwrap() += 1));
        tracing::subscriber::with_default(subscriber, || {
            out.take(
                br#"{"log":{"level":"warn","message":"a:b: withholding 3 removal(s)","fields":[["group","a:b"],["plan","0123456789abcdef"]]}}
{"log":{"level":"debug","message":"to add []"}}
"#,
            );
        });
        assert_eq!(*batches.lock().unwrap(), 0);
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let records: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(records.len(), 2, "{text}");
        assert_eq!(records[0]["level"], "WARN");
        assert_eq!(records[0]["message"], "a:b: withholding 3 removal(s)");
        assert_eq!(records[0]["group"], "a:b");
        assert_eq!(records[0]["fields"], "plan=0123456789abcdef");
        assert_eq!(records[0]["target"], "component");
        assert_eq!(records[1]["level"], "DEBUG");
        assert!(records[1].get("group").is_none());
    }
}
