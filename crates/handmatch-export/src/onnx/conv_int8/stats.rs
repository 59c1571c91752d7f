use ndarray::{ArrayViewD, Axis};

use crate::error::ExportError;

/// What calibration saw of one tensor `[N, C, ...]` over every batch: its range, and each
/// channel's largest value and mean.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TensorStats {
    min: f32,
    max: f32,
    channel_max: Vec<f32>,
    channel_sum: Vec<f64>,
    /// Values summed per channel.
    per_channel: u64,
}

impl TensorStats {
    /// Adds a batch `[N, C, ...]` (or `[N, C]`).
    pub fn observe(&mut self, batch: ArrayViewD<'_, f32>) {
        assert!(batch.ndim() >= 2, "a batch of channels, [N, C, ...]");
        let channels = batch.shape()[1];
        let first = self.channel_max.is_empty();
        if first {
            self.min = f32::INFINITY;
            self.max = f32::NEG_INFINITY;
            self.channel_max = vec![f32::NEG_INFINITY; channels];
            self.channel_sum = vec![0.0; channels];
        }
        assert_eq!(
            channels,
            self.channel_max.len(),
            "the same channels every batch"
        );
        for (c, values) in batch.axis_iter(Axis(1)).enumerate() {
            let (lo, hi, sum) = values.iter().fold(
                (f32::INFINITY, f32::NEG_INFINITY, 0.0f64),
                |(lo, hi, sum), &v| (lo.min(v), hi.max(v), sum + v as f64),
            );
            self.min = self.min.min(lo);
            self.max = self.max.max(hi);
            self.channel_max[c] = self.channel_max[c].max(hi);
            self.channel_sum[c] += sum;
        }
        self.per_channel += (batch.len() / channels.max(1)) as u64;
    }

    /// The smallest and largest value seen.
    pub fn range(&self) -> (f32, f32) {
        (self.min, self.max)
    }

    pub fn channel_max(&self) -> &[f32] {
        &self.channel_max
    }

    pub fn channel_mean(&self) -> Vec<f32> {
        let n = self.per_channel.max(1) as f64;
        self.channel_sum.iter().map(|s| (s / n) as f32).collect()
    }
}

/// The error of a step that needs statistics calibration did not gather for `value`.
pub(super) fn uncalibrated(value: &str) -> ExportError {
    ExportError::Argument {
        field: "calibration".into(),
        reason: format!("no statistics for `{value}`"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array4;

    #[test]
    fn statistics_cover_every_batch_and_channel() {
        let mut stats = TensorStats::default();
        // Channel 0 holds 1 and 3, channel 1 holds -2 and 10, over two batches.
        let a = Array4::from_shape_fn((1, 2, 2, 1), |(_, c, _, _)| [1.0, -2.0][c]);
        let b = Array4::from_shape_fn((1, 2, 2, 1), |(_, c, _, _)| [3.0, 10.0][c]);
        stats.observe(a.view().into_dyn());
        stats.observe(b.view().into_dyn());
        assert_eq!(stats.range(), (-2.0, 10.0));
        assert_eq!(stats.channel_max(), &[3.0, 10.0]);
        assert_eq!(stats.channel_mean(), vec![2.0, 4.0]);
    }
}
