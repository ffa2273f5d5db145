//! The wire: HTTP requests and answers as values, and the strict builders and parsers of the
//! JupyterHub and Grouper APIs. No I/O: the transport is the caller's.

pub mod google;
pub mod grouper;
pub mod http;
pub mod hub;
pub mod timestamp;
