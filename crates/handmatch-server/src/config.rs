//! The server's configuration: one flag per setting, each also read from a `HANDMATCH_…`
//! environment variable (ONNX Runtime's library path keeps its usual `ORT_DYLIB_PATH`),
//! and the `keys` subcommands, which manage API keys without a running server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use crate::access::AuthMode;
use crate::index::IndexPrecision;
use crate::protection::{AuditCommand, ProtectionArgs, TemplatesCommand};
use crate::service::admission::AdmissionLimits;
use crate::sync::SyncConfig;
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
    about = "Identify people from the back of the hand: the gRPC service",
    subcommand_negates_reqs = true
)]
pub struct Args {
    /// Without a subcommand: serve.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// The model artefact (model.onnx written by `handmatch-train export` or `fit`).
    #[arg(long, env = "HANDMATCH_MODEL", required = true)]
    pub model: Option<PathBuf>,

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

    /// `api-key`: every call needs a key (`handmatch-server keys create`). `none`: anyone who
    /// reaches the port may do everything; refused on a non-loopback address unless
    /// --allow-insecure-no-auth.
    #[arg(long, env = "HANDMATCH_AUTH", value_enum, default_value_t = AuthMode::ApiKey)]
    pub auth: AuthMode,

    /// Accept --auth none on a non-loopback address.
    #[arg(long, env = "HANDMATCH_ALLOW_INSECURE_NO_AUTH")]
    pub allow_insecure_no_auth: bool,

    /// While the database is unreachable, a key verified within this many seconds keeps
    /// working (searches go on from memory); unknown keys are always refused.
    #[arg(
        long,
        env = "HANDMATCH_AUTH_OUTAGE_GRACE_SECONDS",
        default_value_t = 300
    )]
    pub auth_outage_grace_seconds: u64,

    /// The server's certificate chain (PEM): serve TLS only.
    #[arg(long, env = "HANDMATCH_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The private key of --tls-cert (PEM).
    #[arg(long, env = "HANDMATCH_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// CA certificates (PEM) for mutual TLS: clients must present a certificate they signed.
    #[arg(long, env = "HANDMATCH_TLS_CLIENT_CA", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,

    /// Do not serve gRPC reflection (the API description).
    #[arg(long, env = "HANDMATCH_NO_REFLECTION")]
    pub no_reflection: bool,

    #[command(flatten)]
    pub runtime: RuntimeArgs,

    #[command(flatten)]
    pub protection: ProtectionArgs,

    /// Embedding sessions that run batches side by side, each on its share of
    /// --intra-threads (0: for an int8 artefact on a CPU one per core, at most 4; else
    /// one). With more than one, a batch that finds nothing else running takes one more
    /// session, over all the threads. Each session holds its own copy of the weights.
    #[arg(long, env = "HANDMATCH_EMBED_WORKERS", default_value_t = 0)]
    pub embed_workers: usize,

    /// Most images embedded in one session call.
    #[arg(long, env = "HANDMATCH_MAX_BATCH_SIZE", default_value_t = 8)]
    pub max_batch_size: usize,

    /// Requests waiting for an embedding worker before new ones are refused (RESOURCE_EXHAUSTED).
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

    /// Longest wait, in milliseconds, between two reads of the change feed through which
    /// replicas on one database see each other's enrolments and deletions.
    #[arg(long, env = "HANDMATCH_SYNC_INTERVAL_MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(10..))]
    pub sync_interval_ms: u64,

    /// Poll the change feed only, without LISTEN/NOTIFY (for connection poolers that do not
    /// pass notifications through, such as PgBouncer in transaction mode).
    #[arg(long, env = "HANDMATCH_NO_SYNC_NOTIFY")]
    pub no_sync_notify: bool,

    /// Health reports NOT_SERVING once the index may lack changes committed more than this
    /// many seconds ago (the change feed cannot be read); 0: never.
    #[arg(long, env = "HANDMATCH_MAX_STALENESS_SECONDS", default_value_t = 30)]
    pub max_staleness_seconds: u64,

    /// Change feed rows older than this many seconds are pruned; a replica that was away
    /// longer reloads its whole index. 0 keeps them.
    #[arg(
        long,
        env = "HANDMATCH_CHANGE_RETENTION_SECONDS",
        default_value_t = 86_400
    )]
    pub change_retention_seconds: u64,

    /// How the in-memory index stores subject rows: f32, or f16 at half the memory (scores
    /// then differ from f32 by about 1e-3).
    #[arg(long, env = "HANDMATCH_INDEX_PRECISION", default_value = "f32")]
    pub index_precision: IndexPrecision,

    /// Threads one search of a large gallery (over 32,768 subjects) may use.
    #[arg(long, env = "HANDMATCH_SEARCH_THREADS", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub search_threads: u16,

    /// Serve Prometheus metrics on http://ADDR/metrics (e.g. 127.0.0.1:9464); off when
    /// absent.
    #[arg(long, env = "HANDMATCH_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,

    #[arg(long, env = "HANDMATCH_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// On SIGTERM/SIGINT, how long requests in flight may take to finish.
    #[arg(long, env = "HANDMATCH_SHUTDOWN_GRACE_SECONDS", default_value_t = 30)]
    pub shutdown_grace_seconds: u64,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Manage API keys in the database, without a running server.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Stored templates: re-seal them under a new key.
    #[command(subcommand)]
    Templates(TemplatesCommand),
    /// The audit trail: who enrolled, deleted or searched whom, and how it ended.
    #[command(subcommand)]
    Audit(AuditCommand),
}

#[derive(Debug, Clone, Subcommand)]
pub enum KeysCommand {
    /// Create a key; prints the key (shown this once) on stdout and nothing else.
    Create(CreateKeyArgs),
    /// List every key (never the keys themselves).
    List(KeyStoreArgs),
    /// Revoke a key at once; its name stays taken.
    Revoke(RevokeKeyArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct KeyStoreArgs {
    /// The server's database (as for serving).
    #[arg(
        long,
        env = "HANDMATCH_DATABASE_URL",
        default_value = "sqlite://handmatch.db"
    )]
    pub database_url: String,
}

#[derive(Debug, Clone, clap::Args)]
pub struct CreateKeyArgs {
    #[command(flatten)]
    pub store: KeyStoreArgs,
    /// 1 to 64 of A-Z a-z 0-9 . _ -
    #[arg(long)]
    pub name: String,
    /// Comma-separated: enroll, identify, verify, delete, read, admin.
    #[arg(long, value_delimiter = ',', required = true)]
    pub scopes: Vec<String>,
    /// A gallery the key may use (repeat for more).
    #[arg(long = "gallery", required_unless_present = "all_galleries")]
    pub galleries: Vec<String>,
    /// The key may use every gallery.
    #[arg(long, conflicts_with = "galleries")]
    pub all_galleries: bool,
}

#[derive(Debug, Clone, clap::Args)]
pub struct RevokeKeyArgs {
    #[command(flatten)]
    pub store: KeyStoreArgs,
    #[arg(long)]
    pub name: String,
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
    /// How this replica follows the others' writes.
    pub fn sync(&self) -> SyncConfig {
        SyncConfig {
            poll_interval: Duration::from_millis(self.sync_interval_ms),
            notifications: !self.no_sync_notify,
            retention: (self.change_retention_seconds > 0)
                .then(|| Duration::from_secs(self.change_retention_seconds)),
        }
    }

    /// Beyond this staleness health says NOT_SERVING; `None`: never.
    pub fn max_staleness(&self) -> Option<Duration> {
        (self.max_staleness_seconds > 0).then(|| Duration::from_secs(self.max_staleness_seconds))
    }

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

    /// Arguments for tests and embedding applications: defaults plus the model and database,
    /// on a free loopback port, without authentication.
    pub fn for_model(model: impl Into<PathBuf>, database_url: impl Into<String>) -> Self {
        let mut args = Args::parse_from(["handmatch-server", "--model", "unused"]);
        args.model = Some(model.into());
        args.database_url = database_url.into();
        args.listen = "127.0.0.1:0".parse().unwrap();
        args.auth = AuthMode::None;
        args
    }

    /// Refuses a configuration that would expose the service: no authentication on an
    /// address others can reach, unless explicitly allowed.
    pub fn check_exposure(&self) -> anyhow::Result<()> {
        let reachable = !self.listen.ip().is_loopback();
        if self.auth == AuthMode::None && reachable && !self.allow_insecure_no_auth {
            anyhow::bail!(
                "--auth none on {} would let anyone who reaches the port enrol, search and \
                 delete; use --auth api-key, listen on a loopback address, or add \
                 --allow-insecure-no-auth",
                self.listen
            );
        }
        if self.auth == AuthMode::ApiKey && reachable && self.tls_cert.is_none() {
            tracing::warn!(
                "API keys travel in plaintext on {}: serve TLS (--tls-cert, --tls-key) or \
                 terminate TLS in front of the server",
                self.listen
            );
        }
        Ok(())
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
    fn serving_needs_a_model_and_keys_commands_do_not() {
        let parse = |argv: &str| super::Args::try_parse_from(argv.split(' '));
        assert!(parse("handmatch-server").is_err());
        let args = parse(
            "handmatch-server keys create --name k --scopes enroll,identify --gallery a --gallery b",
        )
        .unwrap();
        let Some(super::Command::Keys(super::KeysCommand::Create(create))) = args.command else {
            panic!("not keys create: {args:?}");
        };
        assert_eq!(create.scopes, ["enroll", "identify"]);
        assert_eq!(create.galleries, ["a", "b"]);
        let no_gallery = parse("handmatch-server keys create --name k --scopes read");
        assert!(no_gallery.is_err());
    }

    #[test]
    fn no_authentication_is_refused_where_others_can_connect() {
        let parse = |extra: &[&str]| {
            let mut argv = vec!["handmatch-server", "--model", "m", "--auth", "none"];
            argv.extend_from_slice(extra);
            super::Args::try_parse_from(argv).unwrap()
        };
        assert!(parse(&[]).check_exposure().is_ok()); // 127.0.0.1
        let open = parse(&["--listen", "0.0.0.0:50051"]);
        let err = open.check_exposure().unwrap_err().to_string();
        assert!(err.contains("--allow-insecure-no-auth"), "{err}");
        let allowed = parse(&["--listen", "0.0.0.0:50051", "--allow-insecure-no-auth"]);
        assert!(allowed.check_exposure().is_ok());
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
