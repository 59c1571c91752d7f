//! The data-protection flags of the server and of `handmatch-server templates`.

use std::path::PathBuf;

use clap::Subcommand;

use crate::store::{StoreError, TemplateKey, TemplateKeys};

#[derive(Debug, Clone, Default, clap::Args)]
pub struct ProtectionArgs {
    /// Seal stored templates with this key (AES-256-GCM): a file of 32 random bytes, raw or
    /// as 64 hex digits (`head -c 32 /dev/urandom > template.key`). Without it templates
    /// are stored in plaintext; a database holding sealed templates needs their key.
    #[arg(long, env = "HANDMATCH_TEMPLATE_KEY_FILE")]
    pub template_key_file: Option<PathBuf>,

    /// A key that stored templates may still be sealed under while a rotation runs: opened
    /// with, never sealed with (repeat, or comma-separate, for more).
    #[arg(
        long = "previous-template-key-file",
        env = "HANDMATCH_PREVIOUS_TEMPLATE_KEY_FILES",
        value_delimiter = ','
    )]
    pub previous_template_key_files: Vec<PathBuf>,

    /// Record every Identify and Verify in the audit trail too (who searched which
    /// gallery, and how it ended; never images or scores). Writes are always recorded.
    #[arg(long, env = "HANDMATCH_AUDIT_SEARCHES")]
    pub audit_searches: bool,

    /// Enroll refuses requests without a consent_reference (the subject's written release,
    /// which BIPA and GDPR Art. 9 ask for before collection).
    #[arg(long, env = "HANDMATCH_REQUIRE_CONSENT")]
    pub require_consent: bool,

    /// Purge subjects last enrolled more than this many days ago (a background task, every
    /// purge audited); 0 keeps them until deleted.
    #[arg(long, env = "HANDMATCH_RETENTION_DAYS", default_value_t = 0)]
    pub retention_days: u32,

    /// How often the retention task looks for expired subjects.
    #[arg(
        long,
        env = "HANDMATCH_RETENTION_CHECK_SECONDS",
        default_value_t = 3600,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub retention_check_seconds: u64,

    /// Postgres: VACUUM the template tables within seconds of a deletion, so a deleted
    /// subject's rows become reusable space instead of lingering until autovacuum (README,
    /// Data protection: what remains). SQLite overwrites deleted rows in any case.
    #[arg(long, env = "HANDMATCH_VACUUM_AFTER_DELETE")]
    pub vacuum_after_delete: bool,
}

impl ProtectionArgs {
    pub fn retention(&self) -> Option<std::time::Duration> {
        (self.retention_days > 0)
            .then(|| std::time::Duration::from_secs(u64::from(self.retention_days) * 86_400))
    }
}

impl ProtectionArgs {
    pub fn template_keys(&self) -> Result<TemplateKeys, StoreError> {
        let current = self
            .template_key_file
            .as_deref()
            .map(TemplateKey::from_file)
            .transpose()?;
        let previous = read_keys(&self.previous_template_key_files)?;
        Ok(TemplateKeys::new(current, previous))
    }
}

fn read_keys(files: &[PathBuf]) -> Result<Vec<TemplateKey>, StoreError> {
    files.iter().map(|f| TemplateKey::from_file(f)).collect()
}

#[derive(Debug, Clone, Subcommand)]
pub enum AuditCommand {
    /// Print the audit trail, oldest first (tab-separated).
    List(AuditListArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct AuditListArgs {
    /// The server's database (as for serving).
    #[arg(
        long,
        env = "HANDMATCH_DATABASE_URL",
        default_value = "sqlite://handmatch.db"
    )]
    pub database_url: String,
    /// Events from this time on: RFC 3339 (2026-12-01T00:00:00Z) or an age (24h, 7days).
    #[arg(long, value_parser = since_ms)]
    pub since: Option<i64>,
    /// Only this subject's events.
    #[arg(long)]
    pub subject: Option<String>,
    /// At most this many events.
    #[arg(long, default_value_t = 1000)]
    pub limit: u32,
}

/// An RFC 3339 time or an age before now, as Unix milliseconds.
fn since_ms(s: &str) -> Result<i64, String> {
    let at = match humantime::parse_rfc3339_weak(s) {
        Ok(at) => at,
        Err(_) => {
            let age = humantime::parse_duration(s)
                .map_err(|_| format!("{s:?} is neither an RFC 3339 time nor an age like 24h"))?;
            std::time::SystemTime::now() - age
        }
    };
    let since = at
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| format!("{s:?} is before 1970"))?;
    Ok(since.as_millis() as i64)
}

#[derive(Debug, Clone, Subcommand)]
pub enum TemplatesCommand {
    /// Re-seal every stored template under a new key, in batches; safe to stop and run
    /// again (it resumes). Also seals a plaintext database for the first time.
    Rekey(RekeyArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct RekeyArgs {
    /// The server's database (as for serving).
    #[arg(
        long,
        env = "HANDMATCH_DATABASE_URL",
        default_value = "sqlite://handmatch.db"
    )]
    pub database_url: String,
    /// The key templates are sealed under now (repeat for several); none for plaintext.
    #[arg(long = "old-key-file", value_delimiter = ',')]
    pub old_key_files: Vec<PathBuf>,
    /// The key to seal every template under.
    #[arg(long)]
    pub new_key_file: PathBuf,
    /// Templates re-sealed per transaction.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    pub batch_size: u32,
    /// Stop after this many batches (the rest is done by running the command again).
    #[arg(long)]
    pub max_batches: Option<u64>,
}

impl RekeyArgs {
    /// The old keys (to open with) and the new one.
    pub fn keys(&self) -> Result<(TemplateKeys, TemplateKey), StoreError> {
        let old = TemplateKeys::new(None, read_keys(&self.old_key_files)?);
        Ok((old, TemplateKey::from_file(&self.new_key_file)?))
    }
}
