//! The server's start-up check of its template keys against the database.

use crate::store::TemplateStore;

/// Refuses to serve a database holding templates sealed under a key the server was not
/// given (they could be neither searched nor re-enrolled); warns when new templates would
/// be stored in plaintext.
pub async fn check_sealing(store: &TemplateStore) -> anyhow::Result<()> {
    let keys = store.template_keys();
    let unknown: Vec<String> = store
        .sealing_key_ids()
        .await?
        .into_iter()
        .filter(|id| !keys.opens(id))
        .collect();
    if !unknown.is_empty() {
        anyhow::bail!(
            "the database holds templates sealed under key(s) {} that no \
             --template-key-file or --previous-template-key-file gives",
            unknown.join(", ")
        );
    }
    match keys.current_id() {
        Some(id) => tracing::info!(key_id = id, "templates are sealed at rest (AES-256-GCM)"),
        None => tracing::warn!(
            "no --template-key-file: templates are stored in plaintext; biometric templates \
             should be sealed at rest (README, Data protection)"
        ),
    }
    Ok(())
}
