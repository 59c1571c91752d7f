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
        let (key_id, result) = match presented_key(metadata) {
            Ok(key) => (key.key_id.clone(), self.verify(&key).await),
            Err(e) => (String::new(), Err(e)),
        };
        if let Err(AccessError::Unauthenticated(why)) = &result {
            tracing::warn!(peer = ?peer, key_id, "authentication failed: {why}");
        }
        result
    }

    async fn verify(&self, key: &PresentedKey) -> Result<Grant, AccessError> {
        let (record, fresh) = match self.lookup(&key.key_id).await {
            Ok(found) => (found, true),
            Err(StoreError::Unavailable(why)) => (Some(self.recently_verified(key, why)?), false),
            Err(other) => return Err(other.into()),
        };
        let record = record
            .filter(|r| key.matches(&r.secret_sha256))
            .ok_or_else(|| AccessError::Unauthenticated("unknown API key".into()))?;
        // Only someone holding the secret learns that the key existed.
        if record.revoked_at_ms.is_some() {
            return Err(AccessError::Unauthenticated(format!(
                "the API key {:?} has been revoked",
                record.name
            )));
        }
        if fresh && self.remember(&record) {
            self.touch(&record.key_id);
        }
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

    /// Keeps a freshly verified key for outages; true when its last use is due to be
    /// recorded (at most every `TOUCH_EVERY`).
    fn remember(&self, record: &ApiKeyRecord) -> bool {
        let mut seen = lock(&self.seen);
        let now = Instant::now();
        let entry = seen.entry(record.key_id.clone()).or_insert(Seen {
            record: record.clone(),
            verified: now,
            touched: None,
        });
        entry.record.clone_from(record);
        entry.verified = now;
        let due = entry.touched.is_none_or(|t| t.elapsed() >= TOUCH_EVERY);
        if due {
            entry.touched = Some(now);
        }
        due
    }

    fn recently_verified(
        &self,
        key: &PresentedKey,
        why: String,
    ) -> Result<ApiKeyRecord, AccessError> {
        match lock(&self.seen).get(&key.key_id) {
            Some(s) if s.verified.elapsed() <= self.outage_grace => Ok(s.record.clone()),
            _ => Err(StoreError::Unavailable(format!("cannot check the API key: {why}")).into()),
        }
    }

    /// Writes `last_used_at_ms` in the background.
    fn touch(&self, key_id: &str) {
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
