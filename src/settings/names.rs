//! The naming rules of both sides: Grouper group and folder names, hub group names, and the
//! group templates that patterns fill in.

use super::{err, ConfigError};
use crate::error::SyncError;
use crate::model::NamePattern;

/// Grouper group names are `stem:stem:extension`; the path is put in a URL segment.
pub fn parse_group_path(key: &str, value: &str) -> Result<String, ConfigError> {
    let v = value.trim();
    if v.is_empty() || v.contains('/') || v.starts_with(':') || v.ends_with(':') || v.contains("::")
    {
        return err(format!(
            "{key} must be a Grouper group name such as edu:berkeley:app:datahub:datahub-users, got {value:?}"
        ));
    }
    Ok(v.to_string())
}

/// A hub group name as the groups API takes it in a path.
pub(super) fn parse_hub_group_name(name: &str) -> Result<(), ConfigError> {
    if name.is_empty()
        || name.len() > 255
        || name.contains('/')
        || name.chars().any(char::is_control)
    {
        return err(format!("hub_group {name:?} is not a JupyterHub group name"));
    }
    Ok(())
}

/// Is `group` inside `folder` (at any depth)?
pub fn in_folder(group: &str, folder: &str) -> bool {
    group
        .strip_prefix(folder)
        .is_some_and(|rest| rest.starts_with(':') && rest.len() > 1)
}

/// The regex of setting `key`, matching whole names only.
pub fn anchored(key: &str, pattern: &str) -> Result<NamePattern, ConfigError> {
    regex_lite::Regex::new(&format!("^(?:{pattern})$"))
        .map(NamePattern::new)
        .map_err(|e| SyncError::config(format!("{key} {pattern:?} is not a valid regex: {e}")))
}

/// A `hub_group_pattern`, matched against whole hub group names.
pub fn group_pattern(pattern: &str) -> Result<NamePattern, ConfigError> {
    anchored("hub_group_pattern", pattern)
}

/// The `{n}` fields of a group template.
pub fn template_fields(template: &str) -> Vec<usize> {
    let mut fields = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) => {
                if let Ok(n) = after[..close].parse() {
                    fields.push(n);
                }
                rest = &after[close + 1..];
            }
            None => break,
        }
    }
    fields
}

/// Characters a hub group's name or capture may not bring into a Grouper group name: `:` would
/// make a sub-folder, braces a field, control characters an unreadable name.
fn forbidden_in_capture(c: char) -> bool {
    c == ':' || c == '{' || c == '}' || c.is_control()
}

/// A group template with a hub group's name (`{0}`) and captures (`{1}`…) filled in, in one
/// scan: a filled-in value is never read as a field again. A value holding `:`, a brace or a
/// control character is refused (`Err` says which field and which character).
pub fn fill_template(template: &str, captures: &regex_lite::Captures) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let field = after
            .find('}')
            .and_then(|close| Some((after[..close].parse::<usize>().ok()?, close)));
        match field {
            Some((n, close)) => {
                let value = captures.get(n).map_or("", |m| m.as_str());
                if let Some(c) = value.chars().find(|&c| forbidden_in_capture(c)) {
                    let what = if n == 0 {
                        "its name".to_string()
                    } else {
                        format!("capture {{{n}}}")
                    };
                    return Err(format!(
                        "{what} holds {c:?}; a hub group name or capture may hold any character but ':' (a sub-folder), braces and control characters"
                    ));
                }
                out.push_str(value);
                rest = &after[close + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}
