//! `CallAudit`: the audit trail's view of one call. Started before anything is checked, so
//! that a call refused for its key is recorded too; told who the caller is once the key is
//! known; handed to the store as the event of a write that succeeds (appended in the
//! write's own transaction), or written on its own when the call fails.

use std::time::Duration;

use tonic::Request;

use super::error::ServiceError;
use crate::access::Grant;
use crate::store::{AuditEvent, TemplateStore};
use handmatch_proto::limits::DEFAULT_GALLERY;

/// The metadata key of the request id (set by the server's request-id layer when the
/// caller sent none) that the audit trail and the logs carry.
pub const REQUEST_ID: &str = "x-request-id";
/// A caller's gallery or subject field is stored up to this many characters: an
/// unauthenticated caller must not be able to write a megabyte into the trail.
const MAX_FIELD_CHARS: usize = 128;
/// Longest a failed call's answer waits for its audit event to be written.
const AUDIT_WAIT: Duration = Duration::from_millis(500);

pub struct CallAudit {
    event: AuditEvent,
}

impl CallAudit {
    /// `gallery`: the request's gallery field (empty names the default gallery); `None` for
    /// calls that name no gallery.
    pub fn start<T>(
        request: &Request<T>,
        rpc: &str,
        gallery: Option<&str>,
        subject: Option<&str>,
    ) -> Self {
        let request_id = request
            .metadata()
            .get(REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-");
        let actor = request
            .remote_addr()
            .map_or_else(|| "peer unknown".to_string(), |a| format!("peer {a}"));
        Self {
            event: AuditEvent {
                request_id: bounded(request_id),
                actor,
                rpc: rpc.to_string(),
                gallery: gallery.map(named_gallery),
                subject_id: subject.map(bounded).filter(|s| !s.is_empty()),
                result: "Ok".into(),
                templates: 0,
            },
        }
    }

    /// The caller is the key's holder (by name); the gallery is the one resolved.
    pub fn authorised(&mut self, grant: &Grant, gallery: &str) {
        if let Some(name) = &grant.key_name {
            self.event.actor = format!("key {name}");
        }
        if !gallery.is_empty() {
            self.event.gallery = Some(gallery.to_string());
        }
    }

    /// The same call as one item of a stream: its own request id and subject.
    pub fn item(&self, index: usize, gallery: &str, subject: &str) -> Self {
        let mut event = self.event.clone();
        event.request_id = format!("{}/{index}", self.event.request_id);
        event.gallery = Some(named_gallery(gallery));
        event.subject_id = Some(bounded(subject)).filter(|s| !s.is_empty());
        Self { event }
    }

    /// The event a successful write appends in its transaction.
    pub fn on_success(&self) -> AuditEvent {
        self.event.clone()
    }

    /// Records a failed call on its own, or a successful one that did not record itself
    /// (`recorded_by_write` false: a search). The call's answer does not wait on a trail
    /// that cannot be written; that is logged.
    pub async fn finish<T>(
        self,
        store: Option<&TemplateStore>,
        result: &Result<T, ServiceError>,
        recorded_by_write: bool,
    ) {
        match result {
            Ok(_) if recorded_by_write => {}
            Ok(_) => self.write(store).await,
            Err(e) => self.failed(store, e).await,
        }
    }

    /// Records the call as failed with `error`'s code.
    pub async fn failed(mut self, store: Option<&TemplateStore>, error: &ServiceError) {
        self.event.result = format!("{:?}", error.code());
        self.write(store).await;
    }

    /// Appends the event in a task of its own, waiting at most [`AUDIT_WAIT`] for it: a
    /// database that is away must not hold the call's answer (its event is then logged as
    /// lost once the store gives up).
    async fn write(self, store: Option<&TemplateStore>) {
        let Some(store) = store.cloned() else {
            tracing::warn!(rpc = %self.event.rpc, "not audited: the server is still starting");
            return;
        };
        let event = self.event;
        let write = tokio::spawn(async move {
            if let Err(e) = store.audit(&event).await {
                tracing::error!(rpc = %event.rpc, result = %event.result, "audit event lost: {e}");
            }
        });
        let _ = tokio::time::timeout(AUDIT_WAIT, write).await;
    }
}

fn named_gallery(field: &str) -> String {
    if field.is_empty() {
        DEFAULT_GALLERY.to_string()
    } else {
        bounded(field)
    }
}

fn bounded(field: &str) -> String {
    field.chars().take(MAX_FIELD_CHARS).collect()
}
