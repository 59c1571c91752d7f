//! The key itself: `hmk_<id>_<secret>`, a 64-bit public id (which finds the stored row, so
//! a lookup never compares secrets in the database) and a 256-bit random secret, of which
//! only the SHA-256 is stored. The secret is compared in constant time.

use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

const PREFIX: &str = "hmk_";
const ID_BYTES: usize = 8;
const SECRET_BYTES: usize = 32;

/// A key as presented by a caller, split into its parts.
#[derive(Clone, PartialEq, Eq)]
pub struct PresentedKey {
    pub key_id: String,
    secret_sha256: [u8; 32],
}

impl std::fmt::Debug for PresentedKey {
    // Never prints the secret (nor its hash).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PresentedKey({})", self.key_id)
    }
}

/// A fresh key: the text to hand to the user once, and what the store keeps.
pub struct GeneratedKey {
    pub token: String,
    pub key_id: String,
    pub secret_sha256: String,
}

pub fn generate() -> GeneratedKey {
    let mut rng = rand::rng();
    let mut id = [0u8; ID_BYTES];
    let mut secret = [0u8; SECRET_BYTES];
    rng.fill_bytes(&mut id);
    rng.fill_bytes(&mut secret);
    let (key_id, secret) = (hex::encode(id), hex::encode(secret));
    GeneratedKey {
        token: format!("{PREFIX}{key_id}_{secret}"),
        secret_sha256: hex::encode(Sha256::digest(secret.as_bytes())),
        key_id,
    }
}

impl PresentedKey {
    /// `None` unless the text has the shape of a key.
    pub fn parse(token: &str) -> Option<Self> {
        let (key_id, secret) = token.strip_prefix(PREFIX)?.split_once('_')?;
        let hex_of = |s: &str, bytes: usize| {
            s.len() == 2 * bytes && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        };
        if !hex_of(key_id, ID_BYTES) || !hex_of(secret, SECRET_BYTES) {
            return None;
        }
        Some(Self {
            key_id: key_id.to_string(),
            secret_sha256: Sha256::digest(secret.as_bytes()).into(),
        })
    }

    /// Whether the secret hashes to `stored` (hex), in time independent of where they differ.
    pub fn matches(&self, stored_sha256_hex: &str) -> bool {
        let Ok(stored) = hex::decode(stored_sha256_hex) else {
            return false;
        };
        stored.len() == self.secret_sha256.len() && bool::from(stored.ct_eq(&self.secret_sha256))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_parses_and_matches_only_its_own_hash() {
        let a = generate();
        let b = generate();
        assert_ne!(a.token, b.token);
        assert_eq!(a.token.len(), PREFIX.len() + 16 + 1 + 64);
        let presented = PresentedKey::parse(&a.token).unwrap();
        assert_eq!(presented.key_id, a.key_id);
        assert!(presented.matches(&a.secret_sha256));
        assert!(!presented.matches(&b.secret_sha256));
        assert!(!presented.matches("not hex"));
        assert!(!format!("{presented:?}").contains(&a.secret_sha256));
    }

    #[test]
    fn malformed_keys_do_not_parse() {
        let good = generate().token;
        for bad in [
            "",
            "hmk_",
            &good[..good.len() - 1],
            &good.replace("hmk_", "xyz_"),
            &good.to_uppercase(),
            &format!("{good}0"),
        ] {
            assert!(PresentedKey::parse(bad).is_none(), "{bad}");
        }
    }
}
