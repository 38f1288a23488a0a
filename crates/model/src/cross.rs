//! DCN-v2 cross layers (Wang et al., "DCN V2", 2021), forward only: with `x₀` the
//! model's input row,
//!
//! `x_{l+1} = x₀ ⊙ (x_l · W_l + b_l) + x_l`,
//!
//! each `W_l` full-rank (`width × width`, stored input × output like [`Dense`]). The
//! stack keeps the width, so the MLP reads `x_L` where it would read `x₀` ("stacked"
//! DCN-v2); the backward pass lives in `shortlist-train`.

use crate::dense::{Activation, Dense};
use crate::error::{Error, Result};

/// The cross layers of a ranking model (empty: none).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CrossNet {
    /// `width × width` linear layers, input side first.
    pub layers: Vec<Dense>,
}

impl CrossNet {
    /// `n` zero-initialised layers of `width`.
    pub fn zeros(width: usize, n: usize) -> Self {
        CrossNet {
            layers: (0..n)
                .map(|_| Dense::zeros(width, width, Activation::Linear))
                .collect(),
        }
    }

    /// Whether there are no layers (the input passes through).
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    /// Checks that every layer is a linear `width × width` map.
    pub fn check(&self, width: usize) -> Result<()> {
        for (l, layer) in self.layers.iter().enumerate() {
            if layer.input != width || layer.output != width {
                return Err(Error::invalid(
                    format!("cross layer {l}"),
                    format!(
                        "expected {width}×{width} (the input width), got {}×{}",
                        layer.input, layer.output
                    ),
                ));
            }
            if layer.activation != Activation::Linear {
                return Err(Error::invalid(
                    format!("cross layer {l}"),
                    "expected a linear layer",
                ));
            }
        }
        Ok(())
    }

    /// Forward pass over `batch` rows of `x0` keeping what the backward pass needs:
    /// `xs[l]` is `x_{l+1}` and `ts[l]` is `x_l · W_l + b_l` (each `batch × width`;
    /// buffers are resized and reused). The output is `xs.last()` (or `x0` without layers).
    pub fn forward_all(
        &self,
        x0: &[f32],
        batch: usize,
        xs: &mut Vec<Vec<f32>>,
        ts: &mut Vec<Vec<f32>>,
    ) {
        let n = self.layers.len();
        xs.resize_with(n, Vec::new);
        ts.resize_with(n, Vec::new);
        for (l, layer) in self.layers.iter().enumerate() {
            let w = layer.input;
            let (done, rest) = xs.split_at_mut(l);
            let input: &[f32] = if l == 0 {
                &x0[..batch * w]
            } else {
                &done[l - 1]
            };
            let t = &mut ts[l];
            t.resize(batch * w, 0.0);
            layer.forward(input, batch, t);
            let out = &mut rest[0];
            out.resize(batch * w, 0.0);
            for (((o, &a), &tv), &xl) in out
                .iter_mut()
                .zip(&x0[..batch * w])
                .zip(t.iter())
                .zip(input)
            {
                *o = a * tv + xl;
            }
        }
    }

    /// Multiply-adds per example.
    pub fn macs(&self) -> usize {
        self.layers.iter().map(|l| l.input * l.output).sum()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn one_layer_matches_the_formula_by_hand() {
        // width 2: W = [[1, 2], [3, 4]] (input × output), b = [0.5, -1].
        let net = CrossNet {
            layers: vec![Dense::new(
                2,
                2,
                vec![1.0, 2.0, 3.0, 4.0],
                vec![0.5, -1.0],
                Activation::Linear,
            )
            .unwrap()],
        };
        // x0 = [1, 2]: x0·W + b = [1 + 6 + 0.5, 2 + 8 − 1] = [7.5, 9];
        // x1 = x0 ⊙ t + x0 = [7.5 + 1, 18 + 2] = [8.5, 20].
        let (mut xs, mut ts) = (Vec::new(), Vec::new());
        net.forward_all(&[1.0, 2.0, 0.0, 1.0], 2, &mut xs, &mut ts);
        assert_eq!(ts[0][..2], [7.5, 9.0]);
        assert_eq!(xs[0][..2], [8.5, 20.0]);
        // second row x0 = [0, 1]: t = [3.5, 3], x1 = [0, 3 + 1]
        assert_eq!(xs[0][2..], [0.0, 4.0]);
        assert_eq!(net.macs(), 4);
        assert!(net.check(2).is_ok());
        assert_eq!(
            net.check(3).unwrap_err().to_string(),
            "invalid cross layer 0: expected 3×3 (the input width), got 2×2"
        );
    }

    #[test]
    fn zero_layers_pass_the_input_through_and_stack_in_order() {
        let mut net = CrossNet::zeros(3, 2);
        let x0 = [1.0, -2.0, 0.5];
        let (mut xs, mut ts) = (Vec::new(), Vec::new());
        net.forward_all(&x0, 1, &mut xs, &mut ts);
        // W = 0, b = 0: every layer is the identity
        assert_eq!(xs[1], x0);
        // b₀ = 1 on a zero W: x1 = x0 ⊙ 1 + x0 = 2 x0; x2 = x0 ⊙ 0 + x1 = 2 x0
        net.layers[0].bias = vec![1.0; 3];
        net.forward_all(&x0, 1, &mut xs, &mut ts);
        assert_eq!(xs[1], [2.0, -4.0, 1.0]);
        // b₁ = 1 too: x2 = x0 ⊙ 1 + x1 = 3 x0
        net.layers[1].bias = vec![1.0; 3];
        net.forward_all(&x0, 1, &mut xs, &mut ts);
        assert_eq!(xs[1], [3.0, -6.0, 1.5]);
    }
}
