//! `handmatch-eval run`'s measurement: enrol the palmar images of the chosen subjects
//! through the service, then identify every dorsal image alone (image → template) and every
//! subject's whole dorsal set (template → template, the reference protocol), and score the
//! server's rankings with the shared metrics code. With a gallery of at most `MAX_TOP_K`
//! subjects every rank is known exactly, so the numbers equal `handmatch-train evaluate`'s.

use std::collections::BTreeMap;

use futures::{stream, StreamExt};

use super::client::{enroll_all, pb_image, Client};
use crate::dataset::{Aspect, HandImage};
use crate::metrics::RetrievalMetrics;
use crate::proto::v1 as pb;

/// Identify's largest top_k: the deepest rank the service reports.
pub const MAX_TOP_K: u32 = 100;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct QueryRecord {
    /// The image names of the query (one for image → template, the subject's set otherwise).
    pub images: Vec<String>,
    pub subject: String,
    /// Rank of the true subject (1-based); `None` when it is not in the reported top_k.
    pub rank: Option<usize>,
    pub candidates: Vec<(String, f32)>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RunResults {
    pub gallery_subjects: usize,
    pub enrolled_templates: usize,
    pub template_to_template: RetrievalMetrics,
    pub image_to_template: RetrievalMetrics,
    pub template_queries: Vec<QueryRecord>,
    pub image_queries: Vec<QueryRecord>,
}

/// Subjects that have both views, with their images.
fn by_subject<'a>(images: &[&'a HandImage]) -> BTreeMap<&'a str, Vec<&'a HandImage>> {
    let mut map: BTreeMap<&str, Vec<&HandImage>> = BTreeMap::new();
    for img in images {
        map.entry(img.subject.as_str()).or_default().push(img);
    }
    map.retain(|_, imgs| {
        imgs.iter().any(|i| i.aspect == Aspect::Dorsal)
            && imgs.iter().any(|i| i.aspect == Aspect::Palmar)
    });
    map
}

async fn identify(
    client: &Client,
    subject: &str,
    query: Vec<&HandImage>,
) -> anyhow::Result<QueryRecord> {
    let request = pb::IdentifyRequest {
        images: query
            .iter()
            .map(|i| pb_image(i))
            .collect::<Result<_, _>>()?,
        top_k: Some(MAX_TOP_K),
        gallery_aspect: pb::Aspect::Palmar as i32,
        min_score: None,
    };
    let answer = client
        .clone()
        .identify(request)
        .await
        .map_err(|s| {
            anyhow::anyhow!(
                "Identify for subject {subject}: {:?}: {}",
                s.code(),
                s.message()
            )
        })?
        .into_inner();
    let candidates: Vec<(String, f32)> = answer
        .candidates
        .into_iter()
        .map(|c| (c.subject_id, c.score))
        .collect();
    Ok(QueryRecord {
        images: query.iter().map(|i| i.image_name.clone()).collect(),
        subject: subject.to_string(),
        rank: candidates
            .iter()
            .position(|(s, _)| s == subject)
            .map(|p| p + 1),
        candidates,
    })
}

fn metrics(queries: &[QueryRecord], gallery: usize) -> anyhow::Result<RetrievalMetrics> {
    // A true subject beyond the reported depth is counted one past it (documented above).
    let ranks: Vec<usize> = queries
        .iter()
        .map(|q| q.rank.unwrap_or(MAX_TOP_K as usize + 1))
        .collect();
    // One template per subject: average precision is 1 / rank.
    let aps: Vec<f64> = ranks.iter().map(|&r| 1.0 / r as f64).collect();
    Ok(RetrievalMetrics::from_ranks(&ranks, &aps, gallery)?)
}

/// Runs the queries with `concurrency` in flight; results in job order.
async fn identify_all(
    client: &Client,
    jobs: Vec<(&str, Vec<&HandImage>)>,
    concurrency: usize,
    bar: &indicatif::ProgressBar,
) -> anyhow::Result<Vec<QueryRecord>> {
    let results: Vec<anyhow::Result<QueryRecord>> = stream::iter(jobs)
        .map(|(s, q)| async move {
            let r = identify(client, s, q).await;
            bar.inc(1);
            r
        })
        .buffered(concurrency.max(1))
        .collect()
        .await;
    results.into_iter().collect()
}

/// Enrols, queries with `concurrency` requests in flight, and scores.
pub async fn run(
    client: &mut Client,
    images: &[&HandImage],
    concurrency: usize,
) -> anyhow::Result<RunResults> {
    let subjects = by_subject(images);
    anyhow::ensure!(
        !subjects.is_empty(),
        "no subject has both dorsal and palmar images"
    );
    let palmar: Vec<&HandImage> = subjects
        .values()
        .flatten()
        .filter(|i| i.aspect == Aspect::Palmar)
        .copied()
        .collect();
    let (enrolled, failed) = enroll_all(client, &palmar).await?;
    anyhow::ensure!(
        failed.is_empty(),
        "enrolment failed for {}: {}",
        failed.len(),
        failed.join("; ")
    );

    let image_jobs: Vec<(&str, Vec<&HandImage>)> = subjects
        .iter()
        .flat_map(|(s, imgs)| {
            imgs.iter()
                .filter(|i| i.aspect == Aspect::Dorsal)
                .map(move |i| (*s, vec![*i]))
        })
        .collect();
    let template_jobs: Vec<(&str, Vec<&HandImage>)> = subjects
        .iter()
        .map(|(s, imgs)| {
            (
                *s,
                imgs.iter()
                    .filter(|i| i.aspect == Aspect::Dorsal)
                    .copied()
                    .collect(),
            )
        })
        .collect();
    let bar = super::client::progress((image_jobs.len() + template_jobs.len()) as u64, "identify");
    let image_queries = identify_all(client, image_jobs, concurrency, &bar).await?;
    let template_queries = identify_all(client, template_jobs, concurrency, &bar).await?;
    bar.finish();
    let gallery = subjects.len();
    Ok(RunResults {
        gallery_subjects: gallery,
        enrolled_templates: enrolled,
        template_to_template: metrics(&template_queries, gallery)?,
        image_to_template: metrics(&image_queries, gallery)?,
        template_queries,
        image_queries,
    })
}

/// Deletes the subjects `run` enrolled.
pub async fn cleanup(client: &mut Client, images: &[&HandImage]) -> anyhow::Result<usize> {
    let mut n = 0;
    for subject in by_subject(images).keys() {
        if client
            .delete_subject(pb::DeleteSubjectRequest {
                subject_id: subject.to_string(),
            })
            .await
            .is_ok()
        {
            n += 1;
        }
    }
    Ok(n)
}
