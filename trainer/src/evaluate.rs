//! Offline evaluation of an artefact: every image of a subset is embedded through the
//! artefact exactly as the server does it (same decoding, same evaluation transform, same
//! graph), then scored under every protocol by the shared metrics code.

use std::path::Path;

use handmatch_core::embed::decode::DecodeLimits;
use handmatch_core::embed::preprocess::{decode_for_model, model_input};
use handmatch_core::embed::{EmbeddingSession, RuntimeOptions};
use handmatch_core::hand_image::HandImage;
use handmatch_core::metrics::protocols::{evaluate_protocols, EmbeddedImage, ProtocolResults};
use handmatch_core::progress;

#[derive(Debug, thiserror::Error)]
pub enum EvaluateError {
    #[error(transparent)]
    Embed(#[from] handmatch_core::embed::EmbedError),
    #[error("{path}: {reason}")]
    Image {
        path: std::path::PathBuf,
        reason: String,
    },
    #[error(transparent)]
    Metrics(#[from] handmatch_core::metrics::error::MetricsError),
    #[error(transparent)]
    Plot(#[from] handmatch_core::report::error::PlotError),
    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The images that were embedded, in order, with their embeddings; and those in which a
/// hand model found no hand (the service refuses them, so they take no part in scoring).
pub struct Embedded<'a> {
    pub images: Vec<&'a HandImage>,
    pub embeddings: Vec<Vec<f32>>,
    pub no_hand: Vec<&'a HandImage>,
}

/// Every image through the artefact at `model`, exactly as the server prepares it.
pub fn embed_images<'a>(
    model: &Path,
    images: &[&'a HandImage],
    runtime: &RuntimeOptions,
    batch_size: usize,
    show_progress: bool,
) -> Result<Embedded<'a>, EvaluateError> {
    let mut session = EmbeddingSession::open(model, runtime)?;
    let meta = session.metadata().clone();
    let bar = progress::bar(images.len() as u64, "embed", "images", show_progress);
    let mut out = Embedded {
        images: Vec::with_capacity(images.len()),
        embeddings: Vec::with_capacity(images.len()),
        no_hand: Vec::new(),
    };
    for chunk in images.chunks(batch_size.max(1)) {
        let mut inputs = Vec::with_capacity(chunk.len());
        for img in chunk {
            let err = |reason: String| EvaluateError::Image {
                path: img.path.clone(),
                reason,
            };
            let bytes = std::fs::read(&img.path).map_err(|e| err(e.to_string()))?;
            let rgb = decode_for_model(&bytes, &DecodeLimits::default(), &meta)
                .map_err(|e| err(e.to_string()))?;
            inputs.push(model_input(&meta, rgb));
        }
        let rows = session.embed_inputs(&inputs.iter().collect::<Vec<_>>())?;
        for (img, row) in chunk.iter().zip(rows) {
            match row {
                Ok(e) => {
                    out.images.push(img);
                    out.embeddings.push(e);
                }
                Err(_) => out.no_hand.push(img),
            }
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    if !out.no_hand.is_empty() {
        tracing::warn!(
            "{} of {} images had no hand and were left out",
            out.no_hand.len(),
            images.len()
        );
    }
    Ok(out)
}

pub fn score(
    images: &[&HandImage],
    embeddings: &[Vec<f32>],
) -> Result<ProtocolResults, EvaluateError> {
    let embedded: Vec<EmbeddedImage> = images
        .iter()
        .zip(embeddings)
        .map(|(img, e)| EmbeddedImage {
            subject: img.subject.clone(),
            aspect: img.aspect,
            accessories: img.accessories,
            embedding: e.clone(),
        })
        .collect();
    Ok(evaluate_protocols(&embedded)?)
}

/// `results.json` and `cmc.png` in `out`.
pub fn write_report(
    results: &ProtocolResults,
    out: &Path,
    title: &str,
) -> Result<(), EvaluateError> {
    std::fs::create_dir_all(out).map_err(|source| EvaluateError::Io {
        path: out.into(),
        source,
    })?;
    let json = serde_json::to_string_pretty(results).expect("results serialise") + "\n";
    let path = out.join("results.json");
    handmatch_core::atomic_file::AtomicFile::write(&path, json.as_bytes())
        .map_err(|source| EvaluateError::Io { path, source })?;
    let curves = vec![
        (
            "template → template".to_string(),
            results.template_to_template.cmc.clone(),
        ),
        (
            "image → template".to_string(),
            results.image_to_template.cmc.clone(),
        ),
        (
            "image → image".to_string(),
            results.image_to_image.cmc.clone(),
        ),
    ];
    handmatch_core::report::plot::cmc_chart(&out.join("cmc.png"), title, &curves)?;
    Ok(())
}

/// A Markdown table of R@1/5/10, mean rank and mAP for every protocol.
pub fn table(results: &ProtocolResults) -> String {
    let mut out = String::from("| protocol | queries | gallery | R@1 [95% CI] | R@5 | R@10 | chance R@1 | mean rank | mAP |\n|---|---:|---:|---|---:|---:|---:|---:|---:|\n");
    // A protocol without eligible subjects has no row.
    for (name, m) in results
        .named()
        .into_iter()
        .filter_map(|(n, m)| Some((n, m?)))
    {
        let r = |k| m.recall_at(k).map_or(f64::NAN, |r| r.value);
        let r1 = m.recall_at(1);
        out += &format!(
            "| {name} | {} | {} | {:.3} [{:.3}, {:.3}] | {:.3} | {:.3} | {:.3} | {:.2} | {:.3} |\n",
            m.queries,
            m.gallery_size,
            r(1),
            r1.map_or(f64::NAN, |r| r.wilson_low),
            r1.map_or(f64::NAN, |r| r.wilson_high),
            r(5),
            r(10),
            r1.map_or(f64::NAN, |r| r.chance),
            m.mean_rank,
            m.mean_ap
        );
    }
    out
}
