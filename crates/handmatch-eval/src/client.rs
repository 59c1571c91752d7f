//! Thin helpers over the generated gRPC client: connecting, turning dataset images into
//! request images, and bulk enrolment through `EnrollStream` with a progress bar.

use std::collections::BTreeMap;

use tonic::transport::Channel;

use handmatch_core::hand_image::{Aspect, HandImage, Side};
use handmatch_core::progress;
use handmatch_proto::v1 as pb;
use handmatch_proto::v1::hand_match_client::HandMatchClient;

pub type Client = HandMatchClient<Channel>;

pub async fn connect(server: &str) -> anyhow::Result<Client> {
    let url = if server.contains("://") {
        server.to_string()
    } else {
        format!("http://{server}")
    };
    let channel = Channel::from_shared(url.clone())?
        .connect()
        .await
        .map_err(|e| anyhow::anyhow!("cannot connect to {url}: {e}"))?;
    Ok(HandMatchClient::new(channel)
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20))
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
            subject_id: subject.to_string(),
            images: imgs.iter().map(|i| pb_image(i)).collect::<Result<_, _>>()?,
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
