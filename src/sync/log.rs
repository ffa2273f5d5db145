//! A leveled logger writing single lines to stderr (`wasi:cli/stderr` in the component).

use crate::settings::LogLevel;

#[derive(Debug, Clone, Copy)]
pub struct Logger {
    pub level: LogLevel,
}

impl Logger {
    pub fn enabled(&self, level: LogLevel) -> bool {
        level <= self.level
    }

    pub fn log(&self, level: LogLevel, message: &str) {
        if self.enabled(level) {
            let name = match level {
                LogLevel::Error => "error",
                LogLevel::Warn => "warn",
                LogLevel::Info => "info",
                LogLevel::Debug => "debug",
            };
            eprintln!("grouper-sync {name}: {message}");
        }
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
