//! `handmatch-server keys create|list|revoke`: key administration straight on the database,
//! for the first admin key and for operators without a running server. `create` writes the
//! key and nothing else to `out`, so `KEY=$(handmatch-server keys create …)` works.

use std::io::Write;

use crate::access::key_admin::{self, KeyInfo, KeyRequest};
use crate::access::GalleryAccess;
use crate::config::{KeyStoreArgs, KeysCommand};
use crate::store::{AuditEvent, TemplateStore};

pub async fn run(command: KeysCommand, out: &mut impl Write) -> anyhow::Result<()> {
    match command {
        KeysCommand::Create(a) => {
            let store = open(&a.store).await?;
            let request = KeyRequest {
                name: a.name,
                scopes: a.scopes,
                galleries: a.galleries,
                all_galleries: a.all_galleries,
            };
            let audit = cli_event("keys create", &request.name);
            let (key, info) = key_admin::create_key(&store, request, Some(&audit)).await?;
            store.close().await;
            tracing::info!(name = %info.name, scopes = %scopes(&info), "API key created");
            writeln!(out, "{key}")?;
        }
        KeysCommand::List(a) => {
            let store = open(&a).await?;
            let keys = key_admin::list_keys(&store).await?;
            store.close().await;
            write_table(&keys, out)?;
        }
        KeysCommand::Revoke(a) => {
            let store = open(&a.store).await?;
            let audit = cli_event("keys revoke", &a.name);
            let info = key_admin::revoke_key(&store, &a.name, Some(&audit)).await?;
            store.close().await;
            writeln!(out, "revoked {}", info.name)?;
        }
    }
    Ok(())
}

/// What the audit trail records of a key change made from the command line.
fn cli_event(command: &str, key_name: &str) -> AuditEvent {
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    AuditEvent {
        request_id: "-".into(),
        actor: format!("cli {user}"),
        rpc: command.into(),
        gallery: None,
        subject_id: Some(key_name.into()),
        result: "Ok".into(),
        templates: 0,
    }
}

async fn open(args: &KeyStoreArgs) -> anyhow::Result<TemplateStore> {
    Ok(TemplateStore::connect(&args.database_url, 1).await?)
}

fn scopes(k: &KeyInfo) -> String {
    let names: Vec<&str> = k.scopes.iter().map(|s| s.as_str()).collect();
    names.join(",")
}

fn galleries(k: &KeyInfo) -> String {
    match &k.galleries {
        GalleryAccess::All => "*".into(),
        GalleryAccess::Only(names) => names.iter().cloned().collect::<Vec<_>>().join(","),
    }
}

fn time(ms: Option<i64>) -> String {
    let Some(ms) = ms else {
        return "-".into();
    };
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_seconds(at).to_string()
}

fn write_table(keys: &[KeyInfo], out: &mut impl Write) -> std::io::Result<()> {
    writeln!(out, "name\tscopes\tgalleries\tcreated\tlast_used\trevoked")?;
    for k in keys {
        writeln!(
            out,
            "{}\t{}\t{}\t{}\t{}\t{}",
            k.name,
            scopes(k),
            galleries(k),
            time(Some(k.created_at_ms)),
            time(k.last_used_at_ms),
            time(k.revoked_at_ms),
        )?;
    }
    Ok(())
}
