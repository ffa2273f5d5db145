//! The pure rules: who maps to which subject, what a target's group should hold, which changes a
//! pass may make (the safety limits), and what incremental passes remember.

pub mod hashing;
pub mod mapping;
pub mod plan;
pub mod subject_users;
pub mod user_state;
