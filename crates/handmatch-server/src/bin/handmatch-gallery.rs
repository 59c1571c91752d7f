//! Large galleries for measuring: `make` writes N deterministic random subjects (one
//! palmar template each, L2-normalised) into PostgreSQL with COPY, bypassing the change
//! feed (start replicas afterwards); `measure` loads them through the server's own start-up
//! path (`Templates::load`) and reports load time, resident memory and search latency.
//! `scripts/make-large-gallery.sh` runs both at 1,000,000 × 256.

use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand};
use handmatch_core::hand_image::Aspect;
use handmatch_core::progress;
use handmatch_server::index::{IndexPrecision, IndexSettings};
use handmatch_server::service::templates::Templates;
use handmatch_server::store::TemplateStore;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};
use sqlx::postgres::PgPool;

#[derive(Parser)]
#[command(
    name = "handmatch-gallery",
    version,
    about = "Make and measure large galleries"
)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
struct Gallery {
    /// A PostgreSQL database (the schema is created if missing).
    #[arg(long, env = "HANDMATCH_DATABASE_URL")]
    database_url: String,
    /// The model id the templates are stored under (a server's model must match).
    #[arg(long, env = "HANDMATCH_GALLERY_MODEL_ID")]
    model_id: String,
    #[arg(long, env = "HANDMATCH_GALLERY_DIM", default_value_t = 256)]
    dim: usize,
    #[arg(long, env = "HANDMATCH_GALLERY", default_value = "default")]
    gallery: String,
}

#[derive(Subcommand)]
enum Command {
    /// Write SUBJECTS random subjects (refused if the model already has templates).
    Make {
        #[command(flatten)]
        gallery: Gallery,
        #[arg(long, env = "HANDMATCH_GALLERY_SUBJECTS", default_value_t = 1_000_000,
              value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
        subjects: u64,
        #[arg(long, env = "HANDMATCH_GALLERY_SEED", default_value_t = 7)]
        seed: u64,
    },
    /// Load the model's templates as a server starting up does, then search.
    Measure {
        #[command(flatten)]
        gallery: Gallery,
        #[arg(long, env = "HANDMATCH_GALLERY_QUERIES", default_value_t = 200)]
        queries: usize,
        /// f32, or f16 at half the memory.
        #[arg(long, env = "HANDMATCH_INDEX_PRECISION", default_value = "f32")]
        index_precision: IndexPrecision,
        #[arg(long, env = "HANDMATCH_SEARCH_THREADS", default_value_t = 1)]
        search_threads: usize,
    },
}

/// Rows per COPY statement: each is one transaction, so a failure loses at most one chunk.
const CHUNK: u64 = 20_000;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    match Args::parse().command {
        Command::Make {
            gallery,
            subjects,
            seed,
        } => make(&gallery, subjects, seed).await,
        Command::Measure {
            gallery,
            queries,
            index_precision,
            search_threads,
        } => {
            let settings = IndexSettings {
                precision: index_precision,
                search_threads: search_threads.max(1),
            };
            measure(&gallery, queries, settings).await
        }
    }
}

async fn make(g: &Gallery, subjects: u64, seed: u64) -> anyhow::Result<()> {
    let store = TemplateStore::connect(&g.database_url, 2).await?;
    let existing = store.models().await?;
    if let Some((_, n)) = existing.iter().find(|(m, _)| *m == g.model_id) {
        anyhow::bail!("model {} already has {n} templates here", g.model_id);
    }
    let pool = PgPool::connect(&g.database_url)
        .await
        .context("COPY connection")?;
    let bar = progress::bar(subjects, "subjects", "subjects", true);
    let started = Instant::now();
    let mut first = 0;
    while first < subjects {
        let rows = CHUNK.min(subjects - first);
        copy_chunk(&pool, g, seed, first..first + rows).await?;
        first += rows;
        bar.inc(rows);
    }
    bar.finish();
    // The planner's statistics, as after any bulk load: without them the load's page
    // query is planned for an empty table.
    sqlx::query("ANALYZE subjects, templates")
        .execute(&pool)
        .await?;
    println!(
        "wrote {subjects} subjects × {} in {:.1} s",
        g.dim,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Subjects `ids` and their one template each, in two COPYs of one transaction.
async fn copy_chunk(
    pool: &PgPool,
    g: &Gallery,
    seed: u64,
    ids: std::ops::Range<u64>,
) -> anyhow::Result<()> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let mut subjects = CopyRows::new();
    let mut templates = CopyRows::new();
    for i in ids {
        let subject = format!("s{i:08}");
        let at = now.to_be_bytes();
        subjects.row(&[g.gallery.as_bytes(), subject.as_bytes(), &at, &at]);
        let sha = hex::encode(Sha256::digest(format!("{seed}/{i}")));
        let embedding = random_unit(seed, i, g.dim);
        let palmar = 2i16.to_be_bytes();
        let unknown_side = 0i16.to_be_bytes();
        templates.row(&[
            g.gallery.as_bytes(),
            subject.as_bytes(),
            g.model_id.as_bytes(),
            &palmar,
            &unknown_side,
            sha.as_bytes(),
            &embedding,
            &now.to_be_bytes(),
        ]);
    }
    let mut tx = pool.begin().await?;
    let mut copy = tx
        .copy_in_raw(
            "COPY subjects (gallery, subject_id, created_at_ms, last_enrolled_at_ms) \
             FROM STDIN (FORMAT binary)",
        )
        .await?;
    copy.send(subjects.finish()).await?;
    copy.finish().await?;
    let mut copy = tx
        .copy_in_raw(
            "COPY templates (gallery, subject_id, model_id, aspect, side, image_sha256, \
             embedding, created_at_ms) FROM STDIN (FORMAT binary)",
        )
        .await?;
    copy.send(templates.finish()).await?;
    copy.finish().await?;
    tx.commit().await?;
    Ok(())
}

/// PostgreSQL's binary COPY format: a header, then per row a field count and each field
/// as a length and its bytes (big-endian integers, raw text and bytea), then a trailer.
struct CopyRows(Vec<u8>);

impl CopyRows {
    fn new() -> Self {
        let mut bytes = b"PGCOPY\n\xff\r\n\0".to_vec();
        bytes.extend_from_slice(&0i32.to_be_bytes()); // flags
        bytes.extend_from_slice(&0i32.to_be_bytes()); // header extension length
        Self(bytes)
    }

    fn row(&mut self, fields: &[&[u8]]) {
        self.0
            .extend_from_slice(&(fields.len() as i16).to_be_bytes());
        for f in fields {
            self.0.extend_from_slice(&(f.len() as i32).to_be_bytes());
            self.0.extend_from_slice(f);
        }
    }

    fn finish(mut self) -> Vec<u8> {
        self.0.extend_from_slice(&(-1i16).to_be_bytes());
        self.0
    }
}

/// Subject `i`'s embedding: Gaussian, L2-normalised, as little-endian f32 (the store's
/// format); the same for the same seed and subject on every run.
fn random_unit(seed: u64, i: u64, dim: usize) -> Vec<u8> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ i.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let mut v: Vec<f32> = (0..dim)
        .map(|_| rng.sample::<f32, _>(rand_distr::StandardNormal))
        .collect();
    handmatch_core::template::l2_normalize(&mut v);
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

async fn measure(g: &Gallery, queries: usize, settings: IndexSettings) -> anyhow::Result<()> {
    let store = TemplateStore::connect(&g.database_url, 2).await?;
    let rss_before = memory_kib("VmRSS:")?;
    let started = Instant::now();
    let templates = Templates::load(store, &g.model_id, g.dim, settings).await?;
    let load = started.elapsed();
    let index = templates.index();
    let gallery = index
        .gallery(&g.gallery)
        .with_context(|| format!("gallery {:?} is empty", g.gallery))?;
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut times = Vec::with_capacity(queries);
    for _ in 0..queries.max(1) {
        let mut q: Vec<f32> = (0..g.dim)
            .map(|_| rng.sample::<f32, _>(rand_distr::StandardNormal))
            .collect();
        handmatch_core::template::l2_normalize(&mut q);
        let t = Instant::now();
        std::hint::black_box(gallery.search(&q, Aspect::Palmar, 10, None));
        times.push(t.elapsed());
    }
    times.sort();
    let pct = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize];
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "| subjects | load s | RSS MiB (before load) | peak RSS MiB | search p50 ms | search p99 ms |\n\
         |---:|---:|---:|---:|---:|---:|\n| {} | {:.1} | {:.0} ({:.0}) | {:.0} | {:.1} | {:.1} |",
        gallery.subject_count(),
        load.as_secs_f64(),
        memory_kib("VmRSS:")? as f64 / 1024.0,
        rss_before as f64 / 1024.0,
        memory_kib("VmHWM:")? as f64 / 1024.0,
        ms(pct(0.5)),
        ms(pct(0.99)),
    );
    Ok(())
}

/// A line of /proc/self/status, in KiB.
fn memory_kib(field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .with_context(|| format!("no {field} in /proc/self/status"))?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .context("malformed status line")?
        .parse()?)
}
