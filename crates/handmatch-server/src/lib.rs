//! handmatch-server: the gRPC service. Templates in PostgreSQL or SQLite (`store`), an
//! exact in-memory search over per-subject templates (`index`), the operations
//! (`service`), start-up and shutdown (`server`).

pub mod config;
pub mod index;
pub mod server;
pub mod service;
pub mod store;
