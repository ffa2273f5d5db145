//! The component's log: leveled records with a message and fields. Where a host reads the
//! component's progress (the typed `sync` exports) each record is one `{"log": …}` line on stdout
//! beside the confirmed batches, so the host logs it live with its level and fields; elsewhere
//! (`wasi:cli/run`, the HTTP entry) it is one text line on stderr.

use crate::settings::LogLevel;
use crate::sync::report::ProgressLine;
use serde::{Deserialize, Serialize};
use std::io::Write as _;

/// One log record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRecord {
    pub level: LogLevel,
    pub message: String,
    /// Named values a log search can use (the group, the outcome, counts); the message says
    /// the same in words.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<(String, String)>,
}

/// Where records go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogTo {
    /// `grouper-sync LEVEL: message` lines on stderr.
    Stderr,
    /// `{"log": …}` lines on stdout, the progress channel of the typed exports.
    ProgressLines,
}

#[derive(Debug, Clone, Copy)]
pub struct Logger {
    pub level: LogLevel,
    pub to: LogTo,
}

impl Logger {
    pub fn new(level: LogLevel) -> Logger {
        Logger {
            level,
            to: LogTo::Stderr,
        }
    }

    pub fn enabled(&self, level: LogLevel) -> bool {
        level <= self.level
    }

    /// A record with fields.
    pub fn record(&self, level: LogLevel, message: &str, fields: &[(&str, String)]) {
        if !self.enabled(level) {
            return;
        }
        match self.to {
            LogTo::Stderr => eprintln!("grouper-sync {level}: {message}"),
            LogTo::ProgressLines => {
                let line = ProgressLine::Log(LogRecord {
                    level,
                    message: message.to_string(),
                    fields: fields
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.clone()))
                        .collect(),
                });
                if let Ok(text) = serde_json::to_string(&line) {
                    let mut out = std::io::stdout().lock();
                    let _ = writeln!(out, "{text}");
                    let _ = out.flush();
                }
            }
        }
    }

    pub fn log(&self, level: LogLevel, message: &str) {
        self.record(level, message, &[])
    }

    pub fn info(&self, message: &str) {
        self.log(LogLevel::Info, message)
    }
    pub fn warn(&self, message: &str) {
        self.log(LogLevel::Warn, message)
    }
    pub fn debug(&self, message: &str) {
        self.log(LogLevel::Debug, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_one_log_line_beside_the_confirmed_batches() {
        let line = ProgressLine::Log(LogRecord {
            level: LogLevel::Warn,
            message: "withholding 3 removal(s)".into(),
            fields: vec![("group".into(), "edu:x:users".into())],
        });
        let text = serde_json::to_string(&line).unwrap();
        assert_eq!(
            text,
            r#"{"log":{"level":"warn","message":"withholding 3 removal(s)","fields":[["group","edu:x:users"]]}}"#
        );
        assert_eq!(serde_json::from_str::<ProgressLine>(&text).unwrap(), line);
        let bare: ProgressLine =
            serde_json::from_str(r#"{"log":{"level":"info","message":"m"}}"#).unwrap();
        assert!(matches!(bare, ProgressLine::Log(r) if r.fields.is_empty()));
    }
}
