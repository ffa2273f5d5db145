//! What the service serves: the listener (`endpoint`), the status page and its approvals (`ui`,
//! `status_page`), and the Prometheus metrics.

pub mod endpoint;
pub mod metrics;
pub mod status_page;
pub mod ui;
