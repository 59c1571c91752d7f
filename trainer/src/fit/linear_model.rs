//! The trainable linear head: one Linear D → E then L2-normalise, the same function as
//! [`LinearHead`]. Starts from a given head (the LDA projection), and can be pulled back
//! toward it: with ~100 training subjects the triplet loss alone drifts into overfitting,
//! and an L2 penalty on the distance from the closed-form solution keeps what it found.

use candle_core::{DType, Device, Module, Result, Tensor, Var};
use candle_nn::Linear;

use super::head_model::l2_normalize_rows;
use handmatch_export::head::LinearHead;
use handmatch_export::tensor::Tensor as PlainTensor;

pub struct LinearModel {
    weight: Var,
    bias: Var,
    initial_weight: Tensor,
    initial_bias: Tensor,
    input_dim: usize,
    embedding_dim: usize,
}

impl LinearModel {
    pub fn from_head(head: &LinearHead, device: &Device) -> Result<Self> {
        let (e, d) = (head.embedding_dim(), head.input_dim());
        let initial_weight = Tensor::from_vec(head.weight.data.clone(), (e, d), device)?;
        let initial_bias = Tensor::from_vec(head.bias.data.clone(), e, device)?;
        Ok(Self {
            weight: Var::from_tensor(&initial_weight)?,
            bias: Var::from_tensor(&initial_bias)?,
            initial_weight,
            initial_bias,
            input_dim: d,
            embedding_dim: e,
        })
    }

    pub fn trainable_vars(&self) -> Vec<Var> {
        vec![self.weight.clone(), self.bias.clone()]
    }

    /// `x [N, D]` → L2-normalised `[N, E]` (no train/eval difference).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let linear = Linear::new(
            self.weight.as_tensor().clone(),
            Some(self.bias.as_tensor().clone()),
        );
        l2_normalize_rows(&linear.forward(x)?)
    }

    /// `‖W − W₀‖² + ‖b − b₀‖²`: how far training moved the head from where it started.
    pub fn distance_from_start(&self) -> Result<Tensor> {
        let dw = (self.weight.as_tensor() - &self.initial_weight)?
            .sqr()?
            .sum_all()?;
        let db = (self.bias.as_tensor() - &self.initial_bias)?
            .sqr()?
            .sum_all()?;
        dw + db
    }

    pub fn to_linear_head(&self) -> Result<LinearHead> {
        let w = self.weight.as_tensor().to_dtype(DType::F32)?;
        let b = self.bias.as_tensor().to_dtype(DType::F32)?;
        Ok(LinearHead::new(
            PlainTensor::new(
                vec![self.embedding_dim, self.input_dim],
                w.flatten_all()?.to_vec1()?,
            ),
            PlainTensor::new(vec![self.embedding_dim], b.to_vec1()?),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_as_the_head_it_was_given_and_at_distance_zero() {
        let head = LinearHead::new(
            PlainTensor::new(vec![2, 3], vec![0.5, -1.0, 2.0, 1.5, 0.25, -0.75]),
            PlainTensor::new(vec![2], vec![0.1, -0.2]),
        );
        let m = LinearModel::from_head(&head, &Device::Cpu).unwrap();
        let x = [1.0f32, 2.0, -1.0, 0.5, 0.0, 3.0];
        let got = m
            .forward(&Tensor::from_slice(&x, (2, 3), &Device::Cpu).unwrap())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        for (a, b) in got.iter().zip(head.forward(&x)) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
        assert_eq!(
            m.distance_from_start().unwrap().to_scalar::<f32>().unwrap(),
            0.0
        );
        assert_eq!(m.to_linear_head().unwrap(), head);
    }
}
