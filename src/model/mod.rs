//! The domain the sync works on, below the settings and the wire formats: targets, members and
//! the services' URLs.

pub mod google;
pub mod member;
pub mod target;
pub mod url;

pub use google::{GoogleGroupPolicy, ServiceAccountKey};
pub use member::Member;
pub use target::{
    Direction, Mode, NamePattern, Provisioning, RemovalLimits, Selection, Side, SubjectFrom,
    SubjectLookup, Target, TargetRules, TargetSpec, UserFilters,
};
pub use url::{HttpUrl, UrlError};
