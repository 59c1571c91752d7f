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

#[cfg(test)]
mod tests {
    use sqlx::any::AnyPoolOptions;
    use sqlx::{Connection, Row};

    use super::*;

    /// A pool on a database that holds only the first migration's schema, as written by a
    /// build from before galleries.
    async fn at_first_version(url: &str, dialect: &str) -> AnyPool {
        sqlx::any::install_default_drivers();
        let pool = AnyPoolOptions::new().connect(url).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let first = format!(
            "{}/migrations/{dialect}/0001_templates.sql",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::copy(&first, dir.path().join("0001_templates.sql")).unwrap();
        Migrator::new(dir.path())
            .await
            .unwrap()
            .run(&pool)
            .await
            .unwrap();
        pool
    }

    async fn old_rows(pool: &AnyPool) {
        sqlx::query(
            "INSERT INTO subjects (subject_id, created_at_ms) VALUES ('alice', 1), ('bob', 2)",
        )
        .execute(pool)
        .await
        .unwrap();
        for (subject, aspect, hash) in [("alice", 2i16, 'a'), ("bob", 1, 'b'), ("bob", 2, 'c')] {
            sqlx::query(
                "INSERT INTO templates (subject_id, model_id, aspect, side, image_sha256, \
                 embedding, created_at_ms) VALUES ($1, 'm', $2, 0, $3, $4, 3)",
            )
            .bind(subject)
            .bind(aspect)
            .bind(hash.to_string().repeat(64))
            .bind(vec![0u8; 4])
            .execute(pool)
            .await
            .unwrap();
        }
        sqlx::query("DELETE FROM templates WHERE template_id = 3")
            .execute(pool)
            .await
            .unwrap();
    }

    /// Existing templates land in "default", keep their ids, and no id is handed out twice.
    async fn check_upgrade(pool: &AnyPool, backend: Backend) {
        run(pool, backend).await.unwrap();
        let rows = sqlx::query(
            "SELECT template_id, gallery, subject_id FROM templates ORDER BY template_id",
        )
        .fetch_all(pool)
        .await
        .unwrap();
        let seen: Vec<(i64, String, String)> = rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
        assert_eq!(
            seen,
            [
                (1, "default".into(), "alice".into()),
                (2, "default".into(), "bob".into())
            ]
        );
        let subjects: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM subjects WHERE gallery = 'default'")
                .fetch_one(pool)
                .await
                .unwrap();
        assert_eq!(subjects, 2);
        let next: i64 = sqlx::query_scalar(
            "INSERT INTO templates (gallery, subject_id, model_id, aspect, side, image_sha256, \
             embedding, created_at_ms) VALUES ('default', 'bob', 'm', 2, 0, $1, $2, 6) \
             RETURNING template_id",
        )
        .bind("d".repeat(64))
        .bind(vec![0u8; 4])
        .fetch_one(pool)
        .await
        .unwrap();
        assert_eq!(
            next, 4,
            "id 3 was deleted before the upgrade and stays unused"
        );
    }

    #[tokio::test]
    async fn sqlite_upgrade_moves_existing_templates_to_the_default_gallery() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("old.db").display());
        let pool = at_first_version(&url, "sqlite").await;
        old_rows(&pool).await;
        // On SQLite the foreign keys stay on during the rebuild, as in the store's pool.
        sqlx::query("PRAGMA foreign_keys = ON")
            .execute(&pool)
            .await
            .unwrap();
        check_upgrade(&pool, Backend::Sqlite).await;
    }

    #[tokio::test]
    async fn postgres_upgrade_moves_existing_templates_to_the_default_gallery() {
        let admin = std::env::var("DATABASE_URL")
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".into());
        let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
        let name = format!(
            "hm_migrate_{}_{}",
            std::process::id(),
            rand::random::<u32>()
        );
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .unwrap();
        let url = format!("{}/{name}", admin.rsplit_once('/').unwrap().0);
        let pool = at_first_version(&url, "postgres").await;
        old_rows(&pool).await;
        check_upgrade(&pool, Backend::Postgres).await;
        pool.close().await;
        sqlx::query(&format!("DROP DATABASE {name}"))
            .execute(&mut conn)
            .await
            .unwrap();
    }
}
