//! `handmatch-eval info`: print the server's GetInfo, waiting for it to be ready if asked.

use std::time::Duration;

use clap::Args;
use handmatch_proto::v1 as pb;

use super::ServerArgs;

#[derive(Args)]
pub struct InfoArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Keep trying this long while the server starts or loads its model.
    #[arg(long, env = "HANDMATCH_WAIT", default_value = "0s", value_parser = humantime::parse_duration)]
    pub wait: Duration,
}

pub async fn run(a: InfoArgs) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + a.wait;
    let info = loop {
        let attempt = async {
            let mut c = a.server.connect().await?;
            Ok::<_, anyhow::Error>(
                c.get_info(pb::GetInfoRequest {
                    gallery: a.server.gallery.clone(),
                })
                .await?
                .into_inner(),
            )
        };
        match attempt.await {
            Ok(info) => break info,
            Err(e) if std::time::Instant::now() >= deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    };
    println!(
        "model {} ({}, {}px → {}-d) on {}; gallery: {} subjects, {} templates; server {}",
        info.model_id,
        info.backbone,
        info.input_size,
        info.embedding_dim,
        info.execution_provider,
        info.gallery_subjects,
        info.gallery_templates,
        info.server_version
    );
    Ok(())
}
