//! Templates sealed at rest: each stored embedding is AES-256-GCM ciphertext under the
//! operator's key, with the row it belongs to (template id, gallery, subject, model) as
//! associated data, so a ciphertext copied into another row does not open. The key's id is
//! stored beside each row, so keys can rotate (`TemplateStore::rekey_batch`) while rows
//! under the previous key stay readable.
//!
//! On disk: a 12-byte random nonce, then the ciphertext, then the 16-byte tag.

use std::path::Path;
use std::sync::Arc;

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, Key, KeyInit, Nonce};
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::error::StoreError;

const NONCE_BYTES: usize = 12;
const TAG_BYTES: usize = 16;
/// What sealing adds to a blob's length.
pub(crate) const SEAL_OVERHEAD: usize = NONCE_BYTES + TAG_BYTES;
const KEY_BYTES: usize = 32;

/// One operator key.
pub struct TemplateKey {
    id: String,
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for TemplateKey {
    // By hand: the key itself is never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TemplateKey").field("id", &self.id).finish()
    }
}

impl TemplateKey {
    /// 32 bytes of key. The id is a hash of them: the same key always has the same id, and
    /// the id reveals nothing usable about the key.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, StoreError> {
        if bytes.len() != KEY_BYTES {
            return Err(StoreError::Key(format!(
                "a template key is {KEY_BYTES} bytes, not {}",
                bytes.len()
            )));
        }
        let digest = Sha256::new()
            .chain_update(b"handmatch template key id\0")
            .chain_update(bytes)
            .finalize();
        Ok(Self {
            id: hex::encode(&digest[..8]),
            cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(bytes)),
        })
    }

    /// A key file holds the 32 bytes raw (`head -c 32 /dev/urandom`) or as 64 hex digits.
    pub fn from_file(path: &Path) -> Result<Self, StoreError> {
        let what = || format!("template key file {}", path.display());
        let raw = std::fs::read(path).map_err(|e| StoreError::Key(format!("{}: {e}", what())))?;
        let text = std::str::from_utf8(&raw).map(str::trim).unwrap_or("");
        let bytes = if text.len() == 2 * KEY_BYTES {
            hex::decode(text).map_err(|e| StoreError::Key(format!("{}: {e}", what())))?
        } else {
            raw
        };
        Self::from_bytes(&bytes).map_err(|e| e.context(what()))
    }

    pub fn id(&self) -> &str {
        &self.id
    }
}

/// The row a sealed embedding belongs to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SealedRow<'a> {
    pub template_id: i64,
    pub gallery: &'a str,
    pub subject_id: &'a str,
    pub model_id: &'a str,
}

impl SealedRow<'_> {
    /// Length-prefixed fields, so no two rows give the same bytes.
    fn associated_data(&self) -> Vec<u8> {
        let mut aad = b"handmatch template v1\0".to_vec();
        aad.extend_from_slice(&self.template_id.to_le_bytes());
        for field in [self.gallery, self.subject_id, self.model_id] {
            aad.extend_from_slice(&(field.len() as u32).to_le_bytes());
            aad.extend_from_slice(field.as_bytes());
        }
        aad
    }
}

/// The keys a store seals with (`current`) and opens with (`current` and `previous`).
/// Without a current key, new templates are stored in plaintext.
#[derive(Debug, Clone, Default)]
pub struct TemplateKeys {
    current: Option<Arc<TemplateKey>>,
    previous: Vec<Arc<TemplateKey>>,
}

impl TemplateKeys {
    pub fn new(current: Option<TemplateKey>, previous: Vec<TemplateKey>) -> Self {
        Self {
            current: current.map(Arc::new),
            previous: previous.into_iter().map(Arc::new).collect(),
        }
    }

    pub fn current_id(&self) -> Option<&str> {
        self.current.as_deref().map(TemplateKey::id)
    }

    /// Whether rows sealed under `id` can be opened.
    pub fn opens(&self, id: &str) -> bool {
        self.find(id).is_some()
    }

    fn find(&self, id: &str) -> Option<&TemplateKey> {
        self.current
            .iter()
            .chain(&self.previous)
            .map(Arc::as_ref)
            .find(|k| k.id == id)
    }

    /// `plain` sealed under the current key for `row`, or `plain` itself without one.
    pub(crate) fn seal(&self, plain: Vec<u8>, row: SealedRow<'_>) -> Vec<u8> {
        let Some(key) = &self.current else {
            return plain;
        };
        seal_with(key, &plain, row)
    }

    /// The stored bytes opened: plaintext rows (`key_id` NULL) as they are, sealed ones
    /// with the key they name, failing if that key is not given or the row is not theirs.
    pub(crate) fn open(
        &self,
        stored: &[u8],
        key_id: Option<&str>,
        row: SealedRow<'_>,
    ) -> Result<Vec<u8>, StoreError> {
        let Some(id) = key_id else {
            return Ok(stored.to_vec());
        };
        let key = self.find(id).ok_or_else(|| {
            StoreError::Key(format!(
                "template {} is sealed under key {id}, which this server was not given",
                row.template_id
            ))
        })?;
        open_with(key, stored, row)
    }
}

pub(crate) fn seal_with(key: &TemplateKey, plain: &[u8], row: SealedRow<'_>) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_BYTES];
    rand::rng().fill_bytes(&mut nonce);
    let aad = row.associated_data();
    let sealed = key
        .cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plain,
                aad: &aad,
            },
        )
        .expect("AES-GCM seals any message shorter than 64 GiB");
    [nonce.as_slice(), &sealed].concat()
}

fn open_with(key: &TemplateKey, stored: &[u8], row: SealedRow<'_>) -> Result<Vec<u8>, StoreError> {
    let fails = || {
        StoreError::Corrupt(format!(
            "template {} does not open under key {}: altered, or moved from another row",
            row.template_id, key.id
        ))
    };
    if stored.len() < SEAL_OVERHEAD {
        return Err(fails());
    }
    let (nonce, sealed) = stored.split_at(NONCE_BYTES);
    let aad = row.associated_data();
    key.cipher
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: sealed,
                aad: &aad,
            },
        )
        .map_err(|_| fails())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(template_id: i64, subject_id: &str) -> SealedRow<'_> {
        SealedRow {
            template_id,
            gallery: "default",
            subject_id,
            model_id: "m",
        }
    }

    #[test]
    fn a_sealed_blob_opens_only_in_its_own_row_and_under_its_own_key() {
        let key = TemplateKey::from_bytes(&[7; 32]).unwrap();
        let other = TemplateKey::from_bytes(&[8; 32]).unwrap();
        assert_ne!(key.id(), other.id());
        let keys = TemplateKeys::new(Some(key), vec![]);
        let plain = vec![1u8, 2, 3, 4];
        let sealed = keys.seal(plain.clone(), row(1, "alice"));
        assert_eq!(sealed.len(), plain.len() + SEAL_OVERHEAD);
        assert!(!sealed.windows(4).any(|w| w == plain.as_slice()));
        let id = keys.current_id().map(str::to_owned);
        let open = |r, id: Option<&str>| keys.open(&sealed, id, r);
        assert_eq!(open(row(1, "alice"), id.as_deref()).unwrap(), plain);
        for moved in [row(2, "alice"), row(1, "bob")] {
            let err = open(moved, id.as_deref()).unwrap_err();
            assert!(err.to_string().contains("moved from another row"), "{err}");
        }
        let err = open(row(1, "alice"), Some(other.id())).unwrap_err();
        assert!(err.to_string().contains("was not given"), "{err}");
        assert_eq!(
            open(row(1, "alice"), None).unwrap(),
            sealed,
            "plaintext rows pass"
        );
    }

    #[test]
    fn key_files_hold_raw_or_hex_bytes_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("raw");
        let hexed = dir.path().join("hex");
        let short = dir.path().join("short");
        std::fs::write(&raw, [9u8; 32]).unwrap();
        std::fs::write(&hexed, format!("{}\n", hex::encode([9u8; 32]))).unwrap();
        std::fs::write(&short, [9u8; 16]).unwrap();
        let id = |p: &Path| TemplateKey::from_file(p).map(|k| k.id().to_owned());
        assert_eq!(id(&raw).unwrap(), id(&hexed).unwrap());
        let err = id(&short).unwrap_err().to_string();
        assert!(
            err.contains("32 bytes, not 16") && err.contains("short"),
            "{err}"
        );
    }
}
