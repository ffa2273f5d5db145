//! What the service serves: the listeners (`endpoint`), the status page (`status_page`), who may
//! use it and its approvals (`guard`, `session`, `hub_oauth`, `ui`), and the Prometheus metrics.

pub mod endpoint;
pub mod guard;
pub mod hub_oauth;
pub mod metrics;
pub mod session;
pub mod status_page;
pub mod ui;
