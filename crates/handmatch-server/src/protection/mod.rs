//! Data protection: templates sealed at rest under the operator's keys (`keys`: loading
//! them, refusing a database whose templates they cannot open) and their rotation
//! (`rekey_cli`, `handmatch-server templates rekey`); reading the audit trail
//! (`audit_cli`, `handmatch-server audit list`); VACUUM after deletions on Postgres
//! (`vacuum`); the flags for all of them (`args`).

mod args;
mod audit_cli;
mod keys;
mod rekey_cli;
mod vacuum;

pub use args::{AuditCommand, AuditListArgs, ProtectionArgs, RekeyArgs, TemplatesCommand};
pub use audit_cli::run as run_audit_command;
pub use keys::check_sealing;
pub use rekey_cli::run as run_templates_command;
pub use vacuum::spawn as spawn_vacuum_after_delete;
