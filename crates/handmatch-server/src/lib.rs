//! handmatch-server: the gRPC service. Templates in PostgreSQL or SQLite (`store`), an
//! exact in-memory search over per-subject templates (`index`), the operations
//! (`service`), start-up and shutdown (`server`), the store's health (`health`).

pub mod config;
pub mod health;
pub mod index;
pub mod server;
pub mod service;
pub mod store;
