//! The run's state after each epoch, in one safetensors file written atomically: every
//! trained tensor, the optimiser's moments, and (as JSON metadata) where training stands.
//! `--resume` continues from it to the same weights an uninterrupted run reaches.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use handmatch_core::atomic_file::AtomicFile;
use safetensors::{tensor::TensorView, Dtype, SafeTensors};

use super::config::FineTuneConfig;

/// One epoch's record.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FineTuneEpoch {
    pub epoch: usize,
    pub mean_loss: f64,
    pub lr: f64,
    pub seconds: f64,
    pub images_per_second: f64,
    /// Validation image → template mAP; `None` without validation subjects.
    pub validation_map: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Progress {
    pub config: FineTuneConfig,
    pub epochs_done: usize,
    pub optimizer_steps: usize,
    pub best_epoch: usize,
    pub best_map: Option<f64>,
    pub history: Vec<FineTuneEpoch>,
}

/// `tensors` (model as `…`, optimiser as `adam/…`) and `progress`, to `path`.
pub fn save(
    path: &Path,
    tensors: &HashMap<String, Tensor>,
    progress: &Progress,
) -> anyhow::Result<()> {
    let mut data: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        let values: Vec<f32> = t.flatten_all()?.to_vec1()?;
        data.push((
            name.clone(),
            t.dims().to_vec(),
            values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ));
    }
    let views = data
        .iter()
        .map(|(n, shape, bytes)| {
            Ok((
                n.as_str(),
                TensorView::new(Dtype::F32, shape.clone(), bytes)?,
            ))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let meta = HashMap::from([("progress".to_string(), serde_json::to_string(progress)?)]);
    AtomicFile::write(path, &safetensors::serialize(views, Some(meta))?)?;
    Ok(())
}

pub fn load(path: &Path, device: &Device) -> anyhow::Result<(HashMap<String, Tensor>, Progress)> {
    let bytes = std::fs::read(path)?;
    let (_, header) = SafeTensors::read_metadata(&bytes)?;
    let progress: Progress = serde_json::from_str(
        header
            .metadata()
            .as_ref()
            .and_then(|m| m.get("progress"))
            .ok_or_else(|| anyhow::anyhow!("{}: not a fine-tuning checkpoint", path.display()))?,
    )?;
    let st = SafeTensors::deserialize(&bytes)?;
    let mut tensors = HashMap::new();
    for (name, view) in st.tensors() {
        let values: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        tensors.insert(name, Tensor::from_vec(values, view.shape(), device)?);
    }
    Ok((tensors, progress))
}
