//! A member of a group as the plan sees it: a Grouper group's member, or a hub user in a hub group.

/// The source the plan gives hub users (they have no Grouper source). Part of a withheld to_hub
/// plan's hash, so it never changes.
pub const HUB_SOURCE: &str = "jupyterhub";

/// A current immediate member of the written group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub id: String,
    pub source_id: String,
    /// The value compared with desired subjects: the subject id, the identifier attribute, or the
    /// hub user's name.
    pub key: Option<String>,
}

impl Member {
    /// A hub user in a hub group (written by a to_hub target).
    pub fn hub_user(name: &str) -> Member {
        Member {
            id: name.to_string(),
            source_id: HUB_SOURCE.to_string(),
            key: Some(name.to_string()),
        }
    }
}
