//! `handmatch-bench embed`: embedding throughput of an artefact at several batch sizes, on
//! this machine, in one run. The first batch size is the baseline that the others'
//! speed-ups are reported against.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use handmatch_core::args::RuntimeArgs;
use handmatch_core::embed::EmbeddingSession;
use ndarray::Array4;

#[derive(clap::Args)]
pub struct EmbedArgs {
    #[arg(long, env = "HANDMATCH_MODEL")]
    model: PathBuf,
    #[arg(
        long,
        env = "HANDMATCH_BENCH_BATCH_SIZES",
        value_delimiter = ',',
        default_value = "1,8"
    )]
    batch_sizes: Vec<usize>,
    /// Minimum measured time per batch size.
    #[arg(long, env = "HANDMATCH_BENCH_SECONDS", default_value_t = 10.0)]
    seconds: f64,
    /// Minimum measured runs per batch size.
    #[arg(long, env = "HANDMATCH_BENCH_MIN_RUNS", default_value_t = 3)]
    min_runs: usize,
    #[command(flatten)]
    runtime: RuntimeArgs,
}

struct Row {
    batch: usize,
    runs: usize,
    images_per_s: f64,
    p50_ms: f64,
    p90_ms: f64,
}

pub fn run(args: EmbedArgs) -> anyhow::Result<()> {
    let opts = args.runtime.options();
    let mut session = EmbeddingSession::open(&args.model, &opts)?;
    let meta = session.metadata().clone();
    let s = meta.input_size as usize;
    println!(
        "model {} ({}, {s}px → {}-d) on {}, {} cores",
        meta.model_id,
        meta.backbone,
        meta.embedding_dim,
        session.provider(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let mut rows = Vec::new();
    for &batch in &args.batch_sizes {
        anyhow::ensure!(batch > 0, "batch sizes must be positive");
        let images = Array4::from_shape_fn((batch, s, s, 3), |(i, y, x, c)| {
            ((i * 31 + y * 7 + x * 3 + c * 11) % 251) as u8
        });
        session.embed(images.view())?; // warm-up: allocations, kernels' first use
        let mut times = Vec::new();
        let start = Instant::now();
        while times.len() < args.min_runs || start.elapsed() < Duration::from_secs_f64(args.seconds)
        {
            let t = Instant::now();
            session.embed(images.view())?;
            times.push(t.elapsed().as_secs_f64());
        }
        let total: f64 = times.iter().sum();
        times.sort_by(|a, b| a.total_cmp(b));
        let pct = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize] * 1e3;
        rows.push(Row {
            batch,
            runs: times.len(),
            images_per_s: (batch * times.len()) as f64 / total,
            p50_ms: pct(0.5),
            p90_ms: pct(0.9),
        });
    }
    let base = rows[0].images_per_s;
    println!(
        "| batch | runs | images/s | ms/batch p50 | ms/batch p90 | vs batch {} |",
        rows[0].batch
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        println!(
            "| {} | {} | {:.2} | {:.1} | {:.1} | {:.2}x |",
            r.batch,
            r.runs,
            r.images_per_s,
            r.p50_ms,
            r.p90_ms,
            r.images_per_s / base
        );
    }
    Ok(())
}
