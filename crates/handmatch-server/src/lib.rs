//! handmatch-server: the gRPC service. Templates in PostgreSQL or SQLite (`store`), an
//! exact in-memory search over per-subject templates of each gallery (`index`), API keys
//! and what they allow (`access`), the operations (`service`), start-up and shutdown
//! (`server`, `tls`), the store's health (`health`), key administration (`keys_cli`),
//! request ids (`request_id`), Prometheus metrics (`metrics`), data protection (`protection`: sealed templates, the audit
//! trail's command line), retention (`retention`), and replicas following each other's writes through the store's
//! change feed (`sync`).

pub mod access;
pub mod config;
pub mod health;
pub mod index;
pub mod keys_cli;
pub mod metric_names;
pub mod metrics;
pub mod protection;
pub mod request_id;
pub mod retention;
pub mod server;
pub mod service;
pub mod store;
pub mod sync;
pub mod tls;
