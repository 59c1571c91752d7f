//! `Authenticator`: turns a request's `authorization` metadata into a `Grant`. Each request
//! reads its key's row (one indexed lookup), so a revocation, through the Admin RPC or the
//! CLI on the same database, takes effect at the next request. While the database is
//! unreachable, a key verified within `outage_grace` keeps its grant, so searches go on
//! from the in-memory index; an unknown key is never let in.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use clap::ValueEnum;
use tonic::metadata::MetadataMap;

use super::api_key::PresentedKey;
use super::error::AccessError;
use super::grant::Grant;
use crate::store::{ApiKeyRecord, StoreError, TemplateStore};

/// How often a key's `last_used_at_ms` is written at most: a write per request would make
/// every search a database write.
const TOUCH_EVERY: Duration = Duration::from_secs(60);
/// The longest a key lookup may take before the database counts as unreachable.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);
/// After a failed lookup, how long known keys are served from memory without asking the
/// database again: during an outage one request a second pays for finding out, not all.
const OUTAGE_RECHECK: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuthMode {
    /// Every call needs an API key (`authorization: Bearer <key>`).
    ApiKey,
    /// No authentication: every caller may do everything.
    None,
}

struct Seen {
    record: ApiKeyRecord,
    verified: Instant,
    touched: Option<Instant>,
}

pub struct Authenticator {
    mode: AuthMode,
    store: TemplateStore,
    outage_grace: Duration,
    seen: Mutex<HashMap<String, Seen>>,
    /// Set when a lookup found the database unreachable.
    unreachable_since: Mutex<Option<Instant>>,
}

impl Authenticator {
    pub fn new(mode: AuthMode, store: TemplateStore, outage_grace: Duration) -> Self {
        Self {
            mode,
            store,
            outage_grace,
            seen: Mutex::new(HashMap::new()),
            unreachable_since: Mutex::new(None),
        }
    }

    /// The caller's grant, or why there is none. Failures are logged with the key's public
    /// id and the peer, never the key.
    pub async fn authenticate(
        &self,
        metadata: &MetadataMap,
        peer: Option<SocketAddr>,
    ) -> Result<Grant, AccessError> {
        if self.mode == AuthMode::None {
            return Ok(Grant::unrestricted());
        }
        let result = match presented_key(metadata) {
            Ok(key) => self.verify(&key).await,
            Err(e) => Err(e),
        };
        if let Err(AccessError::Unauthenticated(why)) = &result {
            let key_id = presented_key(metadata)
                .map(|k| k.key_id)
                .unwrap_or_default();
            tracing::warn!(peer = ?peer, key_id, "authentication failed: {why}");
        }
        result
    }

    async fn verify(&self, key: &PresentedKey) -> Result<Grant, AccessError> {
        let record = match self.lookup(&key.key_id).await {
            Ok(found) => {
                self.remember(key, found.as_ref());
                found
            }
            Err(StoreError::Unavailable(why)) => Some(self.recently_verified(key, why)?),
            Err(other) => return Err(other.into()),
        };
        let unknown = || AccessError::Unauthenticated("unknown API key".into());
        let record = record.ok_or_else(unknown)?;
        if !key.matches(&record.secret_sha256) {
            return Err(unknown());
        }
        // Only someone holding the secret learns that the key existed.
        if record.revoked_at_ms.is_some() {
            return Err(AccessError::Unauthenticated(format!(
                "the API key {:?} has been revoked",
                record.name
            )));
        }
        self.touch(&record.key_id);
        Ok(Grant::of_key(&record))
    }

    /// The key's row, or `Unavailable` without asking while a recent lookup found the
    /// database unreachable.
    async fn lookup(&self, key_id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        let since = *lock(&self.unreachable_since);
        if since.is_some_and(|t| t.elapsed() < OUTAGE_RECHECK) {
            return Err(StoreError::Unavailable(
                "the database was unreachable just now".into(),
            ));
        }
        let result = tokio::time::timeout(LOOKUP_TIMEOUT, self.store.api_key_by_id(key_id))
            .await
            .unwrap_or_else(|_| {
                Err(StoreError::Unavailable(format!(
                    "no answer within {LOOKUP_TIMEOUT:?}"
                )))
            });
        *lock(&self.unreachable_since) = match &result {
            Err(StoreError::Unavailable(_)) => Some(Instant::now()),
            _ => None,
        };
        result
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, HashMap<String, Seen>> {
        lock(&self.seen)
    }

    fn remember(&self, key: &PresentedKey, found: Option<&ApiKeyRecord>) {
        let mut seen = self.seen();
        match found {
            Some(record) if key.matches(&record.secret_sha256) => {
                let entry = seen.entry(record.key_id.clone()).or_insert(Seen {
                    record: record.clone(),
                    verified: Instant::now(),
                    touched: None,
                });
                entry.record = record.clone();
                entry.verified = Instant::now();
            }
            _ => {
                seen.remove(&key.key_id);
            }
        }
    }

    fn recently_verified(
        &self,
        key: &PresentedKey,
        why: String,
    ) -> Result<ApiKeyRecord, AccessError> {
        let seen = self.seen();
        match seen.get(&key.key_id) {
            Some(s) if s.verified.elapsed() <= self.outage_grace => Ok(s.record.clone()),
            _ => Err(StoreError::Unavailable(format!("cannot check the API key: {why}")).into()),
        }
    }

    /// Writes `last_used_at_ms` in the background, at most every `TOUCH_EVERY` per key.
    fn touch(&self, key_id: &str) {
        {
            let mut seen = self.seen();
            let Some(entry) = seen.get_mut(key_id) else {
                return;
            };
            if entry.touched.is_some_and(|t| t.elapsed() < TOUCH_EVERY) {
                return;
            }
            entry.touched = Some(Instant::now());
        }
        let (store, key_id) = (self.store.clone(), key_id.to_string());
        tokio::spawn(async move {
            if let Err(e) = store.touch_api_key(&key_id).await {
                tracing::debug!(key_id, "recording the key's last use failed: {e}");
            }
        });
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn presented_key(metadata: &MetadataMap) -> Result<PresentedKey, AccessError> {
    let value = metadata.get("authorization").ok_or_else(|| {
        AccessError::Unauthenticated(
            "no API key: send the metadata `authorization: Bearer <key>`".into(),
        )
    })?;
    let malformed = || {
        AccessError::Unauthenticated(
            "the authorization metadata is not `Bearer <key>` with a handmatch API key (hmk_…)"
                .into(),
        )
    };
    let text = value.to_str().map_err(|_| malformed())?;
    let (scheme, token) = text.trim().split_once(' ').ok_or_else(malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(malformed());
    }
    PresentedKey::parse(token.trim()).ok_or_else(malformed)
}
