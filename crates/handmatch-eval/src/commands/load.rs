//! `handmatch-eval load`: send a bounded mix of requests and report throughput and latency.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use handmatch_core::hand_image::Aspect;
use handmatch_eval::load::{self, LoadConfig, LoadImages, Mix};
use handmatch_eval::{client, process_samples};
use handmatch_proto::v1 as pb;

use super::{DataArgs, ServerArgs};

#[derive(Args)]
pub struct LoadArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub data: DataArgs,
    #[arg(long, env = "HANDMATCH_LOAD_CONCURRENCY", default_value_t = 8)]
    pub concurrency: usize,
    /// How long to send requests, e.g. 30s or 2m.
    #[arg(long, env = "HANDMATCH_LOAD_DURATION", default_value = "30s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// A hard cap on the number of requests.
    #[arg(long, env = "HANDMATCH_LOAD_MAX_REQUESTS", default_value_t = 1_000_000)]
    pub max_requests: u64,
    #[arg(
        long,
        env = "HANDMATCH_LOAD_MIX",
        default_value = "identify=8,enroll=1,delete=1"
    )]
    pub mix: Mix,
    #[arg(long, env = "HANDMATCH_LOAD_SEED", default_value_t = 0)]
    pub seed: u64,
    /// Also write the report as JSON here.
    #[arg(long, env = "HANDMATCH_LOAD_OUT")]
    pub out: Option<PathBuf>,
    /// The server's process id (on this machine): sample its resident memory and open file
    /// descriptors while loading it, into `--samples`.
    #[arg(long, env = "HANDMATCH_LOAD_SAMPLE_PID", requires = "samples")]
    pub sample_pid: Option<u32>,
    /// Where the samples go: STEM.csv, STEM-rss.png, STEM-fds.png.
    #[arg(long, env = "HANDMATCH_LOAD_SAMPLES")]
    pub samples: Option<PathBuf>,
    /// Time between samples.
    #[arg(long, env = "HANDMATCH_LOAD_SAMPLE_EVERY", default_value = "10s", value_parser = humantime::parse_duration)]
    pub sample_every: Duration,
}

pub async fn run(a: LoadArgs) -> anyhow::Result<()> {
    let ds = a.data.load()?;
    let read = |aspect: Aspect| -> anyhow::Result<Vec<pb::Image>> {
        Ok(ds
            .images
            .iter()
            .filter(|i| i.aspect == aspect)
            .map(client::pb_image)
            .collect::<Result<_, _>>()?)
    };
    let images = Arc::new(LoadImages {
        queries: read(Aspect::Dorsal)?,
        gallery: read(Aspect::Palmar)?,
    });
    let c = a.server.connect().await?;
    let cfg = LoadConfig {
        gallery: a.server.gallery.clone(),
        consent_reference: a.server.consent_reference.clone(),
        concurrency: a.concurrency,
        duration: a.duration,
        max_requests: a.max_requests,
        mix: a.mix,
        seed: a.seed,
    };
    let sampler = a
        .sample_pid
        .map(|pid| process_samples::Sampler::start(pid, a.sample_every));
    let report = load::run(c, images, &cfg).await?;
    if let (Some(sampler), Some(stem)) = (sampler, &a.samples) {
        process_samples::write(stem, &sampler.finish().await?)?;
    }
    print!("{}", report.table());
    if let Some(path) = a.out {
        std::fs::write(&path, serde_json::to_string_pretty(&report)? + "\n")?;
    }
    Ok(())
}
