//! Least privilege for the hub token: which of the scopes it holds no target needs (the
//! component names each target's; this is the host's, which prints `check`).
//! `admin:auth_state` alone exposes every user's stored OAuth tokens, so a token with more than
//! the sync uses is worth saying so.

/// JupyterHub's scope hierarchy (`jupyterhub/scopes.py`, 6.1.1): each scope with the scopes it
/// grants directly.
const GRANTS: &[(&str, &[&str])] = &[
    (
        "admin:users",
        &[
            "admin:auth_state",
            "users",
            "read:roles:users",
            "delete:users",
        ],
    ),
    ("users", &["read:users", "list:users", "users:activity"]),
    ("list:users", &["read:users:name"]),
    (
        "read:users",
        &[
            "read:users:name",
            "read:users:groups",
            "read:users:activity",
        ],
    ),
    (
        "read:roles",
        &[
            "read:roles:users",
            "read:roles:services",
            "read:roles:groups",
        ],
    ),
    ("users:activity", &["read:users:activity"]),
    ("admin:servers", &["admin:server_state", "servers"]),
    (
        "servers",
        &["read:servers", "start:servers", "delete:servers"],
    ),
    ("read:servers", &["read:users:name"]),
    ("tokens", &["read:tokens"]),
    (
        "admin:groups",
        &["groups", "read:roles:groups", "delete:groups"],
    ),
    ("groups", &["read:groups", "list:groups"]),
    ("list:groups", &["read:groups:name"]),
    ("read:groups", &["read:groups:name"]),
    (
        "admin:services",
        &["list:services", "read:services", "read:roles:services"],
    ),
    ("list:services", &["read:services:name"]),
    ("read:services", &["read:services:name"]),
];

/// Does `scope` grant `other`, itself or through the scopes it grants?
fn grants(scope: &str, other: &str) -> bool {
    scope == other
        || GRANTS
            .iter()
            .filter(|(s, _)| *s == scope)
            .flat_map(|(_, subs)| subs.iter())
            .any(|sub| grants(sub, other))
}

/// The scopes in `held` (as the hub lists them, expanded; a filter such as `!group=x` kept)
/// that none of `needed` grants: what the token could do beyond what the sync does.
pub fn unneeded(held: &[String], needed: &[String]) -> Vec<String> {
    held.iter()
        .filter(|h| {
            let scope = h.split('!').next().unwrap_or(h);
            !needed.iter().any(|n| grants(n, scope))
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_readme_role_needs_all_it_holds() {
        // what the hub lists for list:users, read:users, admin:auth_state
        let held = strings(&[
            "admin:auth_state",
            "list:users",
            "read:users",
            "read:users:activity",
            "read:users:groups",
            "read:users:name",
        ]);
        let needed = strings(&["list:users", "read:users", "admin:auth_state"]);
        assert!(unneeded(&held, &needed).is_empty());
        let fewer = strings(&["list:users", "read:users:groups"]);
        assert_eq!(
            unneeded(&held, &fewer),
            ["admin:auth_state", "read:users", "read:users:activity"]
        );
    }

    #[test]
    fn a_broad_role_shows_what_it_adds() {
        let held = strings(&[
            "admin:users",
            "admin:auth_state",
            "users",
            "delete:users",
            "read:roles:users",
            "list:users",
            "read:users",
            "users:activity",
            "read:users:activity",
            "read:users:name",
            "read:users:groups",
            "groups!group=gpu",
            "read:groups!group=gpu",
        ]);
        let needed = strings(&["list:users", "read:users", "admin:auth_state"]);
        assert_eq!(
            unneeded(&held, &needed),
            [
                "admin:users",
                "users",
                "delete:users",
                "read:roles:users",
                "users:activity",
                "groups!group=gpu",
                "read:groups!group=gpu"
            ]
        );
        let to_hub = strings(&["list:users", "read:groups:name", "groups"]);
        assert!(!unneeded(&held, &to_hub).contains(&"read:groups!group=gpu".to_string()));
    }
}
