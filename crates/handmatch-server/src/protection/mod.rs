//! Data protection: templates sealed at rest under the operator's keys (`keys`: loading
//! them, refusing a database whose templates they cannot open) and their rotation
//! (`rekey_cli`, `handmatch-server templates rekey`); the flags for both (`args`).

mod args;
mod keys;
mod rekey_cli;

pub use args::{ProtectionArgs, RekeyArgs, TemplatesCommand};
pub use keys::check_sealing;
pub use rekey_cli::run as run_templates_command;
