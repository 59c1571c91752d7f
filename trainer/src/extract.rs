//! `handmatch-train extract`: runs the backbone graph (the one the artefact contains)
//! through ONNX Runtime over a dataset and caches its features: the evaluation view of every
//! image, plus V augmented views for training. A cache is reused only when the backbone's
//! model id, the image list and the transforms all match.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use handmatch_core::dataset::augment::Augment;
use handmatch_core::embed::decode::{decode_rgb_scaled, DecodeLimits, DecodeMode};
use handmatch_core::embed::metadata::{keys, ArtefactMetadata};
use handmatch_core::embed::preprocess::{default_decode, scaled_short_side, EvalTransform};
use handmatch_core::embed::RuntimeOptions;
use handmatch_core::hand::{AlignmentSpec, HandAligner};
use handmatch_core::hand_image::{Aspect, HandImage};
use handmatch_core::progress;
use image::RgbImage;
use indicatif::ProgressBar;
use ndarray::{Array2, Array3};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use safetensors::{tensor::TensorView, Dtype, SafeTensors};
use sha2::{Digest, Sha256};

use handmatch_core::atomic_file::AtomicFile;
use handmatch_core::embed::backbone_session::{pixels, BackboneSession};

/// One image of the cache, in cache order.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CachedImage {
    pub subject: String,
    pub aspect: Aspect,
    pub accessories: bool,
    pub image_name: String,
}

impl CachedImage {
    pub fn of(image: &HandImage) -> Self {
        Self {
            subject: image.subject.clone(),
            aspect: image.aspect,
            accessories: image.accessories,
            image_name: image.image_name.clone(),
        }
    }
}

pub struct FeatureCache {
    pub images: Vec<CachedImage>,
    /// `[N, D]`: the evaluation transform.
    pub eval: Array2<f32>,
    /// `[N, V, D]`: augmented views for training.
    pub views: Array3<f32>,
    pub key: CacheKey,
}

impl FeatureCache {
    /// `(part, width)` of the feature columns in order: the backbone's layout, or one part
    /// `features` when the cache does not record one.
    pub fn layout(&self) -> Vec<(String, usize)> {
        self.key
            .layout
            .as_deref()
            .and_then(|t| handmatch_export::backbone::features::parse_layout(t).ok())
            .filter(|l| l.iter().map(|(_, w)| w).sum::<usize>() == self.eval.ncols())
            .unwrap_or_else(|| vec![("features".into(), self.eval.ncols())])
    }

    /// The same images with only the columns `start..end`.
    pub fn columns(&self, start: usize, end: usize) -> FeatureCache {
        FeatureCache {
            images: self.images.clone(),
            eval: self.eval.slice(ndarray::s![.., start..end]).to_owned(),
            views: self.views.slice(ndarray::s![.., .., start..end]).to_owned(),
            key: self.key.clone(),
        }
    }
}

/// What a cache was made from; any difference means it is stale.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CacheKey {
    pub backbone_model_id: String,
    pub image_list_sha256: String,
    pub image_size: u32,
    pub resize_short_side: u32,
    pub augment: Augment,
    pub views: usize,
    pub seed: u64,
    /// Hand backbones: how images were aligned (`None`: the centre crop).
    #[serde(default)]
    pub alignment: Option<AlignmentSpec>,
    /// Which columns are which feature part (`part:width,…`, the backbone's
    /// `feature_layout`); `None` in caches made before backbones recorded it.
    #[serde(default)]
    pub layout: Option<String>,
    /// How the images were decoded (the artefact's `decode`); `Full` in older caches.
    #[serde(default)]
    pub decode: DecodeMode,
}

pub struct ExtractOptions {
    pub backbone: PathBuf,
    pub views: usize,
    pub seed: u64,
    pub batch_size: usize,
    pub runtime: RuntimeOptions,
    pub progress: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    #[error("{path}: {reason}")]
    Backbone { path: PathBuf, reason: String },
    #[error("{path}: {reason}")]
    Image { path: PathBuf, reason: String },
    #[error("{path}: {reason}")]
    Cache { path: PathBuf, reason: String },
    #[error("inference failed: {0}")]
    Inference(String),
}

/// The backbone's id and input size, from the metadata `export-backbone` writes.
fn backbone_info(session: &BackboneSession, path: &Path) -> Result<(String, u32), ExtractError> {
    let err = |reason: &str| ExtractError::Backbone {
        path: path.into(),
        reason: reason.into(),
    };
    let id = session
        .custom_metadata(handmatch_core::embed::metadata::keys::MODEL_ID)
        .ok_or_else(|| {
            err("no model_id in the metadata (write it with `handmatch-train export-backbone`)")
        })?;
    let size = session
        .custom_metadata(handmatch_core::embed::metadata::keys::INPUT_SIZE)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| err("no input_size in the metadata"))?;
    Ok((id, size))
}

pub(crate) fn image_list_hash(images: &[&HandImage]) -> String {
    let mut h = Sha256::new();
    for img in images {
        h.update(img.subject.as_bytes());
        h.update([0, img.aspect as u8]);
        h.update(img.image_name.as_bytes());
        h.update(
            std::fs::metadata(&img.path)
                .map(|m| m.len())
                .unwrap_or(0)
                .to_le_bytes(),
        );
    }
    hex::encode(h.finalize())
}

/// Extracts (or reuses) the features of `images`, cached at `cache_path`.
pub fn extract(
    images: &[&HandImage],
    cache_path: &Path,
    opts: &ExtractOptions,
) -> Result<FeatureCache, ExtractError> {
    // One session serves both the cache key (its metadata) and, on a miss, the extraction.
    let mut session = BackboneSession::open(&opts.backbone, &opts.runtime).map_err(|e| {
        ExtractError::Backbone {
            path: opts.backbone.clone(),
            reason: e.to_string(),
        }
    })?;
    let key = cache_key(&session, images, opts)?;
    if let Ok(cache) = load(cache_path) {
        if cache.key == key {
            tracing::info!("reusing the feature cache {}", cache_path.display());
            return Ok(cache);
        }
        tracing::info!(
            "the feature cache {} is stale; extracting again",
            cache_path.display()
        );
    }
    let started = Instant::now();
    let (kept, outputs) = run_extraction(&mut session, images, &key, opts)?;
    let views_per_image = 1 + opts.views;
    let n = kept.len();
    tracing::info!(
        images = n,
        views = n * views_per_image,
        seconds = started.elapsed().as_secs_f64(),
        "features extracted ({:.1} views/s)",
        (n * views_per_image) as f64 / started.elapsed().as_secs_f64()
    );
    let cache = into_cache(images, &kept, &outputs, key);
    save(&cache, cache_path)?;
    Ok(cache)
}

/// What the cache will be made from: the backbone's identity and alignment, the images,
/// the transforms.
fn cache_key(
    session: &BackboneSession,
    images: &[&HandImage],
    opts: &ExtractOptions,
) -> Result<CacheKey, ExtractError> {
    let (backbone_model_id, image_size) = backbone_info(session, &opts.backbone)?;
    let alignment: Option<AlignmentSpec> = match session.custom_metadata(keys::HAND_ALIGNMENT) {
        None => None,
        Some(text) => Some(
            serde_json::from_str(&text).map_err(|e| ExtractError::Backbone {
                path: opts.backbone.clone(),
                reason: format!("`{}`: {e}", keys::HAND_ALIGNMENT),
            })?,
        ),
    };
    Ok(CacheKey {
        backbone_model_id,
        image_list_sha256: image_list_hash(images),
        image_size,
        resize_short_side: ArtefactMetadata::resize_for(image_size),
        augment: if alignment.is_some() {
            Augment::aligned_hand(image_size)
        } else {
            Augment::new(image_size)
        },
        views: opts.views,
        // The seed only draws the augmented views: without views, runs with different
        // seeds share one cache.
        seed: if opts.views == 0 { 0 } else { opts.seed },
        decode: default_decode(alignment.is_some()),
        alignment,
        layout: session.custom_metadata(handmatch_export::artefact::FEATURE_LAYOUT),
    })
}

/// Crops waiting for one backbone call, and the features of those already run.
struct Batches<'s> {
    session: &'s mut BackboneSession,
    pending: Vec<RgbImage>,
    outputs: Vec<Vec<f32>>,
    bar: ProgressBar,
}

impl Batches<'_> {
    fn flush(&mut self) -> Result<(), ExtractError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let f = self
            .session
            .run(pixels(&self.pending.iter().collect::<Vec<_>>()).view())
            .map_err(|e| ExtractError::Inference(e.to_string()))?;
        self.outputs
            .extend(f.rows().into_iter().map(|r| r.to_vec()));
        self.bar.inc(self.pending.len() as u64);
        self.pending.clear();
        Ok(())
    }
}

/// The eval crop of an image, and what its augmented views are cut from (centre-crop
/// models: the whole image; hand models: the aligned crop, so `None`).
type Prepared = (RgbImage, Option<RgbImage>);

/// Runs every image's eval crop and views through the backbone: the indices of the images
/// kept (hand models leave out images without a hand) and, per kept image, its
/// `1 + views` feature rows in order.
fn run_extraction(
    session: &mut BackboneSession,
    images: &[&HandImage],
    key: &CacheKey,
    opts: &ExtractOptions,
) -> Result<(Vec<usize>, Vec<Vec<f32>>), ExtractError> {
    let views_per_image = 1 + opts.views;
    let transform = EvalTransform::new(key.resize_short_side, key.image_size);
    let aligner = key
        .alignment
        .map(|spec| HandAligner::new(spec, key.image_size));
    // Alignment runs the landmark model on four rotations per image: a group of images
    // fills about one inference batch.
    let group = if aligner.is_some() {
        (opts.batch_size / 4).max(1)
    } else {
        1
    };
    let bar = progress::bar(
        (images.len() * views_per_image) as u64,
        "extract",
        "views",
        opts.progress,
    );
    let mut kept: Vec<usize> = Vec::with_capacity(images.len());
    let mut batches = Batches {
        session,
        pending: Vec::new(),
        outputs: Vec::new(),
        bar,
    };
    for (g, chunk) in images.chunks(group).enumerate() {
        let decoded = decode_all(chunk, key)?;
        let prepared: Vec<Option<Prepared>> = match &aligner {
            None => decoded
                .into_iter()
                .map(|rgb| Some((transform.apply(&rgb), Some(rgb))))
                .collect(),
            Some(aligner) => aligner
                .align(batches.session, &decoded.iter().collect::<Vec<_>>())
                .map_err(|e| ExtractError::Inference(e.to_string()))?
                .into_iter()
                .map(|a| a.ok().map(|h| (h.crop, None)))
                .collect(),
        };
        for (j, p) in prepared.into_iter().enumerate() {
            let i = g * group + j;
            let Some((eval_crop, source)) = p else {
                tracing::warn!("no hand found in {}; left out", images[i].path.display());
                batches.bar.inc(views_per_image as u64);
                continue;
            };
            kept.push(i);
            let views = augmented_views(source.as_ref().unwrap_or(&eval_crop), i, key, opts);
            batches.pending.push(eval_crop);
            batches.pending.extend(views);
            if batches.pending.len() >= opts.batch_size.max(views_per_image) {
                batches.flush()?;
            }
        }
    }
    batches.flush()?;
    batches.bar.finish_and_clear();
    Ok((kept, batches.outputs))
}

fn decode_all(images: &[&HandImage], key: &CacheKey) -> Result<Vec<RgbImage>, ExtractError> {
    decode_images(images, scaled_short_side(key.decode, key.resize_short_side))
}

/// The images decoded, JPEGs scaled in the DCT domain to no less than `min_short_side`.
pub(crate) fn decode_images(
    images: &[&HandImage],
    min_short_side: Option<u32>,
) -> Result<Vec<RgbImage>, ExtractError> {
    images
        .iter()
        .map(|img| {
            let err = |reason: String| ExtractError::Image {
                path: img.path.clone(),
                reason,
            };
            let bytes = std::fs::read(&img.path).map_err(|e| err(e.to_string()))?;
            decode_rgb_scaled(&bytes, &DecodeLimits::default(), min_short_side)
                .map_err(|e| err(e.to_string()))
        })
        .collect()
}

/// Image `i`'s augmented views, each from its own seeded generator so that a view does not
/// depend on batching.
fn augmented_views(
    from: &RgbImage,
    i: usize,
    key: &CacheKey,
    opts: &ExtractOptions,
) -> Vec<RgbImage> {
    (0..opts.views)
        .map(|v| {
            let mut rng = ChaCha8Rng::seed_from_u64(opts.seed ^ ((i as u64) << 20) ^ (v as u64));
            key.augment.apply(from, &mut rng)
        })
        .collect()
}

fn into_cache(
    images: &[&HandImage],
    kept: &[usize],
    outputs: &[Vec<f32>],
    key: CacheKey,
) -> FeatureCache {
    let views_per_image = 1 + key.views;
    let mut eval_rows: Vec<f32> = Vec::new();
    let mut view_rows: Vec<f32> = Vec::new();
    for chunk in outputs.chunks(views_per_image) {
        eval_rows.extend_from_slice(&chunk[0]);
        chunk[1..]
            .iter()
            .for_each(|r| view_rows.extend_from_slice(r));
    }
    let d = outputs.first().map_or(0, |r| r.len());
    let n = kept.len();
    FeatureCache {
        images: kept.iter().map(|&k| CachedImage::of(images[k])).collect(),
        eval: Array2::from_shape_vec((n, d), eval_rows).expect("rows of equal length"),
        views: Array3::from_shape_vec((n, key.views, d), view_rows).expect("rows of equal length"),
        key,
    }
}

fn save(cache: &FeatureCache, path: &Path) -> Result<(), ExtractError> {
    let err = |reason: String| ExtractError::Cache {
        path: path.into(),
        reason,
    };
    let eval: Vec<u8> = cache.eval.iter().flat_map(|v| v.to_le_bytes()).collect();
    let views: Vec<u8> = cache.views.iter().flat_map(|v| v.to_le_bytes()).collect();
    let mut meta = HashMap::new();
    meta.insert(
        "key".to_string(),
        serde_json::to_string(&cache.key).unwrap(),
    );
    meta.insert(
        "images".to_string(),
        serde_json::to_string(&cache.images).unwrap(),
    );
    let tensors = [
        (
            "eval",
            TensorView::new(Dtype::F32, cache.eval.shape().to_vec(), &eval).unwrap(),
        ),
        (
            "views",
            TensorView::new(Dtype::F32, cache.views.shape().to_vec(), &views).unwrap(),
        ),
    ];
    let bytes = safetensors::serialize(tensors, Some(meta)).map_err(|e| err(e.to_string()))?;
    AtomicFile::write(path, &bytes).map_err(|e| err(e.to_string()))
}

pub fn load(path: &Path) -> Result<FeatureCache, ExtractError> {
    let err = |reason: String| ExtractError::Cache {
        path: path.into(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| err(e.to_string()))?;
    let meta = header
        .metadata()
        .clone()
        .ok_or_else(|| err("no metadata".into()))?;
    let key: CacheKey = serde_json::from_str(meta.get("key").ok_or_else(|| err("no key".into()))?)
        .map_err(|e| err(e.to_string()))?;
    let images: Vec<CachedImage> =
        serde_json::from_str(meta.get("images").ok_or_else(|| err("no images".into()))?)
            .map_err(|e| err(e.to_string()))?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| err(e.to_string()))?;
    let read = |name: &str| -> Result<(Vec<usize>, Vec<f32>), ExtractError> {
        let v = st.tensor(name).map_err(|e| err(e.to_string()))?;
        let data = v
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        Ok((v.shape().to_vec(), data))
    };
    let (es, ed) = read("eval")?;
    let (vs, vd) = read("views")?;
    Ok(FeatureCache {
        images,
        eval: Array2::from_shape_vec((es[0], es[1]), ed).map_err(|e| err(e.to_string()))?,
        views: Array3::from_shape_vec((vs[0], vs[1], vs[2]), vd).map_err(|e| err(e.to_string()))?,
        key,
    })
}
