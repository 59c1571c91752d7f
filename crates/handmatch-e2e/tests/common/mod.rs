//! Shared set-up for the end-to-end tests: a small random artefact built with the real
//! exporter, a synthetic hand dataset, databases (a fresh SQLite file, or a fresh Postgres
//! database at DATABASE_URL / 127.0.0.1:5432), and the whole server started in-process.
#![allow(dead_code)]

pub mod health;
pub mod metrics;
pub mod outage;
pub mod replicas;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use handmatch_core::dataset::hand_info::{Dataset, LoadOptions};
use handmatch_core::dataset::synth::{generate, SynthOptions};
use handmatch_core::embed::metadata::Precision;
use handmatch_export::artefact::{artefact_model, HeadSource};
use handmatch_export::checkpoint::Checkpoint;
use handmatch_export::precision::{to_fp16, to_int8};
use handmatch_export::random_init::{self, Arch};
use handmatch_proto::v1::hand_match_client::HandMatchClient;
use handmatch_server::config::Args;
use handmatch_server::server::RunningServer;
use sqlx::Connection;
use tonic::transport::Channel;

pub const IMAGE_SIZE: usize = 56;

/// Lives as long as the test process: artefacts and data shared by its tests.
fn workdir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().unwrap()).path()
}

/// A random DINOv2-tiny artefact at 56 px (the exporter's real graph, small and fast).
/// `seed` selects the head, so two seeds give two different model ids.
pub fn model(seed: u64) -> PathBuf {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = LOCK.lock().unwrap();
    let path = workdir().join(format!("model-{seed}.onnx"));
    if !path.exists() {
        let ckpt_dir = workdir().join("ckpt");
        if !ckpt_dir.join("model.safetensors").exists() {
            random_init::write(Arch::Dinov2Tiny, 1, &ckpt_dir).unwrap();
        }
        let ckpt = Checkpoint::open(&ckpt_dir).unwrap();
        let head = HeadSource::Random {
            hidden: 64,
            embedding_dim: 32,
            seed,
        };
        let (model, _) = artefact_model(&ckpt, IMAGE_SIZE, head, None).unwrap();
        model.save(&path).unwrap();
    }
    path
}

/// `model(seed)` in int8 or fp16, converted by the exporter (no quality gate here: the
/// exporter's own tests check it).
pub fn reduced_model(seed: u64, precision: Precision) -> PathBuf {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let fp32 = model(seed);
    let _guard = LOCK.lock().unwrap();
    let path = workdir().join(format!("model-{seed}-{}.onnx", precision.as_str()));
    if !path.exists() {
        let ckpt = Checkpoint::open(&workdir().join("ckpt")).unwrap();
        let head = HeadSource::Random {
            hidden: 64,
            embedding_dim: 32,
            seed,
        };
        let (mut model, mut meta) = artefact_model(&ckpt, IMAGE_SIZE, head, None).unwrap();
        match precision {
            Precision::Int8 => {
                to_int8(&mut model, &mut meta, Default::default());
            }
            Precision::Fp16 => {
                to_fp16(&mut model, &mut meta).unwrap();
            }
            Precision::Fp32 => {}
        }
        model.save(&path).unwrap();
    }
    assert!(fp32.exists());
    path
}

/// The imported MediaPipe hand landmark model (`scripts/setup.sh` imports it).
pub fn hand_model_file() -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(handmatch_export::backbone::hand::DEFAULT_MODEL);
    assert!(
        path.is_file(),
        "{} is missing: run scripts/setup.sh (it imports the hand landmark model)",
        path.display()
    );
    path
}

/// A `hand-landmarks` artefact (aligned 224-pixel crops) with a random head.
pub fn hand_model() -> PathBuf {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = LOCK.lock().unwrap();
    let path = workdir().join("hand-model.onnx");
    if !path.exists() {
        let hand = handmatch_export::backbone::HandModel::open(&hand_model_file()).unwrap();
        let head = HeadSource::Random {
            hidden: 128,
            embedding_dim: 64,
            seed: 3,
        };
        let (model, _) = artefact_model(&hand, 224, head, None).unwrap();
        model.save(&path).unwrap();
    }
    path
}

/// 20 synthetic subjects in the 11k Hands layout.
pub fn hands() -> &'static Dataset {
    static DATA: OnceLock<Dataset> = OnceLock::new();
    DATA.get_or_init(|| {
        let dir = workdir().join("hands");
        let opts = SynthOptions {
            subjects: 20,
            seed: 5,
            width: 160,
            height: 120,
            per_view_min: 1,
            per_view_max: 2,
        };
        generate(&opts, &dir).unwrap();
        Dataset::load(&dir, &LoadOptions::default()).unwrap().0
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh, empty database of the given kind; returns its URL.
pub async fn database(backend: Backend) -> String {
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().unwrap().keep();
            format!("sqlite://{}", dir.join("handmatch.db").display())
        }
        Backend::Postgres => {
            let admin = std::env::var("DATABASE_URL")
                .ok()
                .filter(|url| !url.is_empty())
                .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".into());
            let mut conn = sqlx::PgConnection::connect(&admin)
                .await
                .unwrap_or_else(|e| {
                    panic!("these tests need PostgreSQL at {admin} (set DATABASE_URL): {e}")
                });
            let name = format!("hm_e2e_{}_{}", std::process::id(), rand::random::<u32>());
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut conn)
                .await
                .unwrap();
            let base = admin.rsplit_once('/').map(|(b, _)| b.to_string()).unwrap();
            format!("{base}/{name}")
        }
    }
}

pub async fn start(model: &Path, database_url: &str) -> RunningServer {
    let mut server = handmatch_server::server::start(Args::for_model(model, database_url))
        .await
        .unwrap();
    server.ready().await.unwrap();
    server
}

pub async fn start_with(args: Args) -> anyhow::Result<RunningServer> {
    let mut server = handmatch_server::server::start(args).await?;
    server.ready().await?;
    Ok(server)
}

pub async fn client(server: &RunningServer) -> HandMatchClient<Channel> {
    HandMatchClient::connect(format!("http://{}", server.addr))
        .await
        .unwrap()
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20)
}

/// The evaluation client's connection, sending `key` (when given) with every call.
pub async fn keyed_client(
    server: &RunningServer,
    key: Option<&str>,
) -> handmatch_eval::client::Client {
    handmatch_eval::client::connect_with(&handmatch_eval::client::ConnectOptions {
        server: format!("http://{}", server.addr),
        api_key: key.map(str::to_string),
        ..Default::default()
    })
    .await
    .unwrap()
}

/// The evaluation client's connection (no key: these servers run without authentication).
pub async fn eval_client(server: &RunningServer) -> handmatch_eval::client::Client {
    handmatch_eval::client::connect(&format!("http://{}", server.addr))
        .await
        .unwrap()
}

/// The bytes of the `nth` synthetic image of one aspect.
pub fn hand_image(aspect: handmatch_core::hand_image::Aspect, nth: usize) -> Vec<u8> {
    let img = hands()
        .images
        .iter()
        .filter(|i| i.aspect == aspect)
        .nth(nth)
        .unwrap();
    std::fs::read(&img.path).unwrap()
}

/// One request image with no side given.
pub fn pb_image(data: Vec<u8>, aspect: handmatch_proto::v1::Aspect) -> handmatch_proto::v1::Image {
    handmatch_proto::v1::Image {
        data,
        aspect: aspect as i32,
        side: 0,
    }
}

/// Identify with the first synthetic back-of-hand image.
pub fn dorsal_query() -> handmatch_proto::v1::IdentifyRequest {
    use handmatch_proto::v1 as pb;
    pb::IdentifyRequest {
        images: vec![pb_image(
            hand_image(handmatch_core::hand_image::Aspect::Dorsal, 0),
            pb::Aspect::Dorsal,
        )],
        ..Default::default()
    }
}

/// (subject, score) of each candidate, best first.
pub fn ranking(response: handmatch_proto::v1::IdentifyResponse) -> Vec<(String, f32)> {
    response
        .candidates
        .into_iter()
        .map(|c| (c.subject_id, c.score))
        .collect()
}

/// The call failed with `code` and a message naming every one of `words`.
pub fn assert_refused(
    result: Result<impl std::fmt::Debug, tonic::Status>,
    code: tonic::Code,
    words: &[&str],
) {
    let status = result.expect_err("the request should be refused");
    assert_eq!(status.code(), code, "{status:?}");
    for w in words {
        assert!(
            status.message().contains(w),
            "{:?} does not mention {w:?}",
            status.message()
        );
    }
}
