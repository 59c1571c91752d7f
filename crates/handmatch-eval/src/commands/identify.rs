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
    /// Also decide whether the best candidate is a match, at the model's threshold for
    /// this false-positive identification rate.
    #[arg(long, value_enum)]
    pub operating_point: Option<OperatingPointArg>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum OperatingPointArg {
    /// FPIR 1 %.
    Fpir1pct,
    /// FPIR 0.1 %.
    Fpir0_1pct,
}

impl From<OperatingPointArg> for pb::OperatingPoint {
    fn from(p: OperatingPointArg) -> Self {
        match p {
            OperatingPointArg::Fpir1pct => pb::OperatingPoint::Fpir1pct,
            OperatingPointArg::Fpir0_1pct => pb::OperatingPoint::Fpir01pct,
        }
    }
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
            operating_point: a
                .operating_point
                .map_or(0, |p| pb::OperatingPoint::from(p) as i32),
            gallery: a.server.gallery.clone(),
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
    if let Some(d) = &r.decision {
        let verdict = if d.is_match {
            format!("a match: {}", d.subject_id)
        } else {
            "no match: the person is taken not to be enrolled".to_string()
        };
        println!(
            "best candidate {} scores {:.4} against the threshold {:.4}: {verdict}",
            d.subject_id, d.score, d.threshold
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
