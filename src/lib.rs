//! handmatch: identify a person from the back of the hand against a gallery of palm photos.

pub mod config;
pub mod dataset;
pub mod embed;
pub mod eval;
pub mod hand;
pub mod index;
pub mod metrics;
pub mod proto;
pub mod report;
pub mod server;
pub mod service;
pub mod store;
