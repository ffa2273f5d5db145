//! Targets as configured ([`TargetSpec`]: whom they select, what they write, by which rules) and
//! as one pass runs them ([`Target`]: a concrete group). The settings parse into these; the
//! policy and the sync read them.

use std::collections::BTreeSet;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Adds missing members and removes members who are no longer hub users.
    Mirror,
    /// Only adds; never removes anyone.
    Additive,
}

/// Where a user's Grouper subject value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubjectFrom {
    /// The first `auth_state` path (each a list of object keys) that holds a non-empty string.
    AuthState(Vec<Vec<String>>),
    /// The hub username put through a template containing `{name}`.
    Username { template: String },
    /// The first `user_info` path (listed with every user, JupyterHub >= 6) that holds a
    /// non-empty string; users whose `user_info` lacks it fall back to these `auth_state` paths.
    UserInfo {
        paths: Vec<Vec<String>>,
        fallback: Vec<Vec<String>>,
    },
}

impl SubjectFrom {
    /// The `auth_state` paths this mapping may need a user's record for.
    pub fn auth_state_paths(&self) -> Option<&Vec<Vec<String>>> {
        match self {
            SubjectFrom::AuthState(paths) => Some(paths),
            SubjectFrom::UserInfo { fallback, .. } => Some(fallback),
            SubjectFrom::Username { .. } => None,
        }
    }
}

/// How the subject value is sent to Grouper, and so how current members are matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubjectLookup {
    /// `subjectId`; current members match on their subject id.
    SubjectId,
    /// `subjectIdentifier`; current members match on the value of this subject attribute.
    SubjectIdentifier { attribute: String },
}

#[derive(Debug, Clone, PartialEq)]
pub struct RemovalLimits {
    /// A pass that would remove more than this many members removes none.
    pub max_removals: usize,
    /// ... or more than this fraction of the current group, once above `fraction_floor` removals.
    pub max_fraction: f64,
    pub fraction_floor: usize,
    /// The daily budget: removals that would make more than this many in any 24 hours are
    /// withheld, ...
    pub max_per_day: usize,
    /// ... or more than this fraction of the group (past `fraction_floor`).
    pub max_fraction_per_day: f64,
}

/// Which side a target writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Hub users (or one hub group's members) -> the Grouper group.
    ToGrouper,
    /// The Grouper group's members, mapped back to hub users -> the hub group.
    ToHub,
}

/// A regex matched against whole names (anchored when it was parsed from the settings).
#[derive(Debug, Clone)]
pub struct NamePattern(regex_lite::Regex);

impl NamePattern {
    pub fn new(anchored: regex_lite::Regex) -> Self {
        NamePattern(anchored)
    }
    pub fn matches(&self, name: &str) -> bool {
        self.0.is_match(name)
    }
    /// The whole match (`{0}`) and the capture groups (`{1}`…) of a matching name.
    pub fn captures<'n>(&self, name: &'n str) -> Option<regex_lite::Captures<'n>> {
        self.0.captures(name)
    }
    pub fn captures_len(&self) -> usize {
        self.0.captures_len()
    }
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl PartialEq for NamePattern {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

/// Which hub users a target counts, besides its hub group and the admin rule.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserFilters {
    /// Only users whose `last_activity` lies within this many days of the hub's clock.
    pub active_within_days: Option<u32>,
    /// Only users with a running server (any of their servers).
    pub only_active_servers: bool,
    /// Users whose whole name matches are never selected.
    pub exclude_users: Option<NamePattern>,
}

/// What a target does to the members it counts: the same for every group a pattern reaches.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetRules {
    pub include_admins: bool,
    pub subject_from: SubjectFrom,
    pub lookup: SubjectLookup,
    pub source_id: Option<String>,
    pub mode: Mode,
    pub limits: RemovalLimits,
    pub protected: BTreeSet<String>,
    pub filters: UserFilters,
    /// Create the written group when it does not exist.
    pub create_missing: bool,
    /// The folder in which a missing Grouper group may be created.
    pub grouper_folder: Option<String>,
    pub provisioning: Provisioning,
    /// The Google Group the group is provisioned to, whose settings the pass keeps.
    pub google: Option<crate::model::GoogleGroupPolicy>,
}

/// Which Grouper provisioners a to_grouper target's group is marked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Provisioning {
    /// Provisioner ids (`provision_to`): a group the pass creates is marked for each.
    pub provision_to: Vec<String>,
    /// Also mark an existing group that lacks one of those marks (`ensure_provisioning`).
    pub ensure: bool,
}

/// Whom a configured target selects, and which side it writes.
#[derive(Debug, Clone, PartialEq)]
pub enum Selection {
    /// to_grouper: every hub user (after the filters and the admin rule).
    AllUsers,
    /// to_grouper: the members of this hub group.
    HubGroup(String),
    /// to_grouper: one target per hub group whose whole name matches; the target's
    /// `group_path` is then a template (`{0}` the name, `{1}`… its captures).
    HubGroupPattern(NamePattern),
    /// to_hub: the Grouper group's members, mapped back to hub users, become this hub group's.
    KeepsHubGroup(String),
}

/// A target as configured: one (selection -> group) pair, or a pattern standing for many.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetSpec {
    /// The Grouper group, or the template a `HubGroupPattern` fills.
    pub group_path: String,
    pub selection: Selection,
    pub rules: TargetRules,
}

impl TargetSpec {
    pub fn direction(&self) -> Direction {
        match self.selection {
            Selection::KeepsHubGroup(_) => Direction::ToHub,
            _ => Direction::ToGrouper,
        }
    }

    /// The hub group selected (to_grouper) or kept (to_hub); `None` for every user or a pattern.
    pub fn hub_group(&self) -> Option<&str> {
        match &self.selection {
            Selection::HubGroup(g) | Selection::KeepsHubGroup(g) => Some(g),
            Selection::AllUsers | Selection::HubGroupPattern(_) => None,
        }
    }

    /// Does this target read (or keep) hub groups?
    pub fn uses_hub_groups(&self) -> bool {
        !matches!(self.selection, Selection::AllUsers)
    }

    /// The target of a pass when it stands for one group (not a pattern).
    pub fn single(&self) -> Option<Target> {
        let side = match &self.selection {
            Selection::AllUsers => Side::ToGrouper { hub_group: None },
            Selection::HubGroup(g) => Side::ToGrouper {
                hub_group: Some(g.clone()),
            },
            Selection::KeepsHubGroup(g) => Side::ToHub {
                hub_group: g.clone(),
            },
            Selection::HubGroupPattern(_) => return None,
        };
        Some(Target {
            group_path: self.group_path.clone(),
            side,
            rules: self.rules.clone(),
        })
    }
}

/// Which side a target of a pass writes, and the hub group it involves.
#[derive(Debug, Clone, PartialEq)]
pub enum Side {
    /// The selected hub users (every user, or one hub group's members) -> the Grouper group.
    ToGrouper { hub_group: Option<String> },
    /// The Grouper group's members -> this hub group.
    ToHub { hub_group: String },
}

/// A target of one pass: a concrete Grouper group (a pattern already filled in).
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub group_path: String,
    pub side: Side,
    pub rules: TargetRules,
}

impl Target {
    pub fn direction(&self) -> Direction {
        match self.side {
            Side::ToGrouper { .. } => Direction::ToGrouper,
            Side::ToHub { .. } => Direction::ToHub,
        }
    }

    /// The hub group selected (to_grouper) or written (to_hub).
    pub fn hub_group(&self) -> Option<&str> {
        match &self.side {
            Side::ToGrouper { hub_group } => hub_group.as_deref(),
            Side::ToHub { hub_group } => Some(hub_group),
        }
    }

    /// The group this target writes, as the removal budget counts it: `grouper:<group>` for
    /// to_grouper, `hub:<hub group>` for to_hub.
    pub fn written_group(&self) -> String {
        match &self.side {
            Side::ToHub { hub_group } => format!("hub:{hub_group}"),
            Side::ToGrouper { .. } => format!("grouper:{}", self.group_path),
        }
    }
}
