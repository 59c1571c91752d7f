//! `handmatch-eval`: drives a running handmatch server over gRPC — bulk enrolment, queries,
//! and a bounded load generator.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args as ClapArgs, Parser, Subcommand};
use handmatch_core::dataset::hand_info::{Dataset, LoadOptions, OnProblem};
use handmatch_core::dataset::split::{SubjectSplit, Subset};
use handmatch_core::hand_image::{Aspect, HandImage};
use handmatch_eval::client::{self, connect};
use handmatch_eval::load::{self, LoadConfig, LoadImages, Mix};
use handmatch_proto::v1 as pb;

#[derive(Parser)]
#[command(
    name = "handmatch-eval",
    version,
    about = "Drive a handmatch server: enrol, identify, load"
)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Enrol a dataset's images (palmar by default) through EnrollStream.
    Enroll(EnrollArgs),
    /// Identify one person from one or more images and print the ranked answer.
    Identify(IdentifyArgs),
    /// Send a bounded mix of requests and report throughput and latency.
    Load(LoadArgs),
    /// Print the server's GetInfo, waiting for it to be ready if asked.
    Info(InfoArgs),
    /// Enrol the palmar images of a dataset (or split subset), identify every dorsal image and
    /// every subject's dorsal set, and report Recall@K, mean rank, mAP and CMC.
    Run(RunArgs),
}

#[derive(ClapArgs)]
struct RunArgs {
    #[arg(
        long,
        env = "HANDMATCH_SERVER",
        default_value = "http://127.0.0.1:50051"
    )]
    server: String,
    #[command(flatten)]
    data: DataArgs,
    /// Identify requests in flight.
    #[arg(long, env = "HANDMATCH_RUN_CONCURRENCY", default_value_t = 4)]
    concurrency: usize,
    /// results.json and cmc.png go here.
    #[arg(long, env = "HANDMATCH_RUN_OUT")]
    out: std::path::PathBuf,
    /// Delete the enrolled subjects afterwards.
    #[arg(long)]
    cleanup: bool,
    /// Fraction of subjects queried but never enrolled, for open-set FPIR/FNIR.
    #[arg(long, env = "HANDMATCH_NON_MATED", default_value_t = 0.0)]
    non_mated: f64,
    /// Thresholds for the open-set report (default: the model's own, from GetInfo).
    #[arg(long, env = "HANDMATCH_THRESHOLDS", value_delimiter = ',')]
    thresholds: Vec<f32>,
    #[arg(long, env = "HANDMATCH_RUN_SEED", default_value_t = 0)]
    seed: u64,
}

#[derive(ClapArgs)]
struct InfoArgs {
    #[arg(
        long,
        env = "HANDMATCH_SERVER",
        default_value = "http://127.0.0.1:50051"
    )]
    server: String,
    /// Keep trying this long while the server starts or loads its model.
    #[arg(long, env = "HANDMATCH_WAIT", default_value = "0s", value_parser = humantime::parse_duration)]
    wait: Duration,
}

#[derive(ClapArgs)]
struct DataArgs {
    /// A folder in the 11k Hands layout (HandInfo.csv + Hands/).
    #[arg(long, env = "HANDMATCH_DATA")]
    data: PathBuf,
    /// Use only the subjects of one subset of this split file.
    #[arg(long, env = "HANDMATCH_SPLIT")]
    split: Option<PathBuf>,
    #[arg(long, env = "HANDMATCH_SUBSET", value_enum, requires = "split")]
    subset: Option<Subset>,
    /// Leave out rows with problems (missing files, bad fields) instead of failing.
    #[arg(long, env = "HANDMATCH_SKIP_PROBLEMS")]
    skip_problems: bool,
}

impl DataArgs {
    fn load(&self) -> anyhow::Result<Dataset> {
        let opts = LoadOptions {
            on_problem: if self.skip_problems {
                OnProblem::Skip
            } else {
                OnProblem::Error
            },
        };
        let (mut ds, report) = Dataset::load(&self.data, &opts)?;
        if !report.problems.is_empty() {
            eprintln!(
                "skipped {} of {} rows with problems",
                report.problems.len(),
                report.rows
            );
        }
        if let Some(path) = &self.split {
            let split = SubjectSplit::load(path)?;
            let subset = self.subset.unwrap_or(Subset::Test);
            split.check_against(&ds, subset)?;
            let keep = split.subject_set(subset);
            ds.images.retain(|i| keep.contains(&i.subject));
        }
        Ok(ds)
    }
}

#[derive(ClapArgs)]
struct EnrollArgs {
    #[arg(
        long,
        env = "HANDMATCH_SERVER",
        default_value = "http://127.0.0.1:50051"
    )]
    server: String,
    #[command(flatten)]
    data: DataArgs,
    #[arg(long, env = "HANDMATCH_ENROLL_ASPECT", value_enum, default_value_t = Aspect::Palmar)]
    aspect: Aspect,
}

#[derive(ClapArgs)]
struct IdentifyArgs {
    #[arg(
        long,
        env = "HANDMATCH_SERVER",
        default_value = "http://127.0.0.1:50051"
    )]
    server: String,
    /// Images of one person (their embeddings are averaged).
    #[arg(long = "image", required = true)]
    images: Vec<PathBuf>,
    #[arg(long, env = "HANDMATCH_TOP_K", default_value_t = 10)]
    top_k: u32,
}

#[derive(ClapArgs)]
struct LoadArgs {
    #[arg(
        long,
        env = "HANDMATCH_SERVER",
        default_value = "http://127.0.0.1:50051"
    )]
    server: String,
    #[command(flatten)]
    data: DataArgs,
    #[arg(long, env = "HANDMATCH_LOAD_CONCURRENCY", default_value_t = 8)]
    concurrency: usize,
    /// How long to send requests, e.g. 30s or 2m.
    #[arg(long, env = "HANDMATCH_LOAD_DURATION", default_value = "30s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// A hard cap on the number of requests.
    #[arg(long, env = "HANDMATCH_LOAD_MAX_REQUESTS", default_value_t = 1_000_000)]
    max_requests: u64,
    #[arg(
        long,
        env = "HANDMATCH_LOAD_MIX",
        default_value = "identify=8,enroll=1,delete=1"
    )]
    mix: Mix,
    #[arg(long, env = "HANDMATCH_LOAD_SEED", default_value_t = 0)]
    seed: u64,
    /// Also write the report as JSON here.
    #[arg(long, env = "HANDMATCH_LOAD_OUT")]
    out: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Args::parse().command {
        Command::Enroll(a) => {
            let ds = a.data.load()?;
            let images: Vec<&HandImage> =
                ds.images.iter().filter(|i| i.aspect == a.aspect).collect();
            let mut c = connect(&a.server).await?;
            let (stored, failed) = client::enroll_all(&mut c, &images).await?;
            println!("enrolled {stored} templates of {} images", images.len());
            for f in &failed {
                eprintln!("failed: {f}");
            }
            anyhow::ensure!(failed.is_empty(), "{} subjects failed", failed.len());
        }
        Command::Identify(a) => {
            let mut c = connect(&a.server).await?;
            let images = a
                .images
                .iter()
                .map(|p| {
                    Ok(pb::Image {
                        data: std::fs::read(p)
                            .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?,
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
        }
        Command::Info(a) => {
            let deadline = std::time::Instant::now() + a.wait;
            let info = loop {
                let attempt = async {
                    let mut c = connect(&a.server).await?;
                    Ok::<_, anyhow::Error>(c.get_info(pb::GetInfoRequest {}).await?.into_inner())
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
        }
        Command::Run(a) => {
            let ds = a.data.load()?;
            let images: Vec<&HandImage> = ds.images.iter().collect();
            let mut c = connect(&a.server).await?;
            let thresholds = if a.thresholds.is_empty() {
                let info = c.get_info(pb::GetInfoRequest {}).await?.into_inner();
                handmatch_eval::run::model_thresholds(&info.training)?
            } else {
                a.thresholds
                    .iter()
                    .map(|t| (*t, "given".to_string()))
                    .collect()
            };
            let opts = handmatch_eval::run::RunOptions {
                concurrency: a.concurrency,
                non_mated: a.non_mated,
                seed: a.seed,
                thresholds,
            };
            let results = handmatch_eval::run::run(&mut c, &images, &opts).await?;
            std::fs::create_dir_all(&a.out)?;
            std::fs::write(
                a.out.join("results.json"),
                serde_json::to_string_pretty(&results)? + "\n",
            )?;
            let curves = vec![
                (
                    "template → template".to_string(),
                    results.template_to_template.cmc.clone(),
                ),
                (
                    "image → template".to_string(),
                    results.image_to_template.cmc.clone(),
                ),
            ];
            handmatch_core::report::plot::cmc_chart(
                &a.out.join("cmc.png"),
                "CMC through the service",
                &curves,
            )?;
            if let Some(open) = &results.open_set {
                handmatch_core::report::plot::histogram_chart(
                    &a.out.join("scores.png"),
                    "Scores: mated vs non-mated searches",
                    "cosine score",
                    &[
                        (
                            "mated (own subject)".to_string(),
                            open.mated_scores.iter().map(|&s| s as f64).collect(),
                        ),
                        (
                            "non-mated (best)".to_string(),
                            open.non_mated_scores.iter().map(|&s| s as f64).collect(),
                        ),
                    ],
                    30,
                )?;
                for p in &open.points {
                    println!(
                        "open set at {:.4} ({}): FPIR {:.4} ({} non-mated searches), FNIR {:.4} ({} mated searches)",
                        p.threshold, p.source, p.fpir, p.non_mated_searches, p.fnir, p.mated_searches
                    );
                }
            }
            let page = handmatch_eval::html_report::render(&results, &images)?;
            std::fs::write(a.out.join("report.html"), page)?;
            println!("| protocol | queries | gallery | R@1 | R@5 | R@10 | mean rank | mAP |\n|---|---:|---:|---:|---:|---:|---:|---:|");
            for (name, m) in [
                ("template → template", &results.template_to_template),
                ("image → template", &results.image_to_template),
            ] {
                let r = |k| m.recall_at(k).map_or(f64::NAN, |x| x.value);
                println!(
                    "| {name} | {} | {} | {:.3} | {:.3} | {:.3} | {:.2} | {:.3} |",
                    m.queries,
                    m.gallery_size,
                    r(1),
                    r(5),
                    r(10),
                    m.mean_rank,
                    m.mean_ap
                );
            }
            if a.cleanup {
                let n = handmatch_eval::run::cleanup(&mut c, &images).await?;
                eprintln!("deleted {n} subjects");
            }
        }
        Command::Load(a) => {
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
            let c = connect(&a.server).await?;
            let cfg = LoadConfig {
                concurrency: a.concurrency,
                duration: a.duration,
                max_requests: a.max_requests,
                mix: a.mix,
                seed: a.seed,
            };
            let report = load::run(c, images, &cfg).await?;
            print!("{}", report.table());
            if let Some(path) = a.out {
                std::fs::write(&path, serde_json::to_string_pretty(&report)? + "\n")?;
            }
        }
    }
    Ok(())
}
