//! `handmatch-server templates rekey`: moves every stored template under a new key, one
//! transaction per batch, with a progress bar; run it again to resume after a stop.

use indicatif::{ProgressBar, ProgressStyle};

use super::args::{RekeyArgs, TemplatesCommand};
use crate::store::TemplateStore;

pub async fn run(command: TemplatesCommand) -> anyhow::Result<u64> {
    match command {
        TemplatesCommand::Rekey(args) => rekey(&args).await,
    }
}

/// Returns how many templates were re-sealed.
async fn rekey(args: &RekeyArgs) -> anyhow::Result<u64> {
    let (old, new) = args.keys()?;
    let store = TemplateStore::connect(&args.database_url, 1)
        .await?
        .with_template_keys(old);
    let left = store.templates_not_under(new.id()).await?;
    let bar = ProgressBar::new(left).with_style(
        ProgressStyle::with_template("rekey {bar:40} {pos}/{len} templates {per_sec} ETA {eta}")
            .expect("a valid progress template"),
    );
    let mut moved = 0;
    let mut batches = 0;
    while args.max_batches.is_none_or(|most| batches < most) {
        let n = store.rekey_batch(&new, args.batch_size).await?;
        if n == 0 {
            break;
        }
        moved += n;
        batches += 1;
        bar.inc(n);
    }
    bar.finish_and_clear();
    let remaining = store.templates_not_under(new.id()).await?;
    store.close().await;
    tracing::info!(
        moved,
        remaining,
        key_id = new.id(),
        "templates re-sealed{}",
        if remaining > 0 {
            "; run again to finish"
        } else {
            ""
        }
    );
    Ok(moved)
}
