//! `Serving`: what the RPCs need once start-up is done (the operations and the key check),
//! and the first steps every call takes: ready, authenticated, authorised.

use std::sync::Arc;

use tokio::sync::OnceCell;
use tonic::Request;

use super::error::ServiceError;
use super::matcher::Matcher;
use super::validate;
use crate::access::{Authenticator, Grant, Scope};

#[derive(Clone)]
pub struct Serving {
    pub matcher: Arc<Matcher>,
    pub auth: Arc<Authenticator>,
}

/// Set once start-up has finished; until then every RPC answers UNAVAILABLE.
pub type ServingCell = Arc<OnceCell<Serving>>;

pub fn ready(cell: &OnceCell<Serving>) -> Result<Serving, ServiceError> {
    cell.get().cloned().ok_or_else(|| {
        ServiceError::Unavailable(
            "the server is starting (loading the model, waiting for the database); retry shortly"
                .into(),
        )
    })
}

impl Serving {
    /// The caller's grant: UNAUTHENTICATED without a valid key.
    pub async fn grant<T>(&self, request: &Request<T>) -> Result<Grant, ServiceError> {
        Ok(self
            .auth
            .authenticate(request.metadata(), request.remote_addr())
            .await?)
    }

    /// Authenticates, resolves the gallery the request names (checking its name only after
    /// the key, so a caller without one learns nothing) and checks the scope and gallery.
    pub async fn authorize<T>(
        &self,
        request: &Request<T>,
        scope: Scope,
        gallery: &str,
    ) -> Result<(String, Grant), ServiceError> {
        let grant = self.grant(request).await?;
        let gallery = validate::gallery(gallery)?;
        grant.allow(scope, Some(&gallery))?;
        Ok((gallery, grant))
    }
}
