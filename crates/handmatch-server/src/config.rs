//! The server's configuration: one flag per setting, each also read from a `HANDMATCH_…`
//! environment variable (ONNX Runtime's library path keeps its usual `ORT_DYLIB_PATH`).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, ValueEnum};

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

    /// Largest accepted image, in pixels (width × height), checked before decoding.
    #[arg(long, env = "HANDMATCH_MAX_IMAGE_PIXELS", default_value_t = 40_000_000)]
    pub max_image_pixels: u64,

    /// Smallest accepted image side, in pixels.
    #[arg(long, env = "HANDMATCH_MIN_IMAGE_SIDE", default_value_t = 16)]
    pub min_image_side: u32,

    /// Most images in one request.
    #[arg(long, env = "HANDMATCH_MAX_IMAGES_PER_REQUEST", default_value_t = 32)]
    pub max_images_per_request: usize,

    /// Verify's decision threshold on the cosine score, when the request gives none.
    #[arg(long, env = "HANDMATCH_VERIFY_THRESHOLD")]
    pub verify_threshold: Option<f32>,

    #[arg(long, env = "HANDMATCH_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// On SIGTERM/SIGINT, how long requests in flight may take to finish.
    #[arg(long, env = "HANDMATCH_SHUTDOWN_GRACE_SECONDS", default_value_t = 30)]
    pub shutdown_grace_seconds: u64,
}

impl Args {
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
    #[test]
    fn the_flags_are_a_valid_clap_command() {
        use clap::CommandFactory;
        super::Args::command().debug_assert();
    }
}
