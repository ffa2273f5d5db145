//! The config file (TOML) and secret files: values as the settings take them, and errors that
//! never quote a line (it may hold a secret).

use anyhow::{anyhow, bail, Context, Result};
use std::path::Path;

pub(crate) fn read_secret_file(
    path: &str,
    read: &dyn Fn(&Path) -> Result<String>,
) -> Result<String> {
    let text = read(Path::new(path)).with_context(|| format!("reading secret file {path}"))?;
    Ok(text.trim_end_matches(['\n', '\r']).to_string())
}

pub(crate) fn toml_to_string(key: &str, v: &toml::Value) -> Result<String> {
    Ok(match v {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Array(items) => items
            .iter()
            .map(|i| match i {
                toml::Value::String(s) => Ok(s.clone()),
                other => toml_to_string(key, other),
            })
            .collect::<Result<Vec<_>>>()?
            .join(","),
        _ => bail!("config file: {key} must be a string, number, boolean or list"),
    })
}

/// A TOML syntax error by position and reason only: toml's own message quotes the offending
/// line, which may be `grouper_password = "…"`.
pub(crate) fn toml_error(path: &str, text: &str, e: &toml::de::Error) -> anyhow::Error {
    let at = e
        .span()
        .map(|span| {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!(" at line {line}, column {column}")
        })
        .unwrap_or_default();
    anyhow!(
        "parsing config file {path}{at}: {} (the line is not shown: it may hold a secret)",
        e.message().trim()
    )
}
