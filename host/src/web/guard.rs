//! What the status listener checks before anything else: the `Host` a request names (a page read
//! through DNS rebinding names the attacker's host), and whether a cookie may authenticate it at
//! all. Browsers label every request with fetch metadata (`Sec-Fetch-Mode`, `-Dest`, `-Site`);
//! without `subdomain_host` every user's server shares the hub's origin, so a script a user
//! serves can send requests that carry an admin's cookies. As JupyterHub does for its own pages
//! (`_xsrf_utils._needs_check_xsrf`), a cookie counts only on a top-level navigation; a script's
//! `fetch`, a frame or an image never signs anyone in.

/// The host names (any port) a page request may name in `Host`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHosts {
    names: Vec<String>,
}

/// Loopback names: no other site can make a browser send these.
const LOOPBACK: &[&str] = &["localhost", "127.0.0.1", "::1"];

impl AllowedHosts {
    /// `configured` names (from `status_hosts`, the hub's public URLs) plus the loopback names.
    /// A name may carry a port or a scheme (`https://hub.example.org:8443/`); only the host counts.
    pub fn new<'a>(configured: impl IntoIterator<Item = &'a str>) -> AllowedHosts {
        let mut names: Vec<String> = LOOPBACK.iter().map(|n| n.to_string()).collect();
        for name in configured {
            if let Some(host) = host_name(name) {
                if !names.contains(&host) {
                    names.push(host);
                }
            }
        }
        AllowedHosts { names }
    }

    pub fn allows(&self, host_header: Option<&str>) -> bool {
        host_header
            .and_then(header_host)
            .is_some_and(|h| self.names.contains(&h))
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }
}

/// The lower-cased host of a configured name or URL, without scheme, port, path or IPv6 brackets.
fn host_name(text: &str) -> Option<String> {
    let text = text.trim();
    let text = text.split_once("://").map_or(text, |(_, rest)| rest);
    let authority = text.split(['/', '?', '#']).next()?;
    bare_host(authority.rsplit_once('@').map_or(authority, |(_, h)| h))
}

/// The host a `Host` header names: an authority without user info (anything else is refused).
fn header_host(header: &str) -> Option<String> {
    if header.contains(['@', '/', '?', '#']) {
        return None;
    }
    bare_host(header.trim())
}

fn bare_host(authority: &str) -> Option<String> {
    let host = if let Some(rest) = authority.strip_prefix('[') {
        rest.split_once(']')?.0
    } else {
        authority.split(':').next()?
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let valid = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '_'));
    valid.then_some(host)
}

/// The fetch-metadata headers of a request (absent in old browsers and non-browser clients).
#[derive(Debug, Clone, Copy, Default)]
pub struct FetchMetadata<'a> {
    pub mode: Option<&'a str>,
    pub dest: Option<&'a str>,
    pub site: Option<&'a str>,
}

impl FetchMetadata<'_> {
    /// Whether a session cookie may authenticate this request: only a top-level navigation (a
    /// link, the address bar, a form's submission), never from another site for a form.
    /// Requests without the headers pass (curl, old browsers); forms still need their CSRF token.
    pub fn cookie_may_authenticate(&self, method: &str) -> bool {
        let navigation = self.mode.is_none_or(|m| m == "navigate");
        let document = self.dest.is_none_or(|d| d == "document");
        let read_only = matches!(method, "GET" | "HEAD");
        let from_this_site = self.site.is_none_or(|s| s != "cross-site");
        navigation && document && (read_only || from_this_site)
    }

    /// Whether starting a sign-in makes sense: a script's request gets a refusal, not a
    /// redirect to the hub's login page.
    pub fn is_navigation(&self) -> bool {
        self.mode.is_none_or(|m| m == "navigate") && self.dest.is_none_or(|d| d == "document")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_compared_by_name_whatever_the_port() {
        let allowed = AllowedHosts::new(["hub.example.org", "https://Hub2.Example.org:8443/hub/"]);
        for ok in [
            "hub.example.org",
            "HUB.example.org:443",
            "hub2.example.org",
            "hub.example.org.",
            "127.0.0.1:9101",
            "localhost",
            "[::1]:80",
        ] {
            assert!(allowed.allows(Some(ok)), "{ok}");
        }
        for refused in [
            None,
            Some(""),
            Some("evil.example"),
            Some("evil.example:80"),
            Some("hub.example.org.evil.example"),
            Some("127.0.0.2"),
            Some("user@hub.example.org@evil.example"),
            Some("evil@hub.example.org"),
            Some("hub.example.org/"),
            Some("[::1"),
            Some("hub example.org"),
        ] {
            assert!(!allowed.allows(refused), "{refused:?}");
        }
    }

    #[test]
    fn a_cookie_counts_only_on_a_top_level_navigation() {
        let meta = |mode, dest, site| FetchMetadata {
            mode: Some(mode),
            dest: Some(dest),
            site: Some(site),
        };
        // the address bar, a link, the OAuth redirect, a form's POST from the page itself
        assert!(meta("navigate", "document", "none").cookie_may_authenticate("GET"));
        assert!(meta("navigate", "document", "same-origin").cookie_may_authenticate("GET"));
        assert!(meta("navigate", "document", "cross-site").cookie_may_authenticate("GET"));
        assert!(meta("navigate", "document", "same-origin").cookie_may_authenticate("POST"));
        // a script on a user's server (same origin): fetch, XHR, no-cors, frames, images
        for (mode, dest) in [
            ("cors", "empty"),
            ("same-origin", "empty"),
            ("no-cors", "empty"),
            ("no-cors", "image"),
            ("navigate", "iframe"),
            ("navigate", "frame"),
            ("navigate", "embed"),
            ("navigate", "object"),
        ] {
            for method in ["GET", "POST"] {
                assert!(
                    !meta(mode, dest, "same-origin").cookie_may_authenticate(method),
                    "{mode} {dest} {method}"
                );
            }
        }
        // another site's form
        assert!(!meta("navigate", "document", "cross-site").cookie_may_authenticate("POST"));
        // no metadata (curl, an old browser): the CSRF token still guards forms
        assert!(FetchMetadata::default().cookie_may_authenticate("POST"));
        assert!(FetchMetadata::default().is_navigation());
        assert!(!meta("cors", "empty", "same-origin").is_navigation());
    }
}
