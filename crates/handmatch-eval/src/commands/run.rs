//! `handmatch-eval run`: Recall@K, mean rank, mAP and CMC through the service: enrol the
//! palmar images of a dataset (or split subset), identify every dorsal image and every subject's dorsal set;
//! results.json, cmc.png, scores.png (open set) and report.html.

use clap::Args;
use handmatch_core::hand_image::HandImage;
use handmatch_eval::client::Client;
use handmatch_eval::outputs;
use handmatch_eval::run::RunOptions;
use handmatch_proto::v1 as pb;

use super::{DataArgs, ServerArgs};

#[derive(Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub data: DataArgs,
    /// Identify requests in flight.
    #[arg(long, env = "HANDMATCH_RUN_CONCURRENCY", default_value_t = 4)]
    pub concurrency: usize,
    /// results.json and cmc.png go here.
    #[arg(long, env = "HANDMATCH_RUN_OUT")]
    pub out: std::path::PathBuf,
    /// Delete the enrolled subjects afterwards.
    #[arg(long)]
    pub cleanup: bool,
    /// Fraction of subjects queried but never enrolled, for open-set FPIR/FNIR.
    #[arg(long, env = "HANDMATCH_NON_MATED", default_value_t = 0.0)]
    pub non_mated: f64,
    /// Thresholds for the open-set report (default: the model's own, from GetInfo).
    #[arg(long, env = "HANDMATCH_THRESHOLDS", value_delimiter = ',')]
    pub thresholds: Vec<f32>,
    #[arg(long, env = "HANDMATCH_RUN_SEED", default_value_t = 0)]
    pub seed: u64,
}

pub async fn run(a: RunArgs) -> anyhow::Result<()> {
    let ds = a.data.load()?;
    let images: Vec<&HandImage> = ds.images.iter().collect();
    let mut c = a.server.connect().await?;
    let opts = RunOptions {
        gallery: a.server.gallery.clone(),
        consent_reference: a.server.consent_reference.clone(),
        concurrency: a.concurrency,
        non_mated: a.non_mated,
        seed: a.seed,
        thresholds: thresholds(&a, &mut c).await?,
    };
    let results = handmatch_eval::run::run(&mut c, &images, &opts).await?;
    outputs::write_all(&a.out, &results, &images)?;
    if let Some(open) = &results.open_set {
        for p in &open.points {
            println!(
                "open set at {:.4} ({}): FPIR {:.4} ({} non-mated searches), FNIR {:.4} ({} mated searches)",
                p.threshold, p.source, p.fpir, p.non_mated_searches, p.fnir, p.mated_searches
            );
        }
    }
    print!("{}", outputs::markdown_table(&results));
    if a.cleanup {
        let n = handmatch_eval::run::cleanup(&mut c, &a.server.gallery, &images).await?;
        eprintln!("deleted {n} subjects");
    }
    Ok(())
}

/// The thresholds given on the command line, else the model's own (GetInfo).
async fn thresholds(a: &RunArgs, c: &mut Client) -> anyhow::Result<Vec<(f32, String)>> {
    if !a.thresholds.is_empty() {
        return Ok(a
            .thresholds
            .iter()
            .map(|t| (*t, "given".to_string()))
            .collect());
    }
    let info = c
        .get_info(pb::GetInfoRequest {
            gallery: a.server.gallery.clone(),
        })
        .await?
        .into_inner();
    handmatch_eval::run::model_thresholds(&info.training)
}
