//! Who is signed in to the status page: sessions kept in memory (the cookie holds only a random
//! id), what each may do, and the cookies that carry them. Cookies are `HttpOnly`, `SameSite=Lax`,
//! scoped to the service's prefix (so an admin's browser does not send them to `/user/<name>/`),
//! `Secure` when the hub is served over HTTPS, and short-lived.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "grouper-sync-session";
/// The cookie that binds an OAuth callback to the browser that started the sign-in.
pub const STATE_COOKIE: &str = "grouper-sync-oauth-state";
/// A sign-in lasts this long; then the hub is asked again (silently while the hub's own login
/// lasts), so a role taken away stops counting within the hour.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(3600);
/// Sessions kept at most; the oldest goes first.
const MAX_SESSIONS: usize = 10_000;

/// What a signed-in person may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Outcomes and counts; no member ids, error texts or settings.
    Reader,
    /// Everything, with **Approve** and **Run a pass now**.
    Approver,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The hub user (or `ui_token` for a sign-in with the token).
    pub user: String,
    pub level: Level,
    /// The token every form of this session carries.
    pub csrf: String,
    started: Instant,
}

/// Inserts into a map kept to at most `cap` entries, each living `lifetime` from `started(entry)`:
/// dead entries go first, then the oldest (anyone may make entries: memory stays bounded).
pub fn insert_bounded<V>(
    map: &mut HashMap<String, V>,
    cap: usize,
    lifetime: Duration,
    started: impl Fn(&V) -> Instant,
    key: String,
    value: V,
) {
    map.retain(|_, v| started(v).elapsed() < lifetime);
    if map.len() >= cap {
        if let Some(oldest) = map
            .iter()
            .min_by_key(|(_, v)| started(v))
            .map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
    }
    map.insert(key, value);
}

#[derive(Default)]
pub struct Sessions {
    by_id: Mutex<HashMap<String, Session>>,
}

/// 32 random bytes as hex, from the system; none if it cannot give them (then nobody signs in).
pub fn random_hex() -> Option<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).ok()?;
    Some(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Equal, in a time that does not depend on where they differ.
pub fn same(a: &str, b: &str) -> bool {
    subtle::ConstantTimeEq::ct_eq(a.as_bytes(), b.as_bytes()).into()
}

impl Sessions {
    /// A new session for `user`: its id (for the cookie), or none without randomness.
    pub fn create(&self, user: &str, level: Level) -> Option<String> {
        let (id, csrf) = (random_hex()?, random_hex()?);
        let mut by_id = self.by_id.lock().unwrap_or_else(|e| e.into_inner());
        let session = Session {
            user: user.to_string(),
            level,
            csrf,
            started: Instant::now(),
        };
        insert_bounded(
            &mut by_id,
            MAX_SESSIONS,
            SESSION_LIFETIME,
            |s| s.started,
            id.clone(),
            session,
        );
        Some(id)
    }

    /// The live session a `Cookie` header names.
    pub fn find(&self, cookie_header: Option<&str>) -> Option<Session> {
        let id = cookie_header.and_then(|c| cookie_value(c, SESSION_COOKIE))?;
        let by_id = self.by_id.lock().unwrap_or_else(|e| e.into_inner());
        by_id
            .get(id)
            .filter(|s| s.started.elapsed() < SESSION_LIFETIME)
            .cloned()
    }
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie_value<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header
        .split(';')
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Where and how the page's cookies are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookiePolicy {
    /// The service's prefix (`/services/grouper-sync/`), or `/` when served on its own.
    pub path: String,
    /// The hub's public URL is `https://`: cookies are `Secure` whatever the request says.
    pub always_secure: bool,
}

impl CookiePolicy {
    /// A `Set-Cookie` value; `secure` when the hub is HTTPS or the proxy says the browser used
    /// HTTPS (`X-Forwarded-Proto`).
    pub fn set(&self, name: &str, value: &str, max_age: Duration, forwarded_https: bool) -> String {
        let secure = if self.always_secure || forwarded_https {
            "; Secure"
        } else {
            ""
        };
        format!(
            "{name}={value}; Path={}; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
            self.path,
            max_age.as_secs()
        )
    }

    pub fn clear(&self, name: &str, forwarded_https: bool) -> String {
        self.set(name, "", Duration::ZERO, forwarded_https)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_found_by_their_cookie_only() {
        let sessions = Sessions::default();
        let id = sessions.create("ana", Level::Approver).unwrap();
        let mut bounded = HashMap::new();
        let now = Instant::now();
        for (k, age) in [("a", 5), ("b", 1), ("old", 100)] {
            bounded.insert(k.to_string(), now - Duration::from_secs(age));
        }
        insert_bounded(
            &mut bounded,
            2,
            Duration::from_secs(60),
            |t| *t,
            "c".into(),
            now,
        );
        let mut kept: Vec<&String> = bounded.keys().collect();
        kept.sort();
        assert_eq!(kept, ["b", "c"], "the dead one, then the oldest, made room");
        assert_eq!(id.len(), 64);
        let found = sessions
            .find(Some(&format!("other=1; {SESSION_COOKIE}={id}")))
            .unwrap();
        assert_eq!((found.user.as_str(), found.level), ("ana", Level::Approver));
        assert_eq!(found.csrf.len(), 64);
        assert_ne!(found.csrf, id);
        assert!(sessions.find(None).is_none());
        assert!(sessions
            .find(Some(&format!("{SESSION_COOKIE}=x{id}")))
            .is_none());
        assert!(sessions
            .find(Some(&format!("x{SESSION_COOKIE}={id}")))
            .is_none());
        let other = sessions.create("ben", Level::Reader).unwrap();
        assert_ne!(other, id);
    }

    #[test]
    fn cookies_are_scoped_to_the_prefix_http_only_and_secure_behind_https() {
        let behind_hub = CookiePolicy {
            path: "/services/grouper-sync/".into(),
            always_secure: false,
        };
        assert_eq!(
            behind_hub.set(SESSION_COOKIE, "abc", SESSION_LIFETIME, false),
            "grouper-sync-session=abc; Path=/services/grouper-sync/; HttpOnly; SameSite=Lax; Max-Age=3600"
        );
        assert!(behind_hub
            .set(SESSION_COOKIE, "abc", SESSION_LIFETIME, true)
            .ends_with("; Secure"));
        let https_hub = CookiePolicy {
            always_secure: true,
            ..behind_hub.clone()
        };
        assert!(https_hub
            .set(STATE_COOKIE, "s", Duration::from_secs(600), false)
            .contains("Max-Age=600; Secure"));
        assert_eq!(
            behind_hub.clear(STATE_COOKIE, false),
            "grouper-sync-oauth-state=; Path=/services/grouper-sync/; HttpOnly; SameSite=Lax; Max-Age=0"
        );
    }
}
