//! The s8 weights and per-channel scales of a QDQ file's quantized convolutions, read from the ONNX
//! file itself: tract folds them into f32 kernels, and the integer rewrite needs them back.

use std::collections::HashMap;

use tract_onnx::pb;
use tract_onnx::prelude::*;

/// s8 weights (output channel first) and one scale per output channel.
type Weights = (Vec<i8>, Vec<f32>);

/// The s8 weights and per-channel scales of a file's quantized convolutions, found by the f32 kernel
/// tract folds them into: `(q − zero point) · scale`, bit for bit.
#[derive(Default)]
pub(crate) struct QuantizedWeights {
    pub(super) by_hash: HashMap<u64, Vec<Weights>>,
}

impl QuantizedWeights {
    /// Collects every `DequantizeLinear` of a constant s8 tensor with a zero zero point and one
    /// scale per output channel (axis 0) or one for the whole tensor.
    pub(crate) fn from_proto(onnx: &tract_onnx::Onnx, proto: &pb::ModelProto) -> TractResult<Self> {
        let load = |t: &pb::TensorProto| tract_onnx::tensor::load_tensor(&*onnx.provider, t, None);
        let mut found = QuantizedWeights::default();
        let Some(graph) = proto.graph.as_ref() else {
            return Ok(found);
        };
        let initializers: HashMap<&str, &pb::TensorProto> = graph
            .initializer
            .iter()
            .map(|t| (t.name.as_str(), t))
            .collect();
        for node in graph
            .node
            .iter()
            .filter(|n| n.op_type == "DequantizeLinear")
        {
            let input = |i: usize| {
                node.input
                    .get(i)
                    .and_then(|name| initializers.get(name.as_str()))
            };
            let (Some(q), Some(scale)) = (input(0), input(1)) else {
                continue;
            };
            // A tensor tract cannot read here only leaves its convolution to tract.
            let (Ok(q), Ok(scale)) = (load(q), load(scale)) else {
                continue;
            };
            if q.datum_type() != i8::datum_type()
                || scale.datum_type() != f32::datum_type()
                || q.rank() < 2
            {
                continue;
            }
            if let Some(zero) = input(2) {
                let Ok(zero) = load(zero) else {
                    continue;
                };
                if zero
                    .cast_to::<i32>()?
                    .try_as_plain_ram()?
                    .as_slice::<i32>()?
                    .iter()
                    .any(|&z| z != 0)
                {
                    continue;
                }
            }
            let axis = node.get_attr_opt::<i64>("axis")?.unwrap_or(1);
            let out_channels = q.shape()[0];
            let scales: Vec<f32> = scale.try_as_plain_ram()?.as_slice::<f32>()?.to_vec();
            let scales = match scales.len() {
                1 => vec![scales[0]; out_channels],
                n if n == out_channels && axis == 0 => scales,
                _ => continue,
            };
            found.add(q.try_as_plain_ram()?.as_slice::<i8>()?.to_vec(), scales);
        }
        Ok(found)
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
            .find(|(q, scales)| {
                q.len() == kernel.len()
                    && folded(q, scales)
                        .zip(kernel)
                        .all(|(a, b)| a.to_bits() == b.to_bits())
            })
            .map(|(q, scales)| (&q[..], &scales[..]))
    }

    /// Whether the file has no quantized weights.
    pub(crate) fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }
}

/// What tract's DequantizeLinear makes of s8 weights with zero point 0: `(q − 0) as f32 · scale`.
#[cfg(test)]
pub(super) fn fold(q: &[i8], scales: &[f32]) -> Vec<f32> {
    folded(q, scales).collect()
}

/// The folded weights (`(q − 0) as f32 · scale`, one scale per output channel) one by one.
fn folded<'a>(q: &'a [i8], scales: &'a [f32]) -> impl Iterator<Item = f32> + 'a {
    let per = (q.len() / scales.len().max(1)).max(1);
    q.chunks(per)
        .zip(scales)
        .flat_map(|(channel, &scale)| channel.iter().map(move |&w| f32::from(w) * scale))
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
