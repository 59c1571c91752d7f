//! A plain owned float tensor: checkpoint weights on their way into an ONNX graph.

#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl Tensor {
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Self {
        assert_eq!(
            shape.iter().product::<usize>(),
            data.len(),
            "tensor data does not fill its shape {shape:?}"
        );
        Self { shape, data }
    }

    pub fn scalar_like(shape: &[usize], value: f32) -> Self {
        Self::new(shape.to_vec(), vec![value; shape.iter().product()])
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// `[rows, cols]` → `[cols, rows]`.
    pub fn transposed_2d(&self) -> Tensor {
        let [rows, cols] = self.shape[..] else {
            panic!("transposed_2d on a tensor of shape {:?}", self.shape);
        };
        let mut out = vec![0.0; self.data.len()];
        for r in 0..rows {
            for c in 0..cols {
                out[c * rows + r] = self.data[r * cols + c];
            }
        }
        Tensor::new(vec![cols, rows], out)
    }

    /// Stacks tensors along the first axis (their other axes must agree).
    pub fn concat_rows(parts: &[&Tensor]) -> Tensor {
        let tail = &parts[0].shape[1..];
        assert!(parts.iter().all(|p| &p.shape[1..] == tail));
        let rows = parts.iter().map(|p| p.shape[0]).sum();
        let data = parts.iter().flat_map(|p| p.data.iter().copied()).collect();
        let mut shape = vec![rows];
        shape.extend_from_slice(tail);
        Tensor::new(shape, data)
    }

    /// Splits along the first axis into `n` equal parts.
    pub fn chunk_rows(&self, n: usize) -> Vec<Tensor> {
        assert_eq!(self.shape[0] % n, 0);
        let rows = self.shape[0] / n;
        let per = self.data.len() / n;
        let mut shape = self.shape.clone();
        shape[0] = rows;
        self.data
            .chunks(per)
            .map(|c| Tensor::new(shape.clone(), c.to_vec()))
            .collect()
    }

    pub fn scaled(&self, factor: f32) -> Tensor {
        Tensor::new(
            self.shape.clone(),
            self.data.iter().map(|v| v * factor).collect(),
        )
    }
}

/// A BatchNorm in eval mode, ready to be folded into the layer before it.
pub struct BatchNorm<'a> {
    pub weight: &'a Tensor,
    pub bias: &'a Tensor,
    pub running_mean: &'a Tensor,
    pub running_var: &'a Tensor,
    pub eps: f32,
}

impl BatchNorm<'_> {
    /// Per-channel `(scale, shift)` with `bn(x) = x * scale + shift`.
    pub fn scale_shift(&self) -> (Vec<f32>, Vec<f32>) {
        let scale: Vec<f32> = (0..self.weight.len())
            .map(|c| {
                (self.weight.data[c] as f64
                    / (self.running_var.data[c] as f64 + self.eps as f64).sqrt())
                    as f32
            })
            .collect();
        let shift = (0..self.weight.len())
            .map(|c| self.bias.data[c] - self.running_mean.data[c] * scale[c])
            .collect();
        (scale, shift)
    }

    /// Folds into a layer whose weight has output channels on axis 0 (Conv `[O, I, kh, kw]`
    /// or Linear `[O, I]`) and an optional bias; returns the new weight and bias.
    pub fn fold_into(&self, weight: &Tensor, bias: Option<&Tensor>) -> (Tensor, Tensor) {
        let (scale, shift) = self.scale_shift();
        let out_ch = weight.shape[0];
        let per = weight.len() / out_ch;
        let mut w = weight.data.clone();
        for (o, chunk) in w.chunks_mut(per).enumerate() {
            chunk.iter_mut().for_each(|v| *v *= scale[o]);
        }
        let b = (0..out_ch)
            .map(|o| bias.map_or(0.0, |b| b.data[o]) * scale[o] + shift[o])
            .collect();
        (
            Tensor::new(weight.shape.clone(), w),
            Tensor::new(vec![out_ch], b),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose_chunk_and_concat_round_trip() {
        let t = Tensor::new(vec![2, 3], vec![1., 2., 3., 4., 5., 6.]);
        assert_eq!(t.transposed_2d().data, vec![1., 4., 2., 5., 3., 6.]);
        let parts = t.chunk_rows(2);
        assert_eq!(parts[1].data, vec![4., 5., 6.]);
        assert_eq!(Tensor::concat_rows(&[&parts[0], &parts[1]]), t);
    }

    #[test]
    fn folded_batchnorm_equals_layer_then_batchnorm() {
        let w = Tensor::new(vec![2, 2], vec![1., 2., -1., 0.5]);
        let b = Tensor::new(vec![2], vec![0.1, -0.2]);
        let bn = BatchNorm {
            weight: &Tensor::new(vec![2], vec![1.5, 0.5]),
            bias: &Tensor::new(vec![2], vec![0.3, -0.1]),
            running_mean: &Tensor::new(vec![2], vec![0.2, 1.0]),
            running_var: &Tensor::new(vec![2], vec![4.0, 0.25]),
            eps: 1e-5,
        };
        let (fw, fb) = bn.fold_into(&w, Some(&b));
        let x = [0.7f32, -1.3];
        for o in 0..2 {
            let y = w.data[o * 2] * x[0] + w.data[o * 2 + 1] * x[1] + b.data[o];
            let expected = (y - bn.running_mean.data[o]) / (bn.running_var.data[o] + 1e-5).sqrt()
                * bn.weight.data[o]
                + bn.bias.data[o];
            let folded = fw.data[o * 2] * x[0] + fw.data[o * 2 + 1] * x[1] + fb.data[o];
            assert!((expected - folded).abs() < 1e-5, "{expected} vs {folded}");
        }
    }
}
