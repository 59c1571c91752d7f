//! AdamW whose moments can be saved and restored: a resumed run must continue to the same
//! weights as an uninterrupted one, and candle-nn's `AdamW` keeps its moments private.
//! The update is candle-nn's (decoupled weight decay, bias-corrected moments).

use std::collections::HashMap;

use candle_core::{Result, Tensor, Var};

pub struct AdamW {
    /// `(name, variable, learning-rate factor)`: the backbone trains at a fraction of the
    /// head's rate.
    params: Vec<(String, Var, f64)>,
    first: HashMap<String, Tensor>,
    second: HashMap<String, Tensor>,
    step: usize,
    pub weight_decay: f64,
}

const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const EPS: f64 = 1e-8;

impl AdamW {
    pub fn new(params: Vec<(String, Var, f64)>, weight_decay: f64) -> Result<Self> {
        let zeros = |v: &Var| v.as_tensor().zeros_like();
        let first = params
            .iter()
            .map(|(n, v, _)| Ok((n.clone(), zeros(v)?)))
            .collect::<Result<_>>()?;
        let second = params
            .iter()
            .map(|(n, v, _)| Ok((n.clone(), zeros(v)?)))
            .collect::<Result<_>>()?;
        Ok(Self {
            params,
            first,
            second,
            step: 0,
            weight_decay,
        })
    }

    /// One update at the base rate `lr` from `grads` (by parameter name; a parameter
    /// without a gradient is left as it is).
    pub fn step(&mut self, grads: &HashMap<String, Tensor>, lr: f64) -> Result<()> {
        self.step += 1;
        let t = self.step as i32;
        let (c1, c2) = (1.0 - BETA1.powi(t), 1.0 - BETA2.powi(t));
        for (name, var, factor) in &self.params {
            let Some(g) = grads.get(name) else { continue };
            let lr = lr * factor;
            let m = ((&self.first[name] * BETA1)? + (g * (1.0 - BETA1))?)?;
            let v = ((&self.second[name] * BETA2)? + (g.sqr()? * (1.0 - BETA2))?)?;
            let update = ((&m / c1)? / ((&v / c2)?.sqrt()? + EPS)?)?;
            let decayed = (var.as_tensor() * (1.0 - lr * self.weight_decay))?;
            var.set(&(decayed - (update * lr)?)?)?;
            self.first.insert(name.clone(), m);
            self.second.insert(name.clone(), v);
        }
        Ok(())
    }

    /// The moments as `m/NAME`, `v/NAME`, and the step count.
    pub fn state(&self) -> (HashMap<String, Tensor>, usize) {
        let mut out = HashMap::new();
        for (name, m) in &self.first {
            out.insert(format!("m/{name}"), m.clone());
        }
        for (name, v) in &self.second {
            out.insert(format!("v/{name}"), v.clone());
        }
        (out, self.step)
    }

    pub fn restore(&mut self, state: &HashMap<String, Tensor>, step: usize) -> Result<()> {
        for (name, _, _) in &self.params {
            let get = |key: String| {
                state
                    .get(&key)
                    .cloned()
                    .ok_or_else(|| candle_core::Error::Msg(format!("checkpoint lacks `{key}`")))
            };
            self.first.insert(name.clone(), get(format!("m/{name}"))?);
            self.second.insert(name.clone(), get(format!("v/{name}"))?);
        }
        self.step = step;
        Ok(())
    }
}
