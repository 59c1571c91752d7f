//! Thin helpers over the generated gRPC client: connecting (TLS, the API key on every
//! call), turning dataset images into request images, and bulk enrolment through
//! `EnrollStream` with a progress bar.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

use handmatch_core::hand_image::{Aspect, HandImage, Side};
use handmatch_core::progress;
use handmatch_proto::v1 as pb;
use handmatch_proto::v1::hand_match_client::HandMatchClient;

/// Adds `authorization: Bearer <key>` to every call, when there is a key.
#[derive(Clone, Default)]
pub struct ApiKey(Option<MetadataValue<Ascii>>);

impl ApiKey {
    pub fn new(key: Option<&str>) -> anyhow::Result<Self> {
        key.map(|k| {
            format!("Bearer {}", k.trim())
                .parse()
                .context("the API key is not printable ASCII")
        })
        .transpose()
        .map(ApiKey)
    }
}

impl tonic::service::Interceptor for ApiKey {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

pub type Client = HandMatchClient<InterceptedService<Channel, ApiKey>>;

/// Where the server is and how to reach it.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// `host:port`, `http://…` or `https://…`.
    pub server: String,
    pub api_key: Option<String>,
    /// The CA that signed the server's certificate (PEM): connect with TLS.
    pub tls_ca: Option<PathBuf>,
    /// The name the server's certificate must carry; the server's host by default.
    pub tls_domain: Option<String>,
    /// A client certificate and key (PEM) for servers that require mutual TLS.
    pub tls_client_cert: Option<PathBuf>,
    pub tls_client_key: Option<PathBuf>,
}

/// Plaintext, without a key.
pub async fn connect(server: &str) -> anyhow::Result<Client> {
    connect_with(&ConnectOptions {
        server: server.to_string(),
        ..ConnectOptions::default()
    })
    .await
}

pub async fn connect_with(opts: &ConnectOptions) -> anyhow::Result<Client> {
    let tls = tls_config(opts)?;
    let url = match (opts.server.contains("://"), tls.is_some()) {
        (true, _) => opts.server.clone(),
        (false, true) => format!("https://{}", opts.server),
        (false, false) => format!("http://{}", opts.server),
    };
    let mut endpoint = Channel::from_shared(url.clone())?;
    if let Some(tls) = tls {
        endpoint = endpoint.tls_config(tls)?;
    }
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| anyhow::anyhow!("cannot connect to {url}: {e}"))?;
    let key = ApiKey::new(opts.api_key.as_deref())?;
    Ok(HandMatchClient::with_interceptor(channel, key)
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20))
}

fn tls_config(opts: &ConnectOptions) -> anyhow::Result<Option<ClientTlsConfig>> {
    let Some(ca) = &opts.tls_ca else {
        anyhow::ensure!(
            opts.tls_client_cert.is_none(),
            "a client certificate needs --tls-ca (TLS)"
        );
        return Ok(None);
    };
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read(ca)?));
    if let Some(domain) = &opts.tls_domain {
        tls = tls.domain_name(domain.clone());
    }
    match (&opts.tls_client_cert, &opts.tls_client_key) {
        (Some(cert), Some(key)) => tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?)),
        (None, None) => {}
        _ => anyhow::bail!("a client certificate and its key go together"),
    }
    Ok(Some(tls))
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

pub fn pb_aspect(a: Aspect) -> pb::Aspect {
    match a {
        Aspect::Dorsal => pb::Aspect::Dorsal,
        Aspect::Palmar => pb::Aspect::Palmar,
    }
}

pub fn pb_image(img: &HandImage) -> std::io::Result<pb::Image> {
    Ok(pb::Image {
        data: std::fs::read(&img.path)?,
        aspect: pb_aspect(img.aspect) as i32,
        side: match img.side {
            Side::Left => pb::Side::Left,
            Side::Right => pb::Side::Right,
        } as i32,
    })
}

/// Enrols `images` grouped by subject (one stream item per subject); returns the number of
/// templates stored and the items that failed, with their messages.
pub async fn enroll_all(
    client: &mut Client,
    gallery: &str,
    consent_reference: &str,
    images: &[&HandImage],
) -> anyhow::Result<(usize, Vec<String>)> {
    let mut by_subject: BTreeMap<&str, Vec<&HandImage>> = BTreeMap::new();
    for img in images {
        by_subject
            .entry(img.subject.as_str())
            .or_default()
            .push(img);
    }
    let mut requests = Vec::with_capacity(by_subject.len());
    for (subject, imgs) in &by_subject {
        requests.push(pb::EnrollRequest {
            gallery: gallery.to_string(),
            subject_id: subject.to_string(),
            images: imgs.iter().map(|i| pb_image(i)).collect::<Result<_, _>>()?,
            consent_reference: consent_reference.to_string(),
        });
    }
    let bar = progress::bar(requests.len() as u64, "enrol", "subjects", true);
    let mut results = client
        .enroll_stream(tokio_stream::iter(requests))
        .await?
        .into_inner();
    let subjects: Vec<&str> = by_subject.keys().copied().collect();
    let (mut stored, mut failed) = (0, Vec::new());
    while let Some(r) = results.message().await? {
        match r.result {
            Some(pb::enroll_stream_result::Result::Enrolled(e)) => stored += e.templates.len(),
            Some(pb::enroll_stream_result::Result::Error(e)) => {
                failed.push(format!("{}: {}", subjects[r.index as usize], e.message))
            }
            None => failed.push(format!("{}: empty result", subjects[r.index as usize])),
        }
        bar.inc(1);
    }
    bar.finish();
    Ok((stored, failed))
}
