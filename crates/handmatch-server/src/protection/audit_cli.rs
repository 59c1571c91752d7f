//! `handmatch-server audit list`: the audit trail straight from the database, oldest
//! first, one tab-separated line per event.

use std::io::Write;

use super::args::{AuditCommand, AuditListArgs};
use crate::store::{AuditQuery, AuditRecord, TemplateStore};

pub async fn run(command: AuditCommand, out: &mut impl Write) -> anyhow::Result<()> {
    match command {
        AuditCommand::List(args) => list(&args, out).await,
    }
}

async fn list(args: &AuditListArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let store = TemplateStore::connect(&args.database_url, 1).await?;
    let query = AuditQuery {
        since_ms: args.since,
        subject_id: args.subject.clone(),
        limit: args.limit,
    };
    let events = store.audit_events(&query).await?;
    store.close().await;
    write_table(&events, out)?;
    Ok(())
}

fn write_table(events: &[AuditRecord], out: &mut impl Write) -> std::io::Result<()> {
    writeln!(
        out,
        "time\trequest_id\tactor\trpc\tgallery\tsubject\tresult\ttemplates"
    )?;
    for r in events {
        let e = &r.event;
        writeln!(
            out,
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            rfc3339(r.at_ms),
            e.request_id,
            e.actor,
            e.rpc,
            e.gallery.as_deref().unwrap_or("-"),
            e.subject_id.as_deref().unwrap_or("-"),
            e.result,
            e.templates
        )?;
    }
    Ok(())
}

fn rfc3339(ms: i64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(at).to_string()
}
