//! The server's configuration: one flag per setting, each also read from a `HANDMATCH_…`
//! environment variable (ONNX Runtime's library path keeps its usual `ORT_DYLIB_PATH`).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, ValueEnum};

use crate::service::admission::AdmissionLimits;
use handmatch_core::args::RuntimeArgs;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnModelMismatch {
    /// Refuse to start while the database holds templates of another model.
    Refuse,
    /// Start, keep those templates in the database, and never load or compare them.
    Ignore,
    /// Delete the other models' templates, then start.
    Delete,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Parser)]
#[command(
    name = "handmatch-server",
    version,
    about = "Identify people from the back of the hand: the gRPC service"
)]
pub struct Args {
    /// The model artefact (model.onnx written by `handmatch-train export` or `fit`).
    #[arg(long, env = "HANDMATCH_MODEL")]
    pub model: PathBuf,

    /// Template store: `sqlite://FILE` (embedded, the default) or `postgres://USER@HOST/DB`.
    #[arg(
        long,
        env = "HANDMATCH_DATABASE_URL",
        default_value = "sqlite://handmatch.db"
    )]
    pub database_url: String,

    #[arg(long, env = "HANDMATCH_DB_MAX_CONNECTIONS", default_value_t = 8)]
    pub db_max_connections: u32,

    /// What to do when the database holds templates of another model.
    #[arg(long, env = "HANDMATCH_ON_MODEL_MISMATCH", value_enum, default_value_t = OnModelMismatch::Refuse)]
    pub on_model_mismatch: OnModelMismatch,

    #[arg(long, env = "HANDMATCH_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,

    #[command(flatten)]
    pub runtime: RuntimeArgs,

    /// Most images embedded in one session call.
    #[arg(long, env = "HANDMATCH_MAX_BATCH_SIZE", default_value_t = 8)]
    pub max_batch_size: usize,

    /// Requests waiting for the embedding worker before new ones are refused (RESOURCE_EXHAUSTED).
    #[arg(long, env = "HANDMATCH_MAX_QUEUE", default_value_t = 64)]
    pub max_queue: usize,

    /// Largest accepted gRPC message, in bytes.
    #[arg(long, env = "HANDMATCH_MAX_MESSAGE_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub max_message_bytes: usize,

    /// Requests decoding or embedding at once; more are refused with RESOURCE_EXHAUSTED.
    /// Default: --max-queue plus two per core.
    #[arg(long, env = "HANDMATCH_MAX_CONCURRENT_REQUESTS")]
    pub max_concurrent_requests: Option<usize>,

    /// Bytes of images (as sent, plus their decoded model inputs) that admitted requests
    /// may hold together; a request that would go over is refused with RESOURCE_EXHAUSTED.
    #[arg(long, env = "HANDMATCH_MAX_INFLIGHT_IMAGE_BYTES", default_value_t = 512 << 20)]
    pub max_inflight_image_bytes: usize,

    /// Source pixels (width × height, summed over images) that admitted requests may have
    /// to decode; a request that would go over is refused with RESOURCE_EXHAUSTED, and one
    /// larger than this runs only alone. Bounds the CPU work accepted at once.
    #[arg(
        long,
        env = "HANDMATCH_MAX_INFLIGHT_PIXELS",
        default_value_t = 256_000_000
    )]
    pub max_inflight_pixels: u64,

    /// Images decoded at the same time. Default: one per core.
    #[arg(long, env = "HANDMATCH_DECODE_THREADS")]
    pub decode_threads: Option<usize>,

    /// Concurrent HTTP/2 streams (calls) per client connection.
    #[arg(long, env = "HANDMATCH_MAX_CONCURRENT_STREAMS", default_value_t = 32)]
    pub max_concurrent_streams: u32,

    /// A call still running after this many seconds is cancelled by the server.
    #[arg(long, env = "HANDMATCH_REQUEST_TIMEOUT_SECONDS", default_value_t = 60)]
    pub request_timeout_seconds: u64,

    /// HTTP/2 keepalive ping interval, seconds; a connection whose pings go unanswered for
    /// 10 s is closed, so dead clients do not hold streams.
    #[arg(long, env = "HANDMATCH_KEEPALIVE_SECONDS", default_value_t = 30)]
    pub keepalive_seconds: u64,

    /// Largest accepted image, in pixels (width × height), checked before decoding.
    #[arg(long, env = "HANDMATCH_MAX_IMAGE_PIXELS", default_value_t = 40_000_000)]
    pub max_image_pixels: u64,

    /// Smallest accepted image side, in pixels.
    #[arg(long, env = "HANDMATCH_MIN_IMAGE_SIDE", default_value_t = 16)]
    pub min_image_side: u32,

    /// Longest accepted image side, in pixels, checked before decoding.
    #[arg(long, env = "HANDMATCH_MAX_IMAGE_SIDE", default_value_t = 16_384)]
    pub max_image_side: u32,

    /// Longest over shortest side above which an image is refused before decoding (hand
    /// photos are at most about 2:1; thin strips make resizing cost more than the image).
    #[arg(long, env = "HANDMATCH_MAX_ASPECT_RATIO", default_value_t = 8.0, value_parser = aspect_ratio)]
    pub max_aspect_ratio: f64,

    /// Most images in one request.
    #[arg(long, env = "HANDMATCH_MAX_IMAGES_PER_REQUEST", default_value_t = 32)]
    pub max_images_per_request: usize,

    /// Verify's decision threshold on the cosine score, when the request gives none.
    #[arg(long, env = "HANDMATCH_VERIFY_THRESHOLD", value_parser = cosine_threshold)]
    pub verify_threshold: Option<f32>,

    #[arg(long, env = "HANDMATCH_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// On SIGTERM/SIGINT, how long requests in flight may take to finish.
    #[arg(long, env = "HANDMATCH_SHUTDOWN_GRACE_SECONDS", default_value_t = 30)]
    pub shutdown_grace_seconds: u64,
}

/// A cosine-similarity threshold: finite and in [-1, 1] (NaN would make every Verify false).
fn cosine_threshold(s: &str) -> Result<f32, String> {
    let x: f32 = s
        .parse()
        .map_err(|e| format!("{s:?} is not a number: {e}"))?;
    if x.is_finite() && (-1.0..=1.0).contains(&x) {
        Ok(x)
    } else {
        Err(format!("{s} is not a cosine similarity in [-1, 1]"))
    }
}

fn aspect_ratio(s: &str) -> Result<f64, String> {
    let x: f64 = s
        .parse()
        .map_err(|e| format!("{s:?} is not a number: {e}"))?;
    if x.is_finite() && x >= 1.0 {
        Ok(x)
    } else {
        Err(format!("{s} is not a ratio of at least 1"))
    }
}

impl Args {
    /// The admission limits these flags give, with their defaults filled in from the cores.
    pub fn admission(&self) -> AdmissionLimits {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        AdmissionLimits {
            max_requests: self
                .max_concurrent_requests
                .unwrap_or(self.max_queue + 2 * cores),
            max_image_bytes: self.max_inflight_image_bytes,
            max_pixels: self.max_inflight_pixels,
            decoders: self.decode_threads.unwrap_or(cores),
        }
    }

    /// Arguments for tests and embedding applications: defaults plus the model and database.
    pub fn for_model(model: impl Into<PathBuf>, database_url: impl Into<String>) -> Self {
        let mut args = Args::parse_from(["handmatch-server", "--model", "unused"]);
        args.model = model.into();
        args.database_url = database_url.into();
        args.listen = "127.0.0.1:0".parse().unwrap();
        args
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    #[test]
    fn the_flags_are_a_valid_clap_command() {
        use clap::CommandFactory;
        super::Args::command().debug_assert();
    }

    #[test]
    fn float_flags_are_validated_at_start() {
        let parse = |flag: &str, value: &str| {
            let arg = format!("{flag}={value}");
            super::Args::try_parse_from(["handmatch-server", "--model", "m", arg.as_str()])
        };
        for bad in ["NaN", "inf", "1.5", "-2", "x"] {
            let err = parse("--verify-threshold", bad).unwrap_err().to_string();
            assert!(err.contains("verify-threshold"), "{bad}: {err}");
        }
        assert_eq!(
            parse("--verify-threshold", "0.4").unwrap().verify_threshold,
            Some(0.4)
        );
        for bad in ["NaN", "0.5", "inf"] {
            assert!(parse("--max-aspect-ratio", bad).is_err(), "{bad}");
        }
    }
}
