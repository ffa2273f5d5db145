//! The component's stdout under `sync.run`: one JSON line per write batch the hub or Grouper
//! confirmed (`jupyterhub_grouper_sync::sync::report::ProgressLine`), handed to the host as each line
//! ends, so that a pass stopped midway still leaves every confirmed change in the change log.

use bytes::Bytes;
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
                Ok(p) => (self.on_batch)(p.confirmed),
                Err(e) => tracing::warn!(
                    "the component wrote a line to stdout that is not a progress line ({e})"
                ),
            }
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
}
