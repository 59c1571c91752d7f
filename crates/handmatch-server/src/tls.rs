//! The server's TLS configuration from PEM files (rustls through tonic), with mutual TLS
//! when a client CA is given: then a client without a certificate that CA signed cannot
//! complete the handshake.

use std::path::Path;

use anyhow::Context;
use tonic::transport::{Certificate, Identity, ServerTlsConfig};

use crate::config::Args;

pub fn server_tls(args: &Args) -> anyhow::Result<Option<ServerTlsConfig>> {
    let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) else {
        return Ok(None);
    };
    let identity = Identity::from_pem(read_pem(cert, "--tls-cert")?, read_pem(key, "--tls-key")?);
    let mut tls = ServerTlsConfig::new().identity(identity);
    if let Some(ca) = &args.tls_client_ca {
        tls = tls.client_ca_root(Certificate::from_pem(read_pem(ca, "--tls-client-ca")?));
    }
    Ok(Some(tls))
}

fn read_pem(path: &Path, flag: &str) -> anyhow::Result<Vec<u8>> {
    let pem = std::fs::read(path).with_context(|| format!("{flag} {}", path.display()))?;
    anyhow::ensure!(
        pem.windows(11).any(|w| w == b"-----BEGIN "),
        "{flag} {} is not PEM (no -----BEGIN line)",
        path.display()
    );
    Ok(pem)
}
