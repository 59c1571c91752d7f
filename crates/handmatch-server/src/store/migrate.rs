//! Schema migrations, embedded in the binary and applied at connect.
//!
//! The two dialects keep separate migration folders with the same numbering: a schema change
//! lands in both, under the same version, in the same commit.

use sqlx::migrate::Migrator;
use sqlx::AnyPool;

use super::error::StoreError;
use super::target::Backend;

static POSTGRES: Migrator = sqlx::migrate!("./migrations/postgres");
static SQLITE: Migrator = sqlx::migrate!("./migrations/sqlite");

/// Applies the migrations the database lacks. Refuses a database migrated by a newer build
/// (a version this binary does not know), rather than running against a schema it cannot read.
pub(crate) async fn run(pool: &AnyPool, backend: Backend) -> Result<(), StoreError> {
    let migrator = match backend {
        Backend::Postgres => &POSTGRES,
        Backend::Sqlite => &SQLITE,
    };
    migrator.run(pool).await.map_err(StoreError::from)
}
