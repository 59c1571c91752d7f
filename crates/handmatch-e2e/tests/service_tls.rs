//! TLS and mutual TLS with certificates made in the test (rcgen): the evaluation client
//! talks to a TLS server with its CA and an API key, a plaintext client gets nowhere, and a
//! server that requires client certificates refuses a client without one.

mod common;

use std::path::{Path, PathBuf};

use common::Backend;
use handmatch_eval::client::{connect_with, ConnectOptions};
use handmatch_proto::v1 as pb;
use handmatch_server::access::key_admin::{create_key, KeyRequest};
use handmatch_server::access::AuthMode;
use handmatch_server::config::Args;
use handmatch_server::server::RunningServer;
use handmatch_server::store::TemplateStore;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

/// A CA, and PEM files of a certificate it signed for `name`, under `dir`.
struct Pki {
    dir: PathBuf,
    ca: CertifiedIssuer<'static, KeyPair>,
}

impl Pki {
    fn new(dir: &Path) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        Self {
            dir: dir.to_path_buf(),
            ca,
        }
    }

    fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// (certificate file, key file) for `name`, signed by this CA.
    fn issue(&self, name: &str) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec![name.to_string()])
            .unwrap()
            .signed_by(&key, &self.ca)
            .unwrap();
        let (cert_file, key_file) = (
            self.dir.join(format!("{name}.pem")),
            self.dir.join(format!("{name}.key")),
        );
        std::fs::write(&cert_file, cert.pem()).unwrap();
        std::fs::write(&key_file, key.serialize_pem()).unwrap();
        (cert_file, key_file)
    }
}

async fn tls_server(pki: &Pki, mutual: bool) -> (RunningServer, String) {
    let url = common::database(Backend::Sqlite).await;
    let store = TemplateStore::connect(&url, 1).await.unwrap();
    let (key, _) = create_key(
        &store,
        KeyRequest {
            name: "tls".into(),
            scopes: vec!["read".into()],
            galleries: vec![],
            all_galleries: true,
        },
        None,
    )
    .await
    .unwrap();
    store.close().await;
    let (cert, private_key) = pki.issue("localhost");
    let mut args = Args::for_model(common::model(1), &url);
    args.auth = AuthMode::ApiKey;
    args.tls_cert = Some(cert);
    args.tls_key = Some(private_key);
    args.tls_client_ca = mutual.then(|| pki.ca_file());
    (common::start_with(args).await.unwrap(), key)
}

fn options(server: &RunningServer, pki: &Pki, key: &str) -> ConnectOptions {
    ConnectOptions {
        server: format!("localhost:{}", server.addr.port()),
        api_key: Some(key.into()),
        tls_ca: Some(pki.ca_file()),
        ..ConnectOptions::default()
    }
}

async fn info(opts: &ConnectOptions) -> anyhow::Result<pb::InfoResponse> {
    let mut c = connect_with(opts).await?;
    Ok(c.get_info(pb::GetInfoRequest::default())
        .await?
        .into_inner())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_serves_the_client_with_its_ca_and_refuses_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let (server, key) = tls_server(&pki, false).await;
    let opts = options(&server, &pki, &key);
    assert!(info(&opts).await.unwrap().embedding_dim > 0);

    let plaintext = ConnectOptions {
        server: format!("http://localhost:{}", server.addr.port()),
        tls_ca: None,
        ..opts.clone()
    };
    assert!(
        info(&plaintext).await.is_err(),
        "a plaintext client must not get an answer"
    );
    // A CA that did not sign the server's certificate is not trusted.
    let other_dir = tempfile::tempdir().unwrap();
    let stranger = Pki::new(other_dir.path());
    let untrusted = ConnectOptions {
        tls_ca: Some(stranger.ca_file()),
        ..opts.clone()
    };
    assert!(info(&untrusted).await.is_err());
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_refuses_a_client_without_a_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let (server, key) = tls_server(&pki, true).await;
    let without = options(&server, &pki, &key);
    assert!(info(&without).await.is_err(), "no client certificate");

    let (cert, private_key) = pki.issue("client");
    let with = ConnectOptions {
        tls_client_cert: Some(cert),
        tls_client_key: Some(private_key),
        ..without
    };
    assert!(info(&with).await.unwrap().embedding_dim > 0);
    server.shutdown().await.unwrap();
}
