//! The durable template store: one embedding per enrolled image and model, in Postgres
//! (`postgres://…`) or an embedded SQLite file (`sqlite://path/to/file.db`).
//!
//! Both backends go through sqlx's `Any` driver, so every query is written once; the SQL sticks
//! to what both dialects share (`$n` placeholders, `ON CONFLICT`, `RETURNING`, aggregate
//! `FILTER`). Only the migrations differ per dialect.

mod api_keys;
mod audit;
mod change_listener;
mod changes;
mod delete;
mod embedding;
mod enroll;
mod error;
mod key_rotation;
mod migrate;
mod names;
mod read;
mod records;
mod retention;
mod sealing;
mod secrets;
mod target;
mod template_store;

pub use api_keys::{ApiKeyRecord, NewApiKey, ALL_GALLERIES};
pub use audit::{AuditEvent, AuditQuery, AuditRecord};
pub use change_listener::{ChangeListener, Wakeup};
pub use changes::{ChangeBatch, ChangeKind, GalleryChange};
pub use enroll::EnrolmentNotes;
pub use error::StoreError;
pub use handmatch_core::hand_image::Aspect;
pub use names::check_name;
pub use records::{EnrollOutcome, HandSide, NewTemplate, SubjectSummary, TemplateRecord};
pub use retention::SubjectConsent;
pub use sealing::{TemplateKey, TemplateKeys};
pub use template_store::TemplateStore;
