//! ONNX Runtime, loaded at run time from the shared library that `scripts/setup.sh`
//! installs, and the sessions built on it (CUDA when asked for and present, else CPU).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::environment::Environment;
use ort::ep::ExecutionProvider;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;

/// The environment variable `ort` and our binaries read the library path from.
pub const ORT_DYLIB_ENV: &str = "ORT_DYLIB_PATH";
/// Where `scripts/setup.sh` puts the library, relative to the repository.
pub const DEFAULT_LIBRARY: &str = ".ort/lib/libonnxruntime.so";
const SETUP_HINT: &str = "run `scripts/setup.sh` (it installs onnxruntime 1.32.0's libonnxruntime.so into .ort/lib/), \
     or set ORT_DYLIB_PATH (or --ort-lib) to an existing libonnxruntime.so of version 1.24 or later";

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("ONNX Runtime library not found at {path}: {SETUP_HINT}")]
    NotFound { path: PathBuf },
    #[error("ONNX Runtime library at {path} cannot be used ({reason}): {SETUP_HINT}")]
    Load { path: PathBuf, reason: String },
    #[error("ONNX Runtime: {0}")]
    Ort(#[from] ort::Error),
    #[error("{path}: cannot cut its graph to {outputs}: {reason}")]
    GraphCut {
        path: PathBuf,
        outputs: String,
        reason: String,
    },
    #[error("ONNX Runtime was already loaded from {loaded}; cannot switch to {requested} in the same process")]
    AlreadyLoaded { loaded: PathBuf, requested: PathBuf },
}

/// Which hardware runs the graph.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Device {
    /// CUDA when the library supports it and a GPU answers, else the CPU.
    #[default]
    Auto,
    Cpu,
    /// CUDA or fail.
    Cuda,
}

/// What actually runs a session, as reported by logs and `GetInfo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum ExecutionProviderKind {
    Cpu,
    Cuda,
}

impl std::fmt::Display for ExecutionProviderKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Cpu => "CPU",
            Self::Cuda => "CUDA",
        })
    }
}

#[derive(Debug, Clone, Default)]
pub struct RuntimeOptions {
    /// The library; `None` reads ORT_DYLIB_PATH, then the default set-up location.
    pub library: Option<PathBuf>,
    pub device: Device,
    /// Threads inside one graph run; 0 lets ONNX Runtime choose (one per core).
    pub intra_threads: usize,
}

static ENVIRONMENT: OnceLock<(Environment, PathBuf)> = OnceLock::new();

/// The library path that will be used: explicit, then ORT_DYLIB_PATH, then `.ort/lib` in the
/// working directory, then in this crate's source tree (for tests run from any folder).
pub fn resolve_library(explicit: Option<&Path>) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    if let Some(p) = std::env::var_os(ORT_DYLIB_ENV).filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let local = PathBuf::from(DEFAULT_LIBRARY);
    if local.exists() {
        return local;
    }
    // This crate sits at crates/handmatch-core in the workspace.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(DEFAULT_LIBRARY)
}

/// The process-wide ONNX Runtime environment (ONNX Runtime allows only one per process).
pub fn environment(library: Option<&Path>) -> Result<&'static Environment, RuntimeError> {
    let requested = resolve_library(library);
    if let Some((env, loaded)) = ENVIRONMENT.get() {
        if library.is_some() && !same_file(loaded, &requested) {
            return Err(RuntimeError::AlreadyLoaded {
                loaded: loaded.clone(),
                requested,
            });
        }
        return Ok(env);
    }
    if !requested.is_file() {
        return Err(RuntimeError::NotFound { path: requested });
    }
    let builder = ort::init_from(&requested).map_err(|e| RuntimeError::Load {
        path: requested.clone(),
        reason: e.to_string(),
    })?;
    let env = match builder.with_name("handmatch").with_telemetry(false).build() {
        Ok(env) => env,
        // Another thread won the race to build it.
        Err(_) if ENVIRONMENT.get().is_some() => return Ok(&ENVIRONMENT.get().unwrap().0),
        Err(e) => return Err(e.into()),
    };
    let _ = ENVIRONMENT.set((env, requested));
    Ok(&ENVIRONMENT.get().unwrap().0)
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// How one session of several (an embedding pool) shares the machine with the others.
#[derive(Debug, Clone, Copy, Default)]
pub struct SessionSharing {
    /// Threads of this session's runs; 0 keeps `RuntimeOptions::intra_threads`.
    pub intra_threads: usize,
    /// Idle threads sleep instead of spinning between operators: a session whose runs may
    /// overlap another's must not burn the cores the other is computing on.
    pub yield_when_idle: bool,
}

/// Opens `model` with the options' device and threads; returns the provider really in use.
pub fn open_session(
    model: &Path,
    opts: &RuntimeOptions,
) -> Result<(Session, ExecutionProviderKind), RuntimeError> {
    open_shared_session(model, opts, &SessionSharing::default())
}

/// Where a session's graph comes from.
#[derive(Debug, Clone, Copy)]
pub enum ModelSource<'a> {
    File(&'a Path),
    /// An encoded ONNX model (a graph derived from a file, e.g. its detection graph).
    Bytes(&'a [u8]),
}

/// `open_session` for one session of several over the same artefact.
pub fn open_shared_session(
    model: &Path,
    opts: &RuntimeOptions,
    sharing: &SessionSharing,
) -> Result<(Session, ExecutionProviderKind), RuntimeError> {
    open_model(ModelSource::File(model), opts, sharing)
}

fn commit(
    builder: &mut ort::session::builder::SessionBuilder,
    model: ModelSource<'_>,
) -> ort::Result<Session> {
    match model {
        ModelSource::File(path) => builder.commit_from_file(path),
        ModelSource::Bytes(bytes) => builder.commit_from_memory(bytes),
    }
}

/// `open_shared_session` for a file or an encoded model.
pub fn open_model(
    model: ModelSource<'_>,
    opts: &RuntimeOptions,
    sharing: &SessionSharing,
) -> Result<(Session, ExecutionProviderKind), RuntimeError> {
    let env = environment(opts.library.as_deref())?;
    let threads = match sharing.intra_threads {
        0 => opts.intra_threads,
        n => n,
    };
    let builder = || -> Result<_, RuntimeError> {
        let mut b = Session::builder(env)?
            .with_optimization_level(GraphOptimizationLevel::All)
            .map_err(ort::Error::from)?;
        if threads > 0 {
            b = b.with_intra_threads(threads).map_err(ort::Error::from)?;
        }
        if sharing.yield_when_idle {
            b = b.with_intra_op_spinning(false).map_err(ort::Error::from)?;
        }
        Ok(b)
    };
    if opts.device != Device::Cpu {
        let cuda = ort::ep::CUDA::default();
        let attempt = if ort::ep::CUDA::is_available().unwrap_or(false) {
            builder()?
                .with_execution_providers([cuda.build().error_on_failure()])
                .map_err(ort::Error::from)
                .and_then(|mut b| commit(&mut b, model))
                .map_err(RuntimeError::from)
        } else {
            Err(RuntimeError::Ort(ort::Error::new(
                "this ONNX Runtime library was built without the CUDA execution provider",
            )))
        };
        match attempt {
            Ok(session) => return Ok((session, ExecutionProviderKind::Cuda)),
            Err(e) if opts.device == Device::Cuda => return Err(e),
            Err(e) => tracing::info!("CUDA execution provider not used ({e}); running on the CPU"),
        }
    }
    let session = commit(&mut builder()?, model)?;
    Ok((session, ExecutionProviderKind::Cpu))
}
