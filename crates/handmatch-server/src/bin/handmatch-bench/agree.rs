//! `handmatch-bench agree`: how closely two ways of embedding the same images agree, image
//! by image (cosine): an int8 artefact against its fp32 original (`--versus`), or
//! DCT-scaled against full decoding (`--decode`, `--versus-decode`). The dev photos are
//! thumbnails; `--enlarge-to 1600` re-encodes each at 1600 pixels on its long side (JPEG
//! quality 90) first, a stand-in for full-size photos where DCT scaling applies.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use anyhow::Context;
use handmatch_core::args::RuntimeArgs;
use handmatch_core::embed::decode::{decode_rgb, decode_rgb_scaled, DecodeLimits, DecodeMode};
use handmatch_core::embed::preprocess::{model_input, scaled_short_side};
use handmatch_core::embed::EmbeddingSession;
use handmatch_core::template::cosine;
use image::codecs::jpeg::JpegEncoder;

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum DecodeChoice {
    /// What the artefact's metadata says.
    Model,
    Full,
    DctScaled,
}

#[derive(clap::Args)]
pub struct AgreeArgs {
    #[arg(long)]
    model: PathBuf,
    /// The artefact to compare with (default: the same one).
    #[arg(long)]
    versus: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "model")]
    decode: DecodeChoice,
    #[arg(long, value_enum, default_value = "model")]
    versus_decode: DecodeChoice,
    /// A folder of JPEG/PNG images.
    #[arg(long)]
    images: PathBuf,
    /// Enlarge each image to this long side and re-encode it as JPEG (quality 90) first.
    #[arg(long)]
    enlarge_to: Option<u32>,
    /// At most this many images (sorted by name; 0: all).
    #[arg(long, default_value_t = 0)]
    limit: usize,
    #[command(flatten)]
    runtime: RuntimeArgs,
}

pub fn run(a: AgreeArgs) -> anyhow::Result<()> {
    let files = image_files(&a.images, a.limit)?;
    let photos: Vec<Vec<u8>> = files
        .iter()
        .map(|p| photo(p, a.enlarge_to))
        .collect::<anyhow::Result<_>>()?;
    let versus = a.versus.clone().unwrap_or_else(|| a.model.clone());
    let first = embed_all(&a.model, a.decode, &photos, &a.runtime)?;
    let second = embed_all(&versus, a.versus_decode, &photos, &a.runtime)?;
    let pairs: Vec<(usize, &Vec<f32>, &Vec<f32>)> = first
        .iter()
        .zip(&second)
        .enumerate()
        .filter_map(|(i, (x, y))| Some((i, x.as_ref()?, y.as_ref()?)))
        .collect();
    anyhow::ensure!(
        pairs.len() >= 2,
        "fewer than two images were embedded by both sides"
    );
    let mut cosines: Vec<(f32, usize)> = pairs.iter().map(|(i, x, y)| (cosine(x, y), *i)).collect();
    cosines.sort_by(|x, y| x.0.total_cmp(&y.0));
    let n = cosines.len();
    let mean = cosines.iter().map(|c| c.0 as f64).sum::<f64>() / n as f64;
    let (worst, at) = cosines[0];
    println!(
        "images {n} (of {}), cosine mean {mean:.5}, 1st percentile {:.5}, worst {worst:.5} ({})",
        files.len(),
        cosines[n / 100].0,
        files[at].display()
    );
    let a: Vec<&[f32]> = pairs.iter().map(|p| p.1.as_slice()).collect();
    let b: Vec<&[f32]> = pairs.iter().map(|p| p.2.as_slice()).collect();
    let structure = ScoreStructure::between(&a, &b);
    println!(
        "scores between different images: spread (std) {:.5}, correlation {:.5}, largest \
         difference {:.5}; nearest neighbour the same for {:.1} % of images",
        structure.spread,
        structure.correlation,
        structure.max_difference,
        100.0 * structure.same_neighbour
    );
    Ok(())
}

/// How two embeddings of the same images agree on what matters for search: the scores
/// between different images. A cosine near 1 per image means little when every image's
/// embedding is nearly the same (a random network's are).
struct ScoreStructure {
    /// Standard deviation of side A's scores between different images.
    spread: f64,
    /// Pearson correlation of those scores, side A against side B.
    correlation: f64,
    max_difference: f64,
    /// Fraction of images whose most similar other image is the same on both sides.
    same_neighbour: f64,
}

impl ScoreStructure {
    fn between(a: &[&[f32]], b: &[&[f32]]) -> Self {
        let n = a.len();
        let (mut xs, mut ys) = (Vec::new(), Vec::new());
        let mut same = 0usize;
        for i in 0..n {
            let (mut best_a, mut best_b) = ((f32::MIN, 0), (f32::MIN, 0));
            for j in (0..n).filter(|&j| j != i) {
                let (sa, sb) = (cosine(a[i], a[j]), cosine(b[i], b[j]));
                if j > i {
                    xs.push(sa as f64);
                    ys.push(sb as f64);
                }
                if sa > best_a.0 {
                    best_a = (sa, j);
                }
                if sb > best_b.0 {
                    best_b = (sb, j);
                }
            }
            same += usize::from(best_a.1 == best_b.1);
        }
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let (mx, my) = (mean(&xs), mean(&ys));
        let cov: f64 = xs.iter().zip(&ys).map(|(x, y)| (x - mx) * (y - my)).sum();
        let var = |v: &[f64], m: f64| v.iter().map(|x| (x - m).powi(2)).sum::<f64>();
        Self {
            spread: (var(&xs, mx) / xs.len() as f64).sqrt(),
            correlation: cov / (var(&xs, mx) * var(&ys, my)).sqrt().max(f64::MIN_POSITIVE),
            max_difference: xs
                .iter()
                .zip(&ys)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0, f64::max),
            same_neighbour: same as f64 / n as f64,
        }
    }
}

fn image_files(dir: &Path, limit: usize) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
            ["jpg", "jpeg", "png"].contains(&ext.to_ascii_lowercase().as_str())
        })
        .collect();
    files.sort();
    if limit > 0 {
        files.truncate(limit);
    }
    anyhow::ensure!(!files.is_empty(), "{} holds no image", dir.display());
    Ok(files)
}

fn photo(path: &Path, enlarge_to: Option<u32>) -> anyhow::Result<Vec<u8>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let Some(side) = enlarge_to else {
        return Ok(bytes);
    };
    let rgb = decode_rgb(&bytes, &DecodeLimits::default())?;
    let scale = side as f64 / rgb.width().max(rgb.height()) as f64;
    let (w, h) = (
        (rgb.width() as f64 * scale).round() as u32,
        (rgb.height() as f64 * scale).round() as u32,
    );
    let big = handmatch_core::resize::resize(&rgb, w, h);
    let mut out = Vec::new();
    big.write_with_encoder(JpegEncoder::new_with_quality(Cursor::new(&mut out), 90))?;
    Ok(out)
}

fn embed_all(
    model: &Path,
    choice: DecodeChoice,
    photos: &[Vec<u8>],
    runtime: &RuntimeArgs,
) -> anyhow::Result<Vec<Option<Vec<f32>>>> {
    let mut session = EmbeddingSession::open(model, &runtime.options())?;
    let meta = session.metadata().clone();
    let mode = match choice {
        DecodeChoice::Model => meta.decode,
        DecodeChoice::Full => DecodeMode::Full,
        DecodeChoice::DctScaled => DecodeMode::DctScaled,
    };
    let min_short_side = scaled_short_side(mode, meta.resize_short_side);
    let mut out = Vec::with_capacity(photos.len());
    for bytes in photos {
        let rgb = decode_rgb_scaled(bytes, &DecodeLimits::default(), min_short_side)?;
        let input = model_input(&meta, rgb);
        let row = session.embed_inputs(&[&input])?.remove(0);
        out.push(row.ok());
    }
    Ok(out)
}
