//! `handmatch-eval run`'s measurement: enrol the palmar images of the chosen subjects
//! through the service, then identify every dorsal image alone (image → template) and every
//! subject's whole dorsal set (template → template, the reference protocol), and score the
//! server's rankings with the shared metrics code. With a gallery of at most `MAX_TOP_K`
//! subjects every rank is known exactly, so the numbers equal `handmatch-train evaluate`'s.

use std::collections::BTreeMap;

use anyhow::Context;
use futures::{stream, StreamExt};

use super::client::{enroll_all, pb_image, Client};
use handmatch_core::hand_image::{Aspect, HandImage};
use handmatch_core::metrics::RetrievalMetrics;
use handmatch_core::training_summary::TrainingSummary;
use handmatch_proto::limits::MAX_TOP_K;
use handmatch_proto::v1 as pb;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct QueryRecord {
    /// The image names of the query (one for image → template, the subject's set otherwise).
    pub images: Vec<String>,
    pub subject: String,
    /// Rank of the true subject (1-based); `None` when it is not in the reported top_k.
    pub rank: Option<usize>,
    pub candidates: Vec<(String, f32)>,
}

/// Open-set identification at one threshold: non-mated searches (subjects never enrolled)
/// that return anyone at or above it, and mated searches that miss their subject at rank 1.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OpenSetPoint {
    pub threshold: f32,
    /// Where the threshold came from, e.g. "model: FPIR 0.01" or "given".
    pub source: String,
    pub fpir: f64,
    pub fnir: f64,
    pub mated_searches: usize,
    pub non_mated_searches: usize,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct OpenSet {
    pub non_mated_subjects: Vec<String>,
    /// Each mated dorsal image's score for its own subject (when within the top 100).
    pub mated_scores: Vec<f32>,
    /// Each non-mated dorsal image's best score.
    pub non_mated_scores: Vec<f32>,
    pub points: Vec<OpenSetPoint>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RunResults {
    pub gallery_subjects: usize,
    pub enrolled_templates: usize,
    pub template_to_template: RetrievalMetrics,
    pub image_to_template: RetrievalMetrics,
    pub template_queries: Vec<QueryRecord>,
    pub image_queries: Vec<QueryRecord>,
    /// Present when some subjects were held out as non-mated.
    pub open_set: Option<OpenSet>,
}

pub struct RunOptions {
    /// The gallery enrolled into and searched ("" for the default).
    pub gallery: String,
    /// Sent with every enrolment ("" for none).
    pub consent_reference: String,
    pub concurrency: usize,
    /// Fraction of subjects queried but never enrolled (open-set evaluation).
    pub non_mated: f64,
    pub seed: u64,
    /// Thresholds to report FPIR/FNIR at, with where each came from.
    pub thresholds: Vec<(f32, String)>,
}

/// The operating points a model carries in its training summary (GetInfo's `training`,
/// empty for a head that `fit` did not train). A summary that does not parse is an error,
/// not an empty list: it means the server and this client disagree on the contract.
pub fn model_thresholds(training_json: &str) -> anyhow::Result<Vec<(f32, String)>> {
    if training_json.is_empty() {
        return Ok(Vec::new());
    }
    let summary = TrainingSummary::from_json(training_json)
        .context("the model's training summary (GetInfo.training) does not parse")?;
    Ok(summary
        .open_set
        .iter()
        .map(|p| (p.threshold, format!("model: FPIR {}", p.target_fpir)))
        .collect())
}

fn open_set_points(
    mated: &[QueryRecord],
    non_mated: &[QueryRecord],
    thresholds: &[(f32, String)],
) -> Vec<OpenSetPoint> {
    thresholds
        .iter()
        .map(|(t, source)| {
            let fp = non_mated
                .iter()
                .filter(|q| q.candidates.first().is_some_and(|c| c.1 >= *t))
                .count();
            let miss = mated
                .iter()
                .filter(|q| !(q.rank == Some(1) && q.candidates.first().is_some_and(|c| c.1 >= *t)))
                .count();
            OpenSetPoint {
                threshold: *t,
                source: source.clone(),
                fpir: fp as f64 / non_mated.len().max(1) as f64,
                fnir: miss as f64 / mated.len().max(1) as f64,
                mated_searches: mated.len(),
                non_mated_searches: non_mated.len(),
            }
        })
        .collect()
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

/// One Identify job per dorsal image: `(subject, [image])`.
fn single_dorsal_jobs<'a>(
    subjects: &BTreeMap<&'a str, Vec<&'a HandImage>>,
) -> Vec<(&'a str, Vec<&'a HandImage>)> {
    subjects
        .iter()
        .flat_map(|(s, imgs)| {
            imgs.iter()
                .filter(|i| i.aspect == Aspect::Dorsal)
                .map(move |i| (*s, vec![*i]))
        })
        .collect()
}

async fn identify(
    client: &Client,
    gallery: &str,
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
        operating_point: 0,
        gallery: gallery.to_string(),
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
    gallery: &str,
    jobs: Vec<(&str, Vec<&HandImage>)>,
    concurrency: usize,
    bar: &indicatif::ProgressBar,
) -> anyhow::Result<Vec<QueryRecord>> {
    let results: Vec<anyhow::Result<QueryRecord>> = stream::iter(jobs)
        .map(|(s, q)| async move {
            let r = identify(client, gallery, s, q).await;
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
    opts: &RunOptions,
) -> anyhow::Result<RunResults> {
    let concurrency = opts.concurrency;
    let mut subjects = by_subject(images);
    anyhow::ensure!(
        !subjects.is_empty(),
        "no subject has both dorsal and palmar images"
    );
    anyhow::ensure!(
        (0.0..1.0).contains(&opts.non_mated),
        "--non-mated must be in [0, 1)"
    );
    let non_mated_subjects = take_non_mated(&mut subjects, opts);
    let palmar: Vec<&HandImage> = subjects
        .values()
        .flatten()
        .filter(|i| i.aspect == Aspect::Palmar)
        .copied()
        .collect();
    let (enrolled, failed) =
        enroll_all(client, &opts.gallery, &opts.consent_reference, &palmar).await?;
    anyhow::ensure!(
        failed.is_empty(),
        "enrolment failed for {}: {}",
        failed.len(),
        failed.join("; ")
    );

    let image_jobs = single_dorsal_jobs(&subjects);
    let template_jobs = dorsal_set_jobs(&subjects);
    let bar = handmatch_core::progress::bar(
        (image_jobs.len() + template_jobs.len()) as u64,
        "identify",
        "queries",
        true,
    );
    let non_mated_jobs = single_dorsal_jobs(&non_mated_subjects);
    bar.inc_length(non_mated_jobs.len() as u64);
    let image_queries = identify_all(client, &opts.gallery, image_jobs, concurrency, &bar).await?;
    let template_queries =
        identify_all(client, &opts.gallery, template_jobs, concurrency, &bar).await?;
    let non_mated_queries =
        identify_all(client, &opts.gallery, non_mated_jobs, concurrency, &bar).await?;
    bar.finish();
    let gallery = subjects.len();
    let open_set = (!non_mated_queries.is_empty()).then(|| {
        open_set(
            &non_mated_subjects,
            &image_queries,
            &non_mated_queries,
            &opts.thresholds,
        )
    });
    Ok(RunResults {
        open_set,
        gallery_subjects: gallery,
        enrolled_templates: enrolled,
        template_to_template: metrics(&template_queries, gallery)?,
        image_to_template: metrics(&image_queries, gallery)?,
        template_queries,
        image_queries,
    })
}

/// Removes a seeded choice of `opts.non_mated` of the subjects (at least one stays): they
/// are queried but never enrolled.
fn take_non_mated<'a>(
    subjects: &mut BTreeMap<&'a str, Vec<&'a HandImage>>,
    opts: &RunOptions,
) -> BTreeMap<&'a str, Vec<&'a HandImage>> {
    use rand::seq::SliceRandom;
    use rand::SeedableRng;
    let mut names: Vec<&str> = subjects.keys().copied().collect();
    names.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(opts.seed));
    let n_non_mated = (names.len() as f64 * opts.non_mated).round() as usize;
    names[..n_non_mated.min(names.len().saturating_sub(1))]
        .iter()
        .map(|s| (*s, subjects.remove(s).expect("a chosen subject")))
        .collect()
}

/// One Identify per subject with all of its dorsal images (the template → template protocol).
fn dorsal_set_jobs<'a>(
    subjects: &BTreeMap<&'a str, Vec<&'a HandImage>>,
) -> Vec<(&'a str, Vec<&'a HandImage>)> {
    subjects
        .iter()
        .map(|(s, imgs)| {
            let dorsal = imgs
                .iter()
                .filter(|i| i.aspect == Aspect::Dorsal)
                .copied()
                .collect();
            (*s, dorsal)
        })
        .collect()
}

fn open_set(
    non_mated_subjects: &BTreeMap<&str, Vec<&HandImage>>,
    mated: &[QueryRecord],
    non_mated: &[QueryRecord],
    thresholds: &[(f32, String)],
) -> OpenSet {
    OpenSet {
        non_mated_subjects: non_mated_subjects.keys().map(|s| s.to_string()).collect(),
        mated_scores: mated
            .iter()
            .filter_map(|q| q.candidates.iter().find(|c| c.0 == q.subject).map(|c| c.1))
            .collect(),
        non_mated_scores: non_mated
            .iter()
            .filter_map(|q| q.candidates.first().map(|c| c.1))
            .collect(),
        points: open_set_points(mated, non_mated, thresholds),
    }
}

/// Deletes the subjects `run` enrolled.
pub async fn cleanup(
    client: &mut Client,
    gallery: &str,
    images: &[&HandImage],
) -> anyhow::Result<usize> {
    let mut n = 0;
    for subject in by_subject(images).keys() {
        if client
            .delete_subject(pb::DeleteSubjectRequest {
                subject_id: subject.to_string(),
                gallery: gallery.to_string(),
            })
            .await
            .is_ok()
        {
            n += 1;
        }
    }
    Ok(n)
}
