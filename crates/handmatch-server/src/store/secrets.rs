//! Secrets shared by every server on the database (`server_secrets`), each made once, at
//! random, by whichever server asks first.

use rand::RngCore;

use super::error::StoreError;
use super::template_store::TemplateStore;

const SECRET_BYTES: usize = 32;

impl TemplateStore {
    /// The secret named `name`, made now if no server made it before. Two servers asking at
    /// once agree: only the first insert lands, and both read it back.
    pub async fn server_secret(&self, name: &str) -> Result<Vec<u8>, StoreError> {
        let mut fresh = vec![0u8; SECRET_BYTES];
        rand::rng().fill_bytes(&mut fresh);
        sqlx::query(
            "INSERT INTO server_secrets (name, secret) VALUES ($1, $2) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(fresh)
        .execute(&self.pool)
        .await?;
        Ok(
            sqlx::query_scalar("SELECT secret FROM server_secrets WHERE name = $1")
                .bind(name)
                .fetch_one(&self.pool)
                .await?,
        )
    }
}
