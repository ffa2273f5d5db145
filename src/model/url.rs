//! The one reading of a service URL, shared by the component (validating settings) and the host
//! (the egress allow-list compares the configured URLs with every request's URI in this form).
//! It is read by the `http` crate's `Uri`, the type a request travels as through `wasi:http`, so
//! what is checked is what is sent.

use std::fmt;

/// An `http://` or `https://` URL with a host and no credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    https: bool,
    /// Lower-case; an IPv6 literal keeps its brackets.
    host: String,
    /// Filled in from the scheme when the URL names none.
    port: u16,
}

/// Why a text is not an [`HttpUrl`]. Never holds the text (it may hold a password).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlError {
    /// Not a URL `http::Uri` reads (spaces, stray characters, no scheme).
    Malformed,
    /// A scheme other than `http` or `https`.
    NotHttp,
    NoHost,
    /// `user:password@` in the authority: credentials go in their own settings.
    Credentials,
    /// A port that is not 1-65535.
    BadPort,
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UrlError::Malformed => "not a URL",
            UrlError::NotHttp => "not an http:// or https:// URL",
            UrlError::NoHost => "no host",
            UrlError::Credentials => "credentials in the URL",
            UrlError::BadPort => "a port that is not 1-65535",
        })
    }
}

impl std::error::Error for UrlError {}

impl HttpUrl {
    pub fn parse(text: &str) -> Result<HttpUrl, UrlError> {
        let uri: http::Uri = text.trim().parse().map_err(|_| UrlError::Malformed)?;
        HttpUrl::from_uri(&uri)
    }

    /// A request's URI in the same form (a URI without scheme or host is an error).
    pub fn from_uri(uri: &http::Uri) -> Result<HttpUrl, UrlError> {
        let https = match uri.scheme_str() {
            Some(s) if s.eq_ignore_ascii_case("https") => true,
            Some(s) if s.eq_ignore_ascii_case("http") => false,
            Some(_) => return Err(UrlError::NotHttp),
            None => return Err(UrlError::Malformed),
        };
        let authority = uri.authority().ok_or(UrlError::NoHost)?;
        if authority.as_str().contains('@') {
            return Err(UrlError::Credentials);
        }
        let host = authority.host();
        if host.is_empty() {
            return Err(UrlError::NoHost);
        }
        // `port_u16` is `None` both for no port and for one that is not a u16: tell them apart
        let names_port = authority
            .as_str()
            .strip_prefix(host)
            .is_some_and(|rest| rest.starts_with(':'));
        let port = match (names_port, authority.port_u16()) {
            (false, _) => {
                if https {
                    443
                } else {
                    80
                }
            }
            (true, Some(p)) if p != 0 => p,
            (true, _) => return Err(UrlError::BadPort),
        };
        Ok(HttpUrl {
            https,
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    pub fn is_https(&self) -> bool {
        self.https
    }

    /// `host:port`, the port filled in.
    pub fn authority(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// `scheme://host:port`: the scheme counts, so `http://grouper:443` is not `https://grouper`.
    pub fn origin(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}:{}", self.host, self.port)
    }

    /// `localhost`, a name under `.localhost`, or a loopback address: this machine.
    pub fn is_loopback(&self) -> bool {
        let bare = self.host.trim_start_matches('[').trim_end_matches(']');
        match bare.parse::<std::net::IpAddr>() {
            Ok(ip) => ip.is_loopback(),
            Err(_) => bare == "localhost" || bare.ends_with(".localhost"),
        }
    }

    /// `http://` to another machine: credentials sent there cross the network in clear text.
    pub fn is_cleartext_remote(&self) -> bool {
        !self.https && !self.is_loopback()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authority_and_origin_fill_the_port_and_lower_the_case() {
        for (url, origin) in [
            (
                "https://CalGroups.Berkeley.edu/gws",
                Ok("https://calgroups.berkeley.edu:443"),
            ),
            (
                "HTTP://Hub.Example.EDU:80/hub/api",
                Ok("http://hub.example.edu:80"),
            ),
            ("http://127.0.0.1:8081/hub/api", Ok("http://127.0.0.1:8081")),
            ("http://[::1]:9/x", Ok("http://[::1]:9")),
            ("https://[::1]/gws", Ok("https://[::1]:443")),
            (" https://g.example.edu ", Ok("https://g.example.edu:443")),
            ("http://h:0/", Err(UrlError::BadPort)),
            ("http://h:99999/", Err(UrlError::BadPort)),
            ("http://h:x/", Err(UrlError::BadPort)),
            ("http://user:pw@h/", Err(UrlError::Credentials)),
            ("https://user@h/", Err(UrlError::Credentials)),
            ("ftp://h/", Err(UrlError::NotHttp)),
            ("http:///x", Err(UrlError::Malformed)),
            ("/hub/api", Err(UrlError::Malformed)),
            ("https://g.example.edu/a b", Err(UrlError::Malformed)),
            ("", Err(UrlError::Malformed)),
        ] {
            let got = HttpUrl::parse(url).map(|u| u.origin());
            assert_eq!(got.as_deref(), origin.as_deref(), "{url}");
        }
        let u = HttpUrl::parse("http://[::1]/x").unwrap();
        assert_eq!(u.authority(), "[::1]:80");
        assert!(!u.is_https());
    }

    #[test]
    fn a_requests_uri_reads_as_the_configured_url_does() {
        let uri: http::Uri = "https://calgroups.example.edu/gws/servicesRest/json/v2_2_100/groups"
            .parse()
            .unwrap();
        assert_eq!(
            HttpUrl::from_uri(&uri),
            HttpUrl::parse("https://CALGROUPS.example.edu:443/gws")
        );
        let relative: http::Uri = "/hub/api/users".parse().unwrap();
        assert_eq!(HttpUrl::from_uri(&relative), Err(UrlError::Malformed));
    }

    #[test]
    fn cleartext_to_another_machine_is_told_apart_from_loopback() {
        for (url, remote) in [
            ("http://hub.example.edu/hub/api", true),
            ("http://127.0.0.1:8081/hub/api", false),
            ("http://127.8.0.1/", false),
            ("http://[::1]:8081/", false),
            ("http://localhost:8081/", false),
            ("http://hub.localhost/", false),
            ("https://hub.example.edu/", false),
        ] {
            assert_eq!(
                HttpUrl::parse(url).unwrap().is_cleartext_remote(),
                remote,
                "{url}"
            );
        }
    }
}
