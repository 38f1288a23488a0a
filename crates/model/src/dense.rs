//! Fully connected layers and the multi-layer perceptron, forward only.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::kernel::{gemm, gemv_row, Operand};

/// Activation applied after a dense layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Activation {
    /// Identity.
    Linear,
    /// `max(0, x)`.
    Relu,
}

impl Activation {
    /// Applies the activation in place.
    pub fn apply(self, x: &mut [f32]) {
        if self == Activation::Relu {
            for v in x {
                *v = v.max(0.0);
            }
        }
    }
}

/// `y = act(x · W + b)` with `W` stored `input × output`, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Dense {
    /// Input width.
    pub input: usize,
    /// Output width.
    pub output: usize,
    /// Weights, `input × output`, row-major.
    pub weight: Vec<f32>,
    /// Bias, `output` values.
    pub bias: Vec<f32>,
    /// Activation.
    pub activation: Activation,
}

impl Dense {
    /// A layer from its parameters; errors on inconsistent shapes.
    pub fn new(
        input: usize,
        output: usize,
        weight: Vec<f32>,
        bias: Vec<f32>,
        activation: Activation,
    ) -> Result<Self> {
        if weight.len() != input * output || bias.len() != output {
            return Err(Error::invalid(
                "dense layer",
                format!(
                    "expected {input}×{output} weights and {output} biases, got {} and {}",
                    weight.len(),
                    bias.len()
                ),
            ));
        }
        Ok(Dense {
            input,
            output,
            weight,
            bias,
            activation,
        })
    }

    /// A zero-initialised layer.
    pub fn zeros(input: usize, output: usize, activation: Activation) -> Self {
        Dense {
            input,
            output,
            weight: vec![0.0; input * output],
            bias: vec![0.0; output],
            activation,
        }
    }

    /// Forward pass over `batch` rows: `x` is `batch × input`, `y` is `batch × output`.
    pub fn forward(&self, x: &[f32], batch: usize, y: &mut [f32]) {
        let y = &mut y[..batch * self.output];
        if batch == 1 {
            gemv_row(&x[..self.input], &self.weight, &self.bias, y);
        } else if self.output == 1 {
            // A one-wide output layer is a dot product per row: a GEMM would spend more
            // time packing than computing (this is the ranking model's last layer, on
            // the serving path).
            for (yk, xk) in y.iter_mut().zip(x.chunks_exact(self.input)) {
                *yk = self.bias[0] + dot(xk, &self.weight);
            }
        } else {
            for row in y.chunks_exact_mut(self.output) {
                row.copy_from_slice(&self.bias);
            }
            gemm(
                batch,
                self.input,
                self.output,
                Operand::new(x),
                Operand::new(&self.weight),
                1.0,
                y,
            );
        }
        self.activation.apply(y);
    }
}

/// Dot product with 8 independent accumulators (vectorised by the compiler).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for j in 0..8 {
            acc[j] += x[j] * y[j];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// A stack of dense layers (ReLU hidden layers, linear output).
#[derive(Debug, Clone, PartialEq)]
pub struct Mlp {
    /// The layers, input first.
    pub layers: Vec<Dense>,
}

impl Mlp {
    /// Zero-initialised layers of widths `input → hidden… → output`: ReLU on the hidden
    /// layers, linear output.
    pub fn zeros(input: usize, hidden: &[usize], output: usize) -> Self {
        let mut layers = Vec::with_capacity(hidden.len() + 1);
        let mut prev = input;
        for &h in hidden {
            layers.push(Dense::zeros(prev, h, Activation::Relu));
            prev = h;
        }
        layers.push(Dense::zeros(prev, output, Activation::Linear));
        Mlp { layers }
    }

    /// Input width.
    pub fn input(&self) -> usize {
        self.layers.first().map_or(0, |l| l.input)
    }

    /// Output width.
    pub fn output(&self) -> usize {
        self.layers.last().map_or(0, |l| l.output)
    }

    /// Multiply-adds per example.
    pub fn macs(&self) -> usize {
        self.layers.iter().map(|l| l.input * l.output).sum()
    }

    /// Forward pass keeping every layer's output: `acts[l]` is `batch × layers[l].output`
    /// (buffers are resized, so they can be reused across calls).
    pub fn forward_all(&self, x: &[f32], batch: usize, acts: &mut Vec<Vec<f32>>) {
        acts.resize_with(self.layers.len(), Vec::new);
        for (l, layer) in self.layers.iter().enumerate() {
            let (done, rest) = acts.split_at_mut(l);
            let out = &mut rest[0];
            out.resize(batch * layer.output, 0.0);
            let input: &[f32] = if l == 0 { x } else { &done[l - 1] };
            layer.forward(input, batch, out);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn batched_forward_equals_row_forward() {
        let mut mlp = Mlp::zeros(3, &[4], 1);
        for (k, l) in mlp.layers.iter_mut().enumerate() {
            for (j, w) in l.weight.iter_mut().enumerate() {
                *w = ((j + k) as f32 * 0.7).sin();
            }
            for (j, b) in l.bias.iter_mut().enumerate() {
                *b = j as f32 * 0.1 - 0.1;
            }
        }
        let x = [0.5, -1.0, 2.0, 1.0, 0.0, -0.5];
        let mut acts = Vec::new();
        mlp.forward_all(&x, 2, &mut acts);
        for r in 0..2 {
            let mut one = Vec::new();
            mlp.forward_all(&x[r * 3..r * 3 + 3], 1, &mut one);
            assert!((one[1][0] - acts[1][r]).abs() < 1e-5);
        }
        assert_eq!(mlp.macs(), 3 * 4 + 4);
        assert!(Dense::new(2, 2, vec![0.0; 3], vec![0.0; 2], Activation::Relu).is_err());
    }
}
