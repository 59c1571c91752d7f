//! `Grant`: what the caller of one request may do, and the check every RPC makes.

use std::collections::BTreeSet;

use super::error::AccessError;
use super::scope::Scope;
use crate::store::{ApiKeyRecord, ALL_GALLERIES};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GalleryAccess {
    All,
    Only(BTreeSet<String>),
}

impl GalleryAccess {
    pub fn allows(&self, gallery: &str) -> bool {
        match self {
            GalleryAccess::All => true,
            GalleryAccess::Only(names) => names.contains(gallery),
        }
    }

    /// As stored: the names, or just "*".
    pub fn to_stored(&self) -> Vec<String> {
        match self {
            GalleryAccess::All => vec![ALL_GALLERIES.to_string()],
            GalleryAccess::Only(names) => names.iter().cloned().collect(),
        }
    }

    pub fn from_stored(names: &[String]) -> Self {
        if names.iter().any(|n| n == ALL_GALLERIES) {
            GalleryAccess::All
        } else {
            GalleryAccess::Only(names.iter().cloned().collect())
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The key's name; `None` when the server runs without authentication.
    pub key_name: Option<String>,
    pub scopes: BTreeSet<Scope>,
    pub galleries: GalleryAccess,
}

impl Grant {
    /// Everything: the grant of every caller under `--auth none`.
    pub fn unrestricted() -> Self {
        Self {
            key_name: None,
            scopes: Scope::ALL.into_iter().collect(),
            galleries: GalleryAccess::All,
        }
    }

    /// The grant of a stored key; a scope this build does not know grants nothing.
    pub fn of_key(record: &ApiKeyRecord) -> Self {
        Self {
            key_name: Some(record.name.clone()),
            scopes: record
                .scopes
                .iter()
                .filter_map(|s| s.parse().ok())
                .collect(),
            galleries: GalleryAccess::from_stored(&record.galleries),
        }
    }

    /// `PermissionDenied` unless the grant has `scope` and, when a gallery is named, that
    /// gallery.
    pub fn allow(&self, scope: Scope, gallery: Option<&str>) -> Result<(), AccessError> {
        let key = self.key_name.as_deref().unwrap_or("(none)");
        if !self.scopes.contains(&scope) {
            return Err(AccessError::PermissionDenied(format!(
                "the API key {key:?} lacks the {scope:?} scope this call needs",
                scope = scope.as_str()
            )));
        }
        match gallery {
            Some(g) if !self.galleries.allows(g) => Err(AccessError::PermissionDenied(format!(
                "the API key {key:?} may not use gallery {g:?}"
            ))),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(scopes: &[Scope], galleries: GalleryAccess) -> Grant {
        Grant {
            key_name: Some("k".into()),
            scopes: scopes.iter().copied().collect(),
            galleries,
        }
    }

    #[test]
    fn a_grant_allows_its_scopes_in_its_galleries_only() {
        let only_a = GalleryAccess::Only(["a".to_string()].into());
        let g = grant(&[Scope::Identify], only_a);
        assert!(g.allow(Scope::Identify, Some("a")).is_ok());
        let no_scope = g.allow(Scope::Enroll, Some("a")).unwrap_err().to_string();
        assert!(no_scope.contains("\"enroll\" scope"), "{no_scope}");
        let no_gallery = g.allow(Scope::Identify, Some("b")).unwrap_err().to_string();
        assert!(no_gallery.contains("gallery \"b\""), "{no_gallery}");
        assert!(grant(&[Scope::Read], GalleryAccess::All)
            .allow(Scope::Read, Some("anything"))
            .is_ok());
        assert!(Grant::unrestricted().allow(Scope::Admin, None).is_ok());
    }

    #[test]
    fn gallery_access_round_trips_through_its_stored_form() {
        for access in [
            GalleryAccess::All,
            GalleryAccess::Only(["a".to_string(), "b".to_string()].into()),
        ] {
            assert_eq!(GalleryAccess::from_stored(&access.to_stored()), access);
        }
    }
}
