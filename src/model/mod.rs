//! The domain the sync works on, below the settings and the wire formats: targets and members.

pub mod member;
pub mod target;

pub use member::Member;
pub use target::{
    Direction, Mode, NamePattern, RemovalLimits, Selection, Side, SubjectFrom, SubjectLookup,
    Target, TargetRules, TargetSpec, UserFilters,
};
