//! `handmatch-eval identify`: identify one person from one or more images and print the ranked answer.

use std::path::PathBuf;

use clap::Args;
use handmatch_proto::v1 as pb;

use super::ServerArgs;

#[derive(Args)]
pub struct IdentifyArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Images of one person (their embeddings are averaged).
    #[arg(long = "image", required = true)]
    pub images: Vec<PathBuf>,
    #[arg(long, env = "HANDMATCH_TOP_K", default_value_t = 10)]
    pub top_k: u32,
}

pub async fn run(a: IdentifyArgs) -> anyhow::Result<()> {
    let mut c = a.server.connect().await?;
    let images = a
        .images
        .iter()
        .map(|p| {
            Ok(pb::Image {
                data: std::fs::read(p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?,
                aspect: pb::Aspect::Dorsal as i32,
                side: 0,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let r = c
        .identify(pb::IdentifyRequest {
            images,
            top_k: Some(a.top_k),
            gallery_aspect: pb::Aspect::Palmar as i32,
            min_score: None,
        })
        .await
        .map_err(|s| anyhow::anyhow!("Identify failed: {:?}: {}", s.code(), s.message()))?
        .into_inner();
    println!("rank  subject                score");
    for cand in &r.candidates {
        println!(
            "{:>4}  {:<20} {:>7.4}",
            cand.rank, cand.subject_id, cand.score
        );
    }
    if let Some(t) = r.timings {
        println!(
            "({} subjects; decode {:.1} ms, embed {:.1} ms, search {:.2} ms)",
            r.gallery_subjects, t.decode_ms, t.embed_ms, t.search_ms
        );
    }
    Ok(())
}
