//! The s8 weights and per-channel scales of a QDQ file's quantized convolutions, read from the ONNX
//! file itself: tract folds them into f32 kernels, and the integer rewrite needs them back.

use std::collections::HashMap;

use tract_onnx::prelude::*;

use super::dequantize::Constant;

/// s8 weights (output channel first) and one scale per output channel.
type Weights = (Vec<i8>, Vec<f32>);

/// The s8 weights and per-channel scales of a file's quantized convolutions, found by the f32 kernel
/// tract folds them into: `(q − zero point) · scale`, bit for bit.
#[derive(Default)]
pub(crate) struct QuantizedWeights {
    pub(super) by_hash: HashMap<u64, Vec<Weights>>,
}

impl QuantizedWeights {
    /// Keeps `node`'s tensor when it is convolution weights: s8, of rank 2 or more, zero point
    /// zero (or none), and one scale per output channel (axis 0) or one for the whole tensor.
    pub(super) fn offer(&mut self, node: &Constant) {
        let q = &node.q;
        if q.datum_type() != DatumType::I8 || q.shape().len() < 2 {
            return;
        }
        if node
            .zeros
            .as_ref()
            .is_some_and(|z| z.to_vec().iter().any(|&z| z != 0))
        {
            return;
        }
        let out_channels = q.shape()[0];
        let scales = match node.scales.len() {
            1 => vec![node.scales[0]; out_channels],
            n if n == out_channels && node.axis == 0 => node.scales.clone(),
            _ => return,
        };
        let mut values = Vec::with_capacity(q.len());
        // Every value came from an i8.
        q.blocks(|_, block| values.extend(block.iter().map(|&v| v as i8)));
        self.add(values, scales);
    }

    pub(super) fn add(&mut self, q: Vec<i8>, scales: Vec<f32>) {
        let per = (q.len() / scales.len().max(1)).max(1);
        let key = hash_bits(q.len(), |i| f32::from(q[i]) * scales[i / per]);
        self.by_hash.entry(key).or_default().push((q, scales));
    }

    /// The integer weights and scales whose folding is exactly `kernel` (O first), if any.
    pub(super) fn find(&self, kernel: &[f32]) -> Option<(&[i8], &[f32])> {
        let candidates = self.by_hash.get(&hash_bits(kernel.len(), |i| kernel[i]))?;
        candidates
            .iter()
            .find(|(q, scales)| folds_to(q, scales, kernel))
            .map(|(q, scales)| (&q[..], &scales[..]))
    }

    /// Whether the file has no quantized weights.
    pub(crate) fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }
}

/// What tract's DequantizeLinear makes of s8 weights with zero point 0: `(q − 0) as f32 · scale`,
/// one scale per output channel.
#[cfg(test)]
pub(super) fn fold(q: &[i8], scales: &[f32]) -> Vec<f32> {
    let per = (q.len() / scales.len().max(1)).max(1);
    q.chunks(per)
        .zip(scales)
        .flat_map(|(channel, &scale)| channel.iter().map(move |&w| f32::from(w) * scale))
        .collect()
}

/// Whether `q` and `scales` fold to `kernel` as tract's DequantizeLinear does, every value bit for
/// bit. Channel by channel, the differences OR-ed together rather than compared one by one (which
/// stops at the first, and so runs one weight at a time), so that the loop runs on vectors.
fn folds_to(q: &[i8], scales: &[f32], kernel: &[f32]) -> bool {
    let per = (q.len() / scales.len().max(1)).max(1);
    q.len() == kernel.len()
        && per * scales.len() == q.len()
        && q.chunks(per)
            .zip(kernel.chunks(per))
            .zip(scales)
            .all(|((q, kernel), &scale)| {
                let differ = q.iter().zip(kernel).fold(0u32, |differ, (&w, &k)| {
                    differ | ((f32::from(w) * scale).to_bits() ^ k.to_bits())
                });
                differ == 0
            })
}

/// Values hashed per tensor by [`hash_bits`], evenly spaced.
const SAMPLES: usize = 1024;

/// A key for a tensor of `len` values (`value(i)` the i-th): a multiply-rotate hash of the bits of
/// up to [`SAMPLES`] of them, evenly spaced. A collision only costs a comparison ([`find`] compares
/// every value); hashing every value with SipHash was a tenth of open_nsfw's load time.
///
/// [`find`]: QuantizedWeights::find
fn hash_bits(len: usize, value: impl Fn(usize) -> f32) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let step = len.div_ceil(SAMPLES).max(1);
    (0..len)
        .step_by(step)
        .fold((len as u64).wrapping_mul(K), |h, i| {
            (h.rotate_left(5) ^ u64::from(value(i).to_bits())).wrapping_mul(K)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Weights of 3 output channels, more values than the hash samples.
    fn weights() -> (Vec<i8>, Vec<f32>) {
        let q = (0..3 * 1500).map(|i| (i as i8).wrapping_mul(37)).collect();
        (q, vec![0.02, -0.5, 1.5e-3])
    }

    #[test]
    fn weights_are_found_by_their_exact_folding_only() {
        let (q, scales) = weights();
        let mut table = QuantizedWeights::default();
        table.add(q.clone(), scales.clone());
        let kernel = fold(&q, &scales);
        assert_eq!(table.find(&kernel), Some((&q[..], &scales[..])));
        // One value off by its last bit, in each channel in turn and where the hash does not
        // sample it: the same key, not the same kernel.
        for i in [1, 1501, 4499] {
            let mut near = kernel.clone();
            near[i] = f32::from_bits(near[i].to_bits() ^ 1);
            assert_eq!(
                hash_bits(near.len(), |j| near[j]),
                hash_bits(kernel.len(), |j| kernel[j])
            );
            assert_eq!(table.find(&near), None, "value {i} changed");
        }
        // Neither a prefix of the kernel nor the weights with other scales.
        assert_eq!(table.find(&kernel[..3000]), None);
        assert!(!folds_to(&q, &scales[..2], &kernel));
    }
}
