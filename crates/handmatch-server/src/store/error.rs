//! The store's error type and the one place sqlx errors are classified.

use sqlx::error::{DatabaseError, ErrorKind};
use sqlx::migrate::MigrateError;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Cannot connect, connection lost, pool timed out, database busy: worth retrying later.
    /// The service maps it to UNAVAILABLE.
    #[error("template store unavailable: {0}")]
    Unavailable(String),
    #[error("no API key is named {0:?}")]
    NoSuchKey(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("subject {subject_id:?} not found in gallery {gallery:?}")]
    NotFound { gallery: String, subject_id: String },
    /// The request breaks the store's rules (malformed hash, non-finite embedding, embedding
    /// dimension differing from the model's, subject id too long, ...). The service maps it to
    /// INVALID_ARGUMENT.
    #[error("invalid template store input: {0}")]
    InvalidInput(String),
    /// Stored data that cannot be what the store wrote, e.g. an embedding blob whose length is
    /// not a multiple of 4 or differs from the model's dimension.
    #[error("template store data corrupt: {0}")]
    Corrupt(String),
    /// A template key that cannot be read, or a sealed template whose key was not given.
    #[error("template key: {0}")]
    Key(String),
    #[error("template store migration failed: {0}")]
    Migration(String),
    #[error("template store database error: {0}")]
    Database(String),
}

impl StoreError {
    /// The variant's name, for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            StoreError::Unavailable(_) => "unavailable",
            StoreError::NoSuchKey(_) => "no_such_key",
            StoreError::AlreadyExists(_) => "already_exists",
            StoreError::NotFound { .. } => "not_found",
            StoreError::InvalidInput(_) => "invalid_input",
            StoreError::Corrupt(_) => "corrupt",
            StoreError::Key(_) => "key",
            StoreError::Migration(_) => "migration",
            StoreError::Database(_) => "database",
        }
    }

    /// Prefixes the message with what was being done, keeping the variant (and so the status
    /// the service maps it to).
    pub(crate) fn context(self, what: impl std::fmt::Display) -> Self {
        match self {
            StoreError::Unavailable(m) => StoreError::Unavailable(format!("{what}: {m}")),
            StoreError::InvalidInput(m) => StoreError::InvalidInput(format!("{what}: {m}")),
            StoreError::Corrupt(m) => StoreError::Corrupt(format!("{what}: {m}")),
            StoreError::Migration(m) => StoreError::Migration(format!("{what}: {m}")),
            StoreError::Key(m) => StoreError::Key(format!("{what}: {m}")),
            StoreError::Database(m) => StoreError::Database(format!("{what}: {m}")),
            kept @ (StoreError::NotFound { .. }
            | StoreError::NoSuchKey(_)
            | StoreError::AlreadyExists(_)) => kept,
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        use sqlx::Error as E;
        match e {
            E::PoolTimedOut | E::PoolClosed | E::WorkerCrashed | E::Io(_) | E::Tls(_) => {
                StoreError::Unavailable(e.to_string())
            }
            E::Database(db) => from_database_error(&*db),
            E::Decode(_) | E::ColumnDecode { .. } => StoreError::Corrupt(e.to_string()),
            E::Migrate(m) => (*m).into(),
            other => StoreError::Database(other.to_string()),
        }
    }
}

impl From<MigrateError> for StoreError {
    fn from(e: MigrateError) -> Self {
        match e {
            // Losing the connection mid-migration is an outage, not a broken migration.
            MigrateError::Execute(inner) => match StoreError::from(inner) {
                unavailable @ StoreError::Unavailable(_) => unavailable,
                other => StoreError::Migration(other.to_string()),
            },
            other => StoreError::Migration(other.to_string()),
        }
    }
}

fn from_database_error(db: &dyn DatabaseError) -> StoreError {
    let message = db.message().to_string();
    if is_transient(db) {
        return StoreError::Unavailable(message);
    }
    match db.kind() {
        // The schema's CHECK constraints are the authority on field limits (their names say
        // which rule broke), so a violation is the caller's input, not a store fault.
        ErrorKind::CheckViolation | ErrorKind::NotNullViolation => {
            StoreError::InvalidInput(message)
        }
        _ => StoreError::Database(match db.code() {
            Some(code) => format!("{message} (code {code})"),
            None => message,
        }),
    }
}

/// Errors that say "the database cannot serve us right now" rather than "this request failed".
fn is_transient(db: &dyn DatabaseError) -> bool {
    if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
        let code = pg.code();
        // Class 08: connection exceptions; 57P01-03: shutting down / cannot connect now;
        // 53300: too many connections.
        return code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "53300");
    }
    if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
        // Extended result codes carry the primary code in the low byte.
        let primary = db
            .code()
            .and_then(|c| c.parse::<i32>().ok())
            .map(|c| c & 0xff);
        // SQLITE_BUSY (5) and SQLITE_LOCKED (6): another writer held on past the busy timeout;
        // SQLITE_CANTOPEN (14): the file cannot be opened.
        return matches!(primary, Some(5 | 6 | 14));
    }
    false
}
