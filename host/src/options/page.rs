//! The status page's settings: where it listens (never on `metrics_addr`), which host names it
//! answers to, and how people sign in: through the hub (the OAuth client a hub-managed service
//! is given: `JUPYTERHUB_CLIENT_ID`, `JUPYTERHUB_OAUTH_CALLBACK_URL`, …) or, outside a hub, with
//! the `ui_token`.

use anyhow::{anyhow, bail, Result};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// The scope that lets a signed-in hub user approve plans and run passes, unless
/// `status_approve_scope` names another.
pub const DEFAULT_APPROVE_SCOPE: &str = "custom:grouper-sync:approve";

/// The hub's OAuth client this service is (from the environment the hub gives it).
#[derive(Clone, PartialEq, Eq)]
pub struct HubOAuthSettings {
    pub client_id: String,
    /// The service's API token, which is also its OAuth client secret (never printed).
    pub client_secret: String,
    /// `JUPYTERHUB_API_URL` without a trailing slash (token exchange, `/user`).
    pub api_url: String,
    /// Where browsers are sent to sign in (a path on the hub's origin, or a URL).
    pub authorize_url: String,
    /// `JUPYTERHUB_OAUTH_CALLBACK_URL`, exactly as the hub registered it.
    pub redirect_uri: String,
    /// A token with any of these may read the page (`JUPYTERHUB_OAUTH_ACCESS_SCOPES`).
    pub access_scopes: Vec<String>,
    /// A token with this scope may also approve and run passes.
    pub approve_scope: String,
}

impl std::fmt::Debug for HubOAuthSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubOAuthSettings")
            .field("client_id", &self.client_id)
            .field("api_url", &self.api_url)
            .field("redirect_uri", &self.redirect_uri)
            .field("access_scopes", &self.access_scopes)
            .field("approve_scope", &self.approve_scope)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, PartialEq, Eq, Default)]
pub struct PageOptions {
    /// Where the page listens (`status_addr`, or the address in `JUPYTERHUB_SERVICE_URL`).
    pub addr: Option<SocketAddr>,
    /// Host names the page answers to besides loopback (`status_hosts` and the hub's public URLs).
    pub hosts: Vec<String>,
    /// The path the hub's proxy serves the service at (`JUPYTERHUB_SERVICE_PREFIX`), with a
    /// trailing slash.
    pub prefix: Option<String>,
    /// Signs people in without a hub, and authorizes scripts as a bearer token (a secret).
    pub ui_token: Option<String>,
    pub hub_oauth: Option<HubOAuthSettings>,
    /// The hub's public URL is `https://`: every cookie is `Secure`.
    pub always_secure: bool,
}

impl std::fmt::Debug for PageOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PageOptions")
            .field("addr", &self.addr)
            .field("hosts", &self.hosts)
            .field("prefix", &self.prefix)
            .field("ui_token", &self.ui_token.as_ref().map(|_| "(set)"))
            .field("hub_oauth", &self.hub_oauth)
            .field("always_secure", &self.always_secure)
            .finish()
    }
}

/// The listening address setting `key` names (`metrics_addr`, `status_addr`), if set.
pub fn listen_addr(values: &BTreeMap<String, String>, key: &str) -> Result<Option<SocketAddr>> {
    values
        .get(key)
        .map(|a| {
            a.trim()
                .parse::<SocketAddr>()
                .map_err(|_| anyhow!("{key} must be IP:PORT, not {a:?}"))
        })
        .transpose()
}

/// The address of `JUPYTERHUB_SERVICE_URL` (`http://127.0.0.1:10101`). JupyterHub gives a managed
/// service without a `url` one with port 0: that service has no page.
fn listen_addr_of(url: &str) -> Result<Option<SocketAddr>> {
    if url.trim_end_matches('/').ends_with(":0") {
        return Ok(None);
    }
    let parsed = jupyterhub_grouper_sync::model::HttpUrl::parse(url)
        .map_err(|why| anyhow!("JUPYTERHUB_SERVICE_URL {url:?} is not a URL ({why})"))?;
    let authority = parsed.authority();
    let (host, port) = authority.rsplit_once(':').unwrap_or((&authority, "80"));
    let port: u16 = port.parse().unwrap_or(80);
    let ip = match host.trim_start_matches('[').trim_end_matches(']') {
        "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
        bare => bare.parse::<IpAddr>().map_err(|_| {
            anyhow!(
                "JUPYTERHUB_SERVICE_URL names the host {host:?}, not an address: set status_addr"
            )
        })?,
    };
    Ok(Some(SocketAddr::new(ip, port)))
}

/// The page's settings from the merged `values` (settings by key), the environment the hub
/// gives a service, and the `ui_token`.
pub fn page_options(
    values: &BTreeMap<String, String>,
    env: &dyn Fn(&str) -> Option<String>,
    ui_token: Option<String>,
) -> Result<PageOptions> {
    let env = |k: &str| {
        env(k)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let prefix = env("JUPYTERHUB_SERVICE_PREFIX")
        .filter(|p| p.starts_with('/'))
        .map(|p| if p.ends_with('/') { p } else { format!("{p}/") });
    let addr = match listen_addr(values, "status_addr")? {
        Some(a) => Some(a),
        None => match env("JUPYTERHUB_SERVICE_URL") {
            Some(url) => listen_addr_of(&url)?,
            None => None,
        },
    };
    let public: Vec<String> = [
        "JUPYTERHUB_PUBLIC_URL",
        "JUPYTERHUB_PUBLIC_HUB_URL",
        "JUPYTERHUB_HOST",
    ]
    .iter()
    .filter_map(|k| env(k))
    .collect();
    let mut hosts: Vec<String> = values
        .get("status_hosts")
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    hosts.extend(public.iter().cloned());
    let always_secure = public.iter().any(|u| u.starts_with("https://"));

    // The hub gives every managed service a client id, but registers the OAuth client only for
    // one with a `url`: without a page there is nobody to sign in.
    let hub_oauth = match (addr, env("JUPYTERHUB_CLIENT_ID")) {
        (Some(_), Some(client_id)) => Some(hub_oauth(values, &env, client_id, prefix.as_deref())?),
        _ => None,
    };
    Ok(PageOptions {
        addr,
        hosts,
        prefix,
        ui_token,
        hub_oauth,
        always_secure,
    })
}

fn hub_oauth(
    values: &BTreeMap<String, String>,
    env: &dyn Fn(&str) -> Option<String>,
    client_id: String,
    prefix: Option<&str>,
) -> Result<HubOAuthSettings> {
    let need = |key: &str| {
        values
            .get(key)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| {
                anyhow!(
                    "JUPYTERHUB_CLIENT_ID is set, so the status page signs people in through the hub; \
                     that needs {key} too"
                )
            })
    };
    let api_url = need("jupyterhub_api_url")?
        .trim_end_matches('/')
        .to_string();
    let client_secret = need("jupyterhub_api_token")?;
    let redirect_uri = match (env("JUPYTERHUB_OAUTH_CALLBACK_URL"), prefix) {
        (Some(uri), _) => uri,
        (None, Some(prefix)) => format!("{prefix}oauth_callback"),
        (None, None) => bail!(
            "JUPYTERHUB_CLIENT_ID is set without JUPYTERHUB_OAUTH_CALLBACK_URL or JUPYTERHUB_SERVICE_PREFIX: \
             give the service a url in c.JupyterHub.services so the hub serves it and calls it back"
        ),
    };
    let callback_path = redirect_uri
        .split_once("://")
        .map_or(redirect_uri.as_str(), |(_, rest)| {
            rest.find('/').map_or("/", |i| &rest[i..])
        });
    let expected = format!("{}oauth_callback", prefix.unwrap_or("/"));
    if callback_path != expected {
        bail!(
            "JUPYTERHUB_OAUTH_CALLBACK_URL {redirect_uri:?} must end in {expected:?}, where this service \
             answers the hub's callback (set oauth_redirect_uri in c.JupyterHub.services to it)"
        );
    }
    let access_scopes = match env("JUPYTERHUB_OAUTH_ACCESS_SCOPES") {
        Some(json) => serde_json::from_str::<Vec<String>>(&json)
            .map_err(|_| anyhow!("JUPYTERHUB_OAUTH_ACCESS_SCOPES must be a JSON list of scopes"))?,
        None => match env("JUPYTERHUB_SERVICE_NAME") {
            Some(name) => vec![format!("access:services!service={name}")],
            None => bail!("JUPYTERHUB_CLIENT_ID is set without JUPYTERHUB_OAUTH_ACCESS_SCOPES or JUPYTERHUB_SERVICE_NAME"),
        },
    };
    if access_scopes.is_empty() {
        bail!("JUPYTERHUB_OAUTH_ACCESS_SCOPES is empty: nobody could be let in");
    }
    let hub_host = env("JUPYTERHUB_HOST").unwrap_or_default();
    let base_url = env("JUPYTERHUB_BASE_URL").unwrap_or_else(|| "/".into());
    let base_url = base_url.trim_end_matches('/');
    let approve_scope = values
        .get("status_approve_scope")
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| DEFAULT_APPROVE_SCOPE.into());
    Ok(HubOAuthSettings {
        client_id,
        client_secret,
        api_url,
        authorize_url: format!(
            "{}{base_url}/hub/api/oauth2/authorize",
            hub_host.trim_end_matches('/')
        ),
        redirect_uri,
        access_scopes,
        approve_scope,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// The environment JupyterHub 6 gives a managed service with a `url` (spawner.py, service.py).
    const MANAGED: &[(&str, &str)] = &[
        ("JUPYTERHUB_SERVICE_NAME", "grouper-sync"),
        ("JUPYTERHUB_SERVICE_URL", "http://127.0.0.1:10101"),
        ("JUPYTERHUB_SERVICE_PREFIX", "/services/grouper-sync/"),
        ("JUPYTERHUB_CLIENT_ID", "service-grouper-sync"),
        (
            "JUPYTERHUB_OAUTH_CALLBACK_URL",
            "/services/grouper-sync/oauth_callback",
        ),
        (
            "JUPYTERHUB_OAUTH_ACCESS_SCOPES",
            "[\"access:services\", \"access:services!service=grouper-sync\"]",
        ),
        ("JUPYTERHUB_HOST", ""),
        ("JUPYTERHUB_BASE_URL", "/"),
    ];

    fn options(env: &[(&str, &str)], values: &[(&str, &str)]) -> Result<PageOptions> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut all: BTreeMap<String, String> = [
            ("jupyterhub_api_url", "http://127.0.0.1:8081/hub/api/"),
            ("jupyterhub_api_token", "svc-token"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        all.extend(values.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        page_options(&all, &|k| env.get(k).cloned(), None)
    }

    #[test]
    fn a_managed_service_signs_people_in_through_the_hub_where_the_hub_serves_it() {
        let o = options(MANAGED, &[]).unwrap();
        assert_eq!(o.addr, Some("127.0.0.1:10101".parse().unwrap()));
        assert_eq!(o.prefix.as_deref(), Some("/services/grouper-sync/"));
        assert!(!o.always_secure);
        let hub = o.hub_oauth.unwrap();
        assert_eq!(hub.client_id, "service-grouper-sync");
        assert_eq!(hub.client_secret, "svc-token");
        assert_eq!(hub.api_url, "http://127.0.0.1:8081/hub/api");
        assert_eq!(hub.authorize_url, "/hub/api/oauth2/authorize");
        assert_eq!(hub.redirect_uri, "/services/grouper-sync/oauth_callback");
        assert_eq!(hub.access_scopes.len(), 2);
        assert_eq!(hub.approve_scope, DEFAULT_APPROVE_SCOPE);
        assert!(!format!("{hub:?}").contains("svc-token"));
    }

    #[test]
    fn subdomains_and_public_urls_name_the_hosts_and_make_cookies_secure() {
        let mut env = MANAGED.to_vec();
        env.retain(|(k, _)| *k != "JUPYTERHUB_HOST");
        env.push(("JUPYTERHUB_HOST", "https://hub.example.org"));
        env.push(("JUPYTERHUB_PUBLIC_HUB_URL", "https://hub.example.org/hub/"));
        let o = options(
            &env,
            &[
                ("status_hosts", "jupyter.example.org, other.example.org"),
                ("status_approve_scope", "admin:users"),
            ],
        )
        .unwrap();
        assert!(o.always_secure);
        assert_eq!(o.hosts[..2], ["jupyter.example.org", "other.example.org"]);
        assert!(o.hosts.contains(&"https://hub.example.org".to_string()));
        let hub = o.hub_oauth.unwrap();
        assert_eq!(
            hub.authorize_url,
            "https://hub.example.org/hub/api/oauth2/authorize"
        );
        assert_eq!(hub.approve_scope, "admin:users");
    }

    #[test]
    fn a_managed_service_without_a_url_has_no_page_and_starts() {
        // what JupyterHub 6.1.1 gives a managed service without `url` (seen in its log)
        let env = [
            ("JUPYTERHUB_SERVICE_NAME", "grouper-sync"),
            ("JUPYTERHUB_SERVICE_URL", "http://127.0.0.1:0/"),
            ("JUPYTERHUB_CLIENT_ID", "service-grouper-sync"),
            (
                "JUPYTERHUB_OAUTH_CALLBACK_URL",
                "/user/grouper-sync/oauth_callback",
            ),
            ("JUPYTERHUB_OAUTH_ACCESS_SCOPES", "[\"access:services\"]"),
        ];
        let o = options(&env, &[]).unwrap();
        assert_eq!((o.addr, o.hub_oauth), (None, None));
    }

    #[test]
    fn without_a_hub_client_the_page_is_on_status_addr_only() {
        let o = options(&[], &[]).unwrap();
        assert_eq!((o.addr, o.hub_oauth.is_none()), (None, true));
        let o = options(&[], &[("status_addr", "127.0.0.1:9101")]).unwrap();
        assert_eq!(o.addr, Some("127.0.0.1:9101".parse().unwrap()));
        let e = options(&[], &[("status_addr", "localhost")]).unwrap_err();
        assert!(e.to_string().contains("status_addr must be IP:PORT"), "{e}");
    }

    #[test]
    fn an_incomplete_hub_client_is_a_clear_start_up_error() {
        let without = |key: &str| -> Vec<(&str, &str)> {
            MANAGED.iter().copied().filter(|(k, _)| *k != key).collect()
        };
        let e = options(&without("JUPYTERHUB_OAUTH_CALLBACK_URL"), &[]).unwrap();
        assert_eq!(
            e.hub_oauth.unwrap().redirect_uri,
            "/services/grouper-sync/oauth_callback",
            "the hub's default"
        );
        let mut wrong = MANAGED.to_vec();
        wrong.retain(|(k, _)| *k != "JUPYTERHUB_OAUTH_CALLBACK_URL");
        wrong.push((
            "JUPYTERHUB_OAUTH_CALLBACK_URL",
            "/services/other/oauth_callback",
        ));
        let e = options(&wrong, &[]).unwrap_err().to_string();
        assert!(
            e.contains("must end in \"/services/grouper-sync/oauth_callback\""),
            "{e}"
        );
        let mut no_url = without("JUPYTERHUB_OAUTH_CALLBACK_URL");
        no_url.retain(|(k, _)| *k != "JUPYTERHUB_SERVICE_PREFIX");
        let e = options(&no_url, &[]).unwrap_err().to_string();
        assert!(e.contains("give the service a url"), "{e}");
        let e = options(
            &[
                ("JUPYTERHUB_CLIENT_ID", "c"),
                ("JUPYTERHUB_SERVICE_URL", "http://127.0.0.1:10101"),
                ("JUPYTERHUB_SERVICE_PREFIX", "/services/x/"),
            ],
            &[("jupyterhub_api_token", "")],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("needs jupyterhub_api_token"), "{e}");
        let mut bad_scopes = without("JUPYTERHUB_OAUTH_ACCESS_SCOPES");
        bad_scopes.push(("JUPYTERHUB_OAUTH_ACCESS_SCOPES", "access:services"));
        assert!(options(&bad_scopes, &[]).is_err());
        let e = options(
            &[(
                "JUPYTERHUB_SERVICE_URL",
                "http://hub-service.internal:10101",
            )],
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("set status_addr"), "{e}");
    }
}
