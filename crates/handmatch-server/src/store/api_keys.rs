//! API key rows: created, looked up by their public id, listed, revoked, touched. What a key
//! may do is the access layer's business; here scopes and galleries are the stored lists.

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::audit::{self, AuditEvent};
use super::error::StoreError;
use super::names::check_name;
use super::template_store::{now_ms, TemplateStore};

/// The `galleries` value of a key allowed every gallery.
pub const ALL_GALLERIES: &str = "*";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewApiKey {
    pub name: String,
    /// 16 hex digits: the public part of the key.
    pub key_id: String,
    /// 64 hex digits: SHA-256 of the key's secret.
    pub secret_sha256: String,
    pub scopes: Vec<String>,
    /// Gallery names, or just [`ALL_GALLERIES`].
    pub galleries: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    pub name: String,
    pub key_id: String,
    pub secret_sha256: String,
    pub scopes: Vec<String>,
    pub galleries: Vec<String>,
    pub created_at_ms: i64,
    pub last_used_at_ms: Option<i64>,
    pub revoked_at_ms: Option<i64>,
}

const KEY_COLUMNS: &str =
    "name, key_id, secret_sha256, scopes, galleries, created_at_ms, last_used_at_ms, revoked_at_ms";

impl TemplateStore {
    /// `AlreadyExists` if a key of that name exists (revoked keys keep their name). `audit`
    /// is appended in the same transaction.
    pub async fn create_api_key(
        &self,
        key: &NewApiKey,
        audit: Option<&AuditEvent>,
    ) -> Result<ApiKeyRecord, StoreError> {
        check_name("key name", &key.name).map_err(StoreError::InvalidInput)?;
        for list in [&key.scopes, &key.galleries] {
            if let Some(bad) = list.iter().find(|v| v.is_empty() || v.contains(',')) {
                return Err(StoreError::InvalidInput(format!(
                    "{bad:?} cannot be stored in a list"
                )));
            }
        }
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(&format!(
            "INSERT INTO api_keys (name, key_id, secret_sha256, scopes, galleries, created_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name) DO NOTHING \
             RETURNING {KEY_COLUMNS}"
        ))
        .bind(&key.name)
        .bind(&key.key_id)
        .bind(&key.secret_sha256)
        .bind(key.scopes.join(","))
        .bind(key.galleries.join(","))
        .bind(now_ms())
        .fetch_optional(&mut *tx)
        .await?;
        match row {
            Some(row) => committed(tx, audit, key_record(&row)?).await,
            None => Err(StoreError::AlreadyExists(format!(
                "an API key named {:?} exists (names of revoked keys stay taken)",
                key.name
            ))),
        }
    }

    pub async fn api_key_by_id(&self, key_id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE key_id = $1"
        ))
        .bind(key_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(key_record).transpose()
    }

    /// Every key, revoked ones included, by name.
    pub async fn api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {KEY_COLUMNS} FROM api_keys ORDER BY name"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(key_record).collect()
    }

    /// Revokes the key (a second revocation keeps the first time); `NoSuchKey` if no key
    /// has that name. `audit` is appended in the same transaction.
    pub async fn revoke_api_key(
        &self,
        name: &str,
        audit: Option<&AuditEvent>,
    ) -> Result<ApiKeyRecord, StoreError> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(&format!(
            "UPDATE api_keys SET revoked_at_ms = COALESCE(revoked_at_ms, $2) WHERE name = $1 \
             RETURNING {KEY_COLUMNS}"
        ))
        .bind(name)
        .bind(now_ms())
        .fetch_optional(&mut *tx)
        .await?;
        match row {
            Some(row) => committed(tx, audit, key_record(&row)?).await,
            None => Err(StoreError::NoSuchKey(name.to_string())),
        }
    }

    /// Records that the key was used now.
    pub async fn touch_api_key(&self, key_id: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE api_keys SET last_used_at_ms = $2 WHERE key_id = $1")
            .bind(key_id)
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

fn list(row: &AnyRow, column: &str) -> Result<Vec<String>, StoreError> {
    let joined: String = row.try_get(column)?;
    Ok(joined
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect())
}

fn key_record(row: &AnyRow) -> Result<ApiKeyRecord, StoreError> {
    Ok(ApiKeyRecord {
        name: row.try_get("name")?,
        key_id: row.try_get("key_id")?,
        secret_sha256: row.try_get("secret_sha256")?,
        scopes: list(row, "scopes")?,
        galleries: list(row, "galleries")?,
        created_at_ms: row.try_get("created_at_ms")?,
        last_used_at_ms: row.try_get("last_used_at_ms")?,
        revoked_at_ms: row.try_get("revoked_at_ms")?,
    })
}

/// Appends `audit` and commits; `done` is what the transaction wrote.
async fn committed<T>(
    mut tx: Transaction<'static, Any>,
    audit: Option<&AuditEvent>,
    done: T,
) -> Result<T, StoreError> {
    if let Some(event) = audit {
        audit::record(&mut tx, event).await?;
    }
    tx.commit().await?;
    Ok(done)
}
