//! The subcommands of `handmatch-eval`, one module each, and the arguments they share.

pub mod enroll;
pub mod identify;
pub mod info;
pub mod load;
pub mod run;

use clap::Args;
use handmatch_core::args::DatasetArgs;
use handmatch_core::dataset::hand_info::Dataset;
use handmatch_core::dataset::split::{SubjectSplit, Subset};
use handmatch_eval::client::{connect_with, Client, ConnectOptions};

/// The server to talk to, and how.
#[derive(Args, Clone)]
pub struct ServerArgs {
    /// The server's address, e.g. http://127.0.0.1:50051 (https://… or --tls-ca for TLS).
    #[arg(
        long,
        env = "HANDMATCH_SERVER",
        default_value = "http://127.0.0.1:50051"
    )]
    pub server: String,
    /// The API key sent with every call (`handmatch-server keys create`).
    #[arg(long, env = "HANDMATCH_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// A file holding the API key (a secret mounted by Docker, say).
    #[arg(long, env = "HANDMATCH_API_KEY_FILE", conflicts_with = "api_key")]
    pub api_key_file: Option<std::path::PathBuf>,
    /// The CA certificate (PEM) that signed the server's: connect with TLS.
    #[arg(long, env = "HANDMATCH_TLS_CA")]
    pub tls_ca: Option<std::path::PathBuf>,
    /// The name on the server's certificate, when it differs from the address' host.
    #[arg(long, env = "HANDMATCH_TLS_DOMAIN", requires = "tls_ca")]
    pub tls_domain: Option<String>,
    /// A client certificate (PEM), for servers that require mutual TLS.
    #[arg(long, env = "HANDMATCH_TLS_CLIENT_CERT", requires_all = ["tls_ca", "tls_client_key"])]
    pub tls_client_cert: Option<std::path::PathBuf>,
    /// The private key (PEM) of --tls-client-cert.
    #[arg(long, env = "HANDMATCH_TLS_CLIENT_KEY", requires = "tls_client_cert")]
    pub tls_client_key: Option<std::path::PathBuf>,
    /// The gallery enrolled into and searched; "default" when empty.
    #[arg(long, env = "HANDMATCH_GALLERY", default_value = "")]
    pub gallery: String,
    /// Sent with every enrolment: the record of the subjects' consent (servers started
    /// with --require-consent refuse enrolments without one).
    #[arg(long, env = "HANDMATCH_CONSENT_REFERENCE", default_value = "")]
    pub consent_reference: String,
}

impl ServerArgs {
    pub async fn connect(&self) -> anyhow::Result<Client> {
        let api_key = match &self.api_key_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| anyhow::anyhow!("--api-key-file {}: {e}", path.display()))?
                    .trim()
                    .to_string(),
            ),
            None => self.api_key.clone(),
        };
        connect_with(&ConnectOptions {
            server: self.server.clone(),
            api_key,
            tls_ca: self.tls_ca.clone(),
            tls_domain: self.tls_domain.clone(),
            tls_client_cert: self.tls_client_cert.clone(),
            tls_client_key: self.tls_client_key.clone(),
        })
        .await
    }
}

/// A dataset, optionally narrowed to one subset of a split.
#[derive(Args, Clone)]
pub struct DataArgs {
    #[command(flatten)]
    pub dataset: DatasetArgs,
    /// Use only the subjects of one subset of this split file.
    #[arg(long, env = "HANDMATCH_SPLIT")]
    pub split: Option<std::path::PathBuf>,
    #[arg(long, env = "HANDMATCH_SUBSET", value_enum, requires = "split")]
    pub subset: Option<Subset>,
}

impl DataArgs {
    pub fn load(&self) -> anyhow::Result<Dataset> {
        let (mut ds, _) = self.dataset.load()?;
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
