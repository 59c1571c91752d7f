//! `ImageFingerprints`: what GetSubject shows of an enrolled image. Not its SHA-256, which
//! anyone holding the photo can compute and so test whether that person is enrolled, but
//! an HMAC of it under a secret the servers of one database share: stable (a client can
//! still tell two enrolments of the same image apart from two images), useless without the
//! secret.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::error::ServiceError;
use crate::store::TemplateStore;

const SECRET_NAME: &str = "image-fingerprint";

#[derive(Clone)]
pub struct ImageFingerprints {
    mac: Hmac<Sha256>,
}

impl ImageFingerprints {
    pub async fn open(store: &TemplateStore) -> Result<Self, ServiceError> {
        Ok(Self::with_secret(&store.server_secret(SECRET_NAME).await?))
    }

    pub fn with_secret(secret: &[u8]) -> Self {
        Self {
            mac: Hmac::new_from_slice(secret).expect("HMAC takes a key of any length"),
        }
    }

    /// 64 hex digits for the image whose SHA-256 is `image_sha256` (hex).
    pub fn of(&self, image_sha256: &str) -> String {
        let mut mac = self.mac.clone();
        mac.update(b"handmatch image fingerprint v1\0");
        mac.update(image_sha256.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_stable_per_secret_and_are_not_the_hash() {
        let sha = "ab".repeat(32);
        let (a, b) = (
            ImageFingerprints::with_secret(b"one"),
            ImageFingerprints::with_secret(b"two"),
        );
        assert_eq!(a.of(&sha), a.of(&sha));
        assert_eq!(a.of(&sha).len(), 64);
        assert_ne!(a.of(&sha), sha);
        assert_ne!(a.of(&sha), b.of(&sha));
        assert_ne!(a.of(&sha), a.of(&"cd".repeat(32)));
    }
}
