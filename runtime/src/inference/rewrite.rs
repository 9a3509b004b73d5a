//! Graph rewrites applied to a model after tract has typed it and before tract optimises it.
//!
//! # Fused fake quantization
//!
//! A QDQ-quantized ONNX model (what `models/prepare.py` writes for the int8 variant) wraps every
//! quantized activation in a `QuantizeLinear → DequantizeLinear` pair. tract folds the quantized
//! weights back to f32 and runs the convolutions in float, so each pair is pure overhead: two
//! scalar passes over the activation, one writing a u8 tensor and one reading it back. On open_nsfw
//! those 72 pairs took about 42 ms of a 140 ms inference.
//!
//! [`fuse_quantize_dequantize`] replaces each pair by the same arithmetic in f32, spelled with
//! tract's own scalar operators so that its optimiser folds them into the operator that produced
//! the activation (usually a matrix product, whose kernel applies them to each output tile while
//! it is still in registers):
//!
//! ```text
//! q = clamp(round_even(x · (1/s)) + z, 0, 255);  y = (q − z) · s
//!   ⇔  y = (clamp(x · (1/s), −z, 255 − z) + R − R) · s,  R = 1.5 · 2²³
//! ```
//!
//! The clamp bounds are integers, so clamping before rounding gives the same integer. Adding and
//! subtracting `R` rounds any |v| < 2²² to the nearest integer, ties to even (the f32 spacing at `R`
//! is exactly 1), which is the rounding ONNX and tract use. The values the graph computes are
//! therefore those of the unfused pair; the tests check it against tract's own operators.

use std::collections::HashMap;

use tract_onnx::pb;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::binary::TypedBinOp;
use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat, PaddingSpec};
use tract_onnx::tract_core::ops::einsum::EinSum;
use tract_onnx::tract_core::ops::element_wise::ElementWiseOp;
use tract_onnx::tract_core::ops::math;
use tract_onnx::tract_core::ops::nn::DataFormat;
use tract_onnx::tract_core::ops::quant::{DequantizeLinearF32, QuantizeLinearU8};
use tract_onnx::tract_core::ops::Downsample;

use crate::inference::qconv::{
    DepthwiseGeometry, FloatDepthwise, Geometry, Kernel, QConv, QDepthwise, Requantize, Simd,
};

/// `1.5 · 2²³`: adding then subtracting it rounds an f32 below 2²² in magnitude to an integer, ties
/// to even.
pub(crate) const ROUNDING_BIAS: f32 = 12_582_912.0;

/// Which quantize/dequantize pairs [`fuse_quantize_dequantize`] fuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pairs {
    /// Every pair.
    All,
    /// Every pair but those on a convolution's input or output, which [`quantized_convolutions`]
    /// reads or absorbs.
    NotAroundConvolutions,
}

/// Replaces each `QuantizeLinear(u8) → DequantizeLinear(f32)` pair whose quantized tensor feeds only
/// the dequantization by the equivalent f32 arithmetic. Returns how many pairs were fused.
pub(crate) fn fuse_quantize_dequantize(model: &mut TypedModel, which: Pairs) -> TractResult<usize> {
    let mut fused = 0;
    // Patching renumbers nothing that is still to be visited: each patch removes two nodes and
    // appends its own at the end, so walking the original ids and re-reading each node is safe.
    for id in 0..model.nodes.len() {
        let Some((scale_inv, zero_point, scale, dequant)) = pair_at(model, id)? else {
            continue;
        };
        if which == Pairs::NotAroundConvolutions {
            let after = model.nodes[model.nodes[id].inputs[0].node].op_is::<Conv>();
            let before = model.nodes[dequant].outputs[0]
                .successors
                .iter()
                .any(|s| model.nodes[s.node].op_is::<Conv>());
            if after || before {
                continue;
            }
        }
        let quant = &model.nodes[id];
        let name = quant.name.clone();
        let mut patch = TypedModelPatch::default();
        let mut wire = patch.tap_model(model, quant.inputs[0])?;
        let rank = model.outlet_fact(quant.inputs[0])?.rank();
        let lowest = -f32::from(zero_point);
        let highest = 255.0 - f32::from(zero_point);
        let steps: [(&str, Box<dyn TypedOp>, f32); 6] = [
            ("scale", Box::new(math::mul()), scale_inv),
            ("floor", Box::new(math::max()), lowest),
            ("ceil", Box::new(math::min()), highest),
            ("round", Box::new(math::add()), ROUNDING_BIAS),
            ("unbias", Box::new(math::sub()), ROUNDING_BIAS),
            ("dequant", Box::new(math::mul()), scale),
        ];
        for (step, op, value) in steps {
            let constant = tensor0(value).broadcast_into_rank(rank)?;
            let constant = patch.add_const(format!("{name}.fq.{step}.value"), constant)?;
            wire = patch.wire_node(format!("{name}.fq.{step}"), op, &[wire, constant])?[0];
        }
        patch.shunt_outside(model, OutletId::new(dequant, 0), wire)?;
        patch.obliterate(id)?;
        patch.obliterate(dequant)?;
        patch.apply(model)?;
        fused += 1;
    }
    Ok(fused)
}

/// If `outlet` carries a dequantized u8 tensor (directly, or subsampled by `Downsample`): its
/// scale and zero point.
fn dequantized_input(model: &TypedModel, outlet: OutletId) -> TractResult<Option<(f32, u8)>> {
    let mut node = &model.nodes[outlet.node];
    while node.op_is::<Downsample>() {
        node = &model.nodes[node.inputs[0].node];
    }
    let Some(dequant) = node.op_as::<DequantizeLinearF32>() else {
        return Ok(None);
    };
    if model.outlet_fact(node.inputs[0])?.datum_type != u8::datum_type()
        || !(0..=255).contains(&dequant.zero_point)
        || !(dequant.scale.is_finite() && dequant.scale > 0.0)
    {
        return Ok(None);
    }
    Ok(Some((dequant.scale, dequant.zero_point as u8)))
}

/// If node `id` quantizes f32 to u8 and its only consumer dequantizes with the same scale and zero
/// point: (1/scale as stored by tract, zero point, scale, dequantize node id).
fn pair_at(model: &TypedModel, id: usize) -> TractResult<Option<(f32, u8, f32, usize)>> {
    let node = &model.nodes[id];
    let Some(quant) = node
        .op_as::<ElementWiseOp>()
        .and_then(|op| op.0.downcast_ref::<QuantizeLinearU8>())
    else {
        return Ok(None);
    };
    if model.outlet_fact(node.inputs[0])?.datum_type != f32::datum_type()
        || model.outputs.contains(&OutletId::new(id, 0))
    {
        return Ok(None);
    }
    let Some(next) = model.single_succ(id)? else {
        return Ok(None);
    };
    let Some(dequant) = next.op_as::<DequantizeLinearF32>() else {
        return Ok(None);
    };
    let consistent = dequant.zero_point == i32::from(quant.zero_point)
        && quant.scale.is_finite()
        && dequant.scale.is_finite()
        && quant.scale > 0.0
        && dequant.scale > 0.0;
    Ok(consistent.then_some((quant.scale, quant.zero_point, dequant.scale, next.id)))
}

/// s8 weights (output channel first) and one scale per output channel.
type Weights = (Vec<i8>, Vec<f32>);

/// The s8 weights and per-channel scales of a file's quantized convolutions, found by the f32 kernel
/// tract folds them into: `(q − zero point) · scale`, bit for bit.
#[derive(Default)]
pub(crate) struct QuantizedWeights {
    by_hash: HashMap<u64, Vec<Weights>>,
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

    fn add(&mut self, q: Vec<i8>, scales: Vec<f32>) {
        let folded = fold(&q, &scales);
        self.by_hash
            .entry(hash_bits(&folded))
            .or_default()
            .push((q, scales));
    }

    /// The integer weights and scales whose folding is exactly `kernel` (O first), if any.
    fn find(&self, kernel: &[f32]) -> Option<(&[i8], &[f32])> {
        let candidates = self.by_hash.get(&hash_bits(kernel))?;
        candidates
            .iter()
            .find(|(q, scales)| {
                q.len() == kernel.len()
                    && fold(q, scales)
                        .iter()
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
fn fold(q: &[i8], scales: &[f32]) -> Vec<f32> {
    let per = q.len() / scales.len().max(1);
    q.iter()
        .enumerate()
        .map(|(i, &w)| f32::from(w) * scales[i / per.max(1)])
        .collect()
}

fn hash_bits(values: &[f32]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    values.len().hash(&mut hasher);
    for v in values {
        v.to_bits().hash(&mut hasher);
    }
    hasher.finish()
}

/// An integer convolution operator: dense or depthwise.
enum Integer {
    Dense(QConv),
    Depthwise(QDepthwise),
}

/// One convolution the rewrite replaces, found before any patch is applied.
struct Candidate {
    conv: usize,
    op: Integer,
    /// The nodes the operator stands for, after the convolution (bias add, quantize, dequantize).
    absorbed: Vec<usize>,
    /// The node whose output the operator's output replaces.
    last: usize,
}

/// Replaces each f32 convolution of dequantized activations by quantized weights (tract's `Conv`
/// with stride 1, or the `EinSum` a 1×1 convolution becomes) with a [`QConv`], and each depthwise
/// one (a `Conv` with one group per channel, stride 1 to 4, at most 4 wide) with a [`QDepthwise`],
/// absorbing the bias and the output's quantize/dequantize pair when they follow. Returns how many
/// were replaced.
///
/// Only a convolution whose input comes from a `DequantizeLinear` of u8 (through `Downsample`, a
/// strided 1×1 convolution's subsampling, at most) and whose kernel is exactly the folding of the
/// file's s8 weights is replaced: its integer form then computes what the float graph means.
/// The integer convolutions run on `kernel`.
pub(crate) fn quantized_convolutions(
    model: &mut TypedModel,
    weights: &QuantizedWeights,
    kernel: Kernel,
) -> TractResult<usize> {
    let mut candidates = vec![];
    for id in 0..model.nodes.len() {
        if let Some(c) = candidate(model, weights, id)? {
            candidates.push(c);
        }
    }
    let replaced = candidates.len();
    for c in candidates {
        let node = &model.nodes[c.conv];
        let name = node.name.clone();
        let mut patch = TypedModelPatch::default();
        let x = patch.tap_model(model, node.inputs[0])?;
        let y = match c.op {
            Integer::Dense(op) => {
                patch.wire_node(format!("{name}.qconv"), op.with_kernel(kernel), &[x])?[0]
            }
            Integer::Depthwise(op) => {
                patch.wire_node(format!("{name}.qdepthwise"), op.with_kernel(kernel), &[x])?[0]
            }
        };
        patch.shunt_outside(model, OutletId::new(c.last, 0), y)?;
        patch.obliterate(c.conv)?;
        for id in c.absorbed {
            patch.obliterate(id)?;
        }
        patch.apply(model)?;
    }
    Ok(replaced)
}

fn candidate(
    model: &TypedModel,
    weights: &QuantizedWeights,
    id: usize,
) -> TractResult<Option<Candidate>> {
    let node = &model.nodes[id];
    let Some(Convolution {
        shape,
        kernel,
        mut bias,
    }) = convolution(model, node)?
    else {
        return Ok(None);
    };
    let out_channels = match &shape {
        Shape::Dense(g) if g.is_valid() => g.out_channels,
        Shape::Depthwise(g) if g.is_valid() => g.channels,
        _ => return Ok(None),
    };
    let Some((in_scale, in_zero)) = dequantized_input(model, node.inputs[0])? else {
        return Ok(None);
    };
    let kernel = kernel.try_as_plain_ram()?;
    let Some((q, scales)) = weights.find(kernel.as_slice::<f32>()?) else {
        return Ok(None);
    };
    let (q, scales) = (q.to_vec(), scales.to_vec());
    if model.outputs.contains(&OutletId::new(id, 0)) {
        return Ok(None);
    }
    let mut absorbed = vec![];
    let mut last = id;
    absorb_bias(model, &mut bias, &mut absorbed, &mut last, out_channels)?;
    let mut requantize = None;
    if !model.outputs.contains(&OutletId::new(last, 0)) {
        if let Some(quant) = model.single_succ(last)? {
            if let Some((inv_scale, zero_point, scale, dequant)) = pair_at(model, quant.id)? {
                requantize = Some(Requantize {
                    inv_scale,
                    zero_point,
                    scale,
                });
                absorbed.extend([quant.id, dequant]);
                last = dequant;
            }
        }
    }
    let out_shape = match model
        .outlet_fact(OutletId::new(last, 0))?
        .shape
        .as_concrete()
    {
        Some(s) => s.into(),
        None => return Ok(None),
    };
    let op = match shape {
        Shape::Dense(g) => QConv::new(
            g,
            in_scale,
            in_zero,
            &q,
            &scales,
            bias.as_deref(),
            requantize,
            out_shape,
        )
        .map(Integer::Dense),
        Shape::Depthwise(g) => QDepthwise::new(
            g,
            in_scale,
            in_zero,
            &q,
            &scales,
            bias.as_deref(),
            requantize,
            out_shape,
        )
        .map(Integer::Depthwise),
    };
    let Ok(op) = op else {
        return Ok(None);
    };
    Ok(Some(Candidate {
        conv: id,
        op,
        absorbed,
        last,
    }))
}

/// When `bias` is none and the node after `last` adds one value per output channel to it (`+ bias`
/// as a separate add): takes those values, and that node as absorbed and as the new `last`.
fn absorb_bias(
    model: &TypedModel,
    bias: &mut Option<Vec<f32>>,
    absorbed: &mut Vec<usize>,
    last: &mut usize,
    out_channels: usize,
) -> TractResult<()> {
    if bias.is_some() {
        return Ok(());
    }
    if let Some(add) = model.single_succ(*last)? {
        if let Some(b) = channel_bias(model, add, *last, out_channels)? {
            *bias = Some(b);
            absorbed.push(add.id);
            *last = add.id;
        }
    }
    Ok(())
}

/// Replaces each depthwise convolution still in f32 (a `Conv` with one group per channel over f32
/// activations with a constant f32 kernel, stride 1 to 4, at most 4 wide: every one of a float
/// file's, and those a QDQ file keeps in float) with a [`FloatDepthwise`] on `simd`, absorbing a
/// bias added after it. Run after [`quantized_convolutions`], which takes the quantized ones.
/// Returns how many were replaced.
pub(crate) fn float_depthwise_convolutions(
    model: &mut TypedModel,
    simd: Simd,
) -> TractResult<usize> {
    let mut found = vec![];
    for id in 0..model.nodes.len() {
        let node = &model.nodes[id];
        let Some(Convolution {
            shape: Shape::Depthwise(g),
            kernel,
            mut bias,
        }) = convolution(model, node)?
        else {
            continue;
        };
        if model.outputs.contains(&OutletId::new(id, 0)) {
            continue;
        }
        let (mut absorbed, mut last) = (vec![], id);
        absorb_bias(model, &mut bias, &mut absorbed, &mut last, g.channels)?;
        let Some(out_shape) = model
            .outlet_fact(OutletId::new(last, 0))?
            .shape
            .as_concrete()
        else {
            continue;
        };
        let out_shape = out_shape.into();
        let weights = kernel.try_as_plain_ram()?;
        let Ok(op) = FloatDepthwise::new(
            g,
            weights.as_slice::<f32>()?,
            bias.as_deref(),
            out_shape,
            simd,
        ) else {
            continue;
        };
        found.push((id, op, absorbed, last));
    }
    let replaced = found.len();
    for (conv, op, absorbed, last) in found {
        let node = &model.nodes[conv];
        let name = format!("{}.depthwise", node.name);
        let mut patch = TypedModelPatch::default();
        let x = patch.tap_model(model, node.inputs[0])?;
        let y = patch.wire_node(name, op, &[x])?[0];
        patch.shunt_outside(model, OutletId::new(last, 0), y)?;
        patch.obliterate(conv)?;
        for id in absorbed {
            patch.obliterate(id)?;
        }
        patch.apply(model)?;
    }
    Ok(replaced)
}

/// The shapes of a convolution the rewrite can replace.
enum Shape {
    /// Stride 1, one group.
    Dense(Geometry),
    /// One group per channel, one output channel per group.
    Depthwise(DepthwiseGeometry),
}

/// An f32 convolution over a CHW image with a constant kernel.
struct Convolution {
    shape: Shape,
    /// OIHW (a 1×1 convolution's OI; a depthwise one's `[C][1][kh][kw]`).
    kernel: Arc<Tensor>,
    bias: Option<Vec<f32>>,
}

/// The node as a [`Convolution`], if it is one.
fn convolution(model: &TypedModel, node: &TypedNode) -> TractResult<Option<Convolution>> {
    let facts = model.node_input_facts(node.id)?;
    let Some(x) = facts.first().and_then(|f| f.shape.as_concrete()) else {
        return Ok(None);
    };
    let Some(out) = model
        .outlet_fact(OutletId::new(node.id, 0))?
        .shape
        .as_concrete()
    else {
        return Ok(None);
    };
    if facts[0].datum_type != f32::datum_type() || x.len() < 3 || out.len() < 3 {
        return Ok(None);
    }
    let unit_batch = |s: &[usize]| s.len() == 3 || (s.len() == 4 && s[0] == 1);
    if !unit_batch(x) || !unit_batch(out) {
        return Ok(None);
    }
    let [channels, height, width] = [x[x.len() - 3], x[x.len() - 2], x[x.len() - 1]];
    if let Some(einsum) = node.op_as::<EinSum>() {
        let Some(kernel) = facts.get(1).and_then(|f| f.konst.clone()) else {
            return Ok(None);
        };
        if facts.len() != 2
            || einsum.q_params.is_some()
            || einsum.operating_dt != f32::datum_type()
            || kernel.datum_type() != f32::datum_type()
            || kernel.rank() != 2
            || kernel.shape()[1] != channels
            || !is_pointwise_convolution(einsum, x.len(), out.len())
            || out[out.len() - 3] != kernel.shape()[0]
            || out[out.len() - 2..] != x[x.len() - 2..]
        {
            return Ok(None);
        }
        let geometry = Geometry {
            channels,
            height,
            width,
            kernel: [1, 1],
            pad: [0; 4],
            out_channels: kernel.shape()[0],
        };
        return Ok(Some(Convolution {
            shape: Shape::Dense(geometry),
            kernel,
            bias: None,
        }));
    }
    let Some(conv) = node.op_as::<Conv>() else {
        return Ok(None);
    };
    let spec = &conv.pool_spec;
    let ones = |v: &Option<TVec<usize>>| v.as_ref().is_none_or(|v| v.iter().all(|&s| s == 1));
    let chw = matches!(spec.data_format, DataFormat::NCHW | DataFormat::CHW)
        && (spec.data_format == DataFormat::NCHW) == (x.len() == 4);
    // Depthwise: one group per channel, each one input channel to one output channel.
    let depthwise = conv.group > 1 && conv.group == channels;
    let stride = match &spec.strides {
        None => [1, 1],
        Some(s) if s.len() == 2 => [s[0], s[1]],
        Some(_) => return Ok(None),
    };
    if conv.q_params.is_some()
        || (conv.group != 1 && !depthwise)
        || conv.kernel_fmt != KernelFormat::OIHW
        || !chw
        || spec.kernel_shape.len() != 2
        || (stride != [1, 1] && !depthwise)
        || !ones(&spec.dilations)
        || facts.len() < 2
    {
        return Ok(None);
    }
    let (before, after) = match &spec.padding {
        PaddingSpec::Explicit(b, a) if b.len() == 2 && a.len() == 2 => ([b[0], b[1]], [a[0], a[1]]),
        PaddingSpec::Valid => ([0, 0], [0, 0]),
        _ => return Ok(None),
    };
    let Some(kernel) = facts[1].konst.clone() else {
        return Ok(None);
    };
    let k = kernel.shape();
    let per_group = if depthwise { 1 } else { channels };
    if kernel.datum_type() != f32::datum_type()
        || k.len() != 4
        || k[1] != per_group
        || (depthwise && k[0] != channels)
        || k[2..] != spec.kernel_shape[..]
    {
        return Ok(None);
    }
    let bias = match facts.get(2) {
        None => None,
        Some(f) => match &f.konst {
            Some(b) if b.datum_type() == f32::datum_type() && b.len() == k[0] => {
                Some(b.try_as_plain_ram()?.as_slice::<f32>()?.to_vec())
            }
            Some(b) if b.datum_type() == f32::datum_type() && b.len() == 1 => {
                Some(vec![b.try_as_plain_ram()?.as_slice::<f32>()?[0]; k[0]])
            }
            _ => return Ok(None),
        },
    };
    let pad = [before[0], before[1], after[0], after[1]];
    let shape = if depthwise {
        let g = DepthwiseGeometry {
            channels,
            height,
            width,
            kernel: [k[2], k[3]],
            stride,
            pad,
        };
        if !g.is_valid() {
            return Ok(None);
        }
        Shape::Depthwise(g)
    } else {
        let g = Geometry {
            channels,
            height,
            width,
            kernel: [k[2], k[3]],
            pad,
            out_channels: k[0],
        };
        if !g.is_valid() {
            return Ok(None);
        }
        Shape::Dense(g)
    };
    let (oh, ow) = match &shape {
        Shape::Dense(g) => g.output(),
        Shape::Depthwise(g) => g.output(),
    };
    if out[out.len() - 3..] != [k[0], oh, ow] {
        return Ok(None);
    }
    Ok(Some(Convolution {
        shape,
        kernel,
        bias,
    }))
}

/// Whether an EinSum over (x, weights) is `[N] I H W, O I -> [N] O H W`.
fn is_pointwise_convolution(op: &EinSum, x_rank: usize, out_rank: usize) -> bool {
    let mut seen = 0;
    for axis in op.axes.iter_all_axes() {
        if axis.inputs.len() != 2 || axis.outputs.len() != 1 {
            return false;
        }
        let (x, w, y) = (
            &axis.inputs[0][..],
            &axis.inputs[1][..],
            &axis.outputs[0][..],
        );
        let ok = match (x, w, y) {
            ([], [0], [o]) => *o == out_rank - 3,
            ([i], [1], []) => *i == x_rank - 3,
            ([h], [], [o]) if *h == x_rank - 2 => *o == out_rank - 2,
            ([v], [], [o]) if *v == x_rank - 1 => *o == out_rank - 1,
            // the unit batch axis, on either side or both
            ([0], [], []) | ([0], [], [0]) => x_rank == 4,
            ([], [], [0]) => out_rank == 4,
            _ => false,
        };
        if !ok {
            return false;
        }
        if !w.is_empty() || x.first().is_some_and(|&p| p + 2 >= x_rank) {
            seen += 1;
        }
    }
    seen == 4
}

/// If `add` adds a constant with one value per output channel to `conv`'s output: those values.
fn channel_bias(
    model: &TypedModel,
    add: &TypedNode,
    conv: usize,
    channels: usize,
) -> TractResult<Option<Vec<f32>>> {
    let is_add = add
        .op_as::<TypedBinOp>()
        .is_some_and(|op| op.0.is::<math::Add>() && op.1.is_none());
    if !is_add || add.inputs.len() != 2 || add.inputs[0] != OutletId::new(conv, 0) {
        return Ok(None);
    }
    let out = model.outlet_fact(OutletId::new(conv, 0))?;
    let Some(bias) = model.outlet_fact(add.inputs[1])?.konst.clone() else {
        return Ok(None);
    };
    let rank = out.rank();
    // [.., O, 1, 1] with O on the channel axis (third from the end) of a same-rank output.
    let shape = bias.shape();
    let per_channel = bias.datum_type() == f32::datum_type()
        && shape.len() == rank
        && shape[rank - 3] == channels
        && shape.iter().product::<usize>() == channels;
    if !per_channel || model.outlet_fact(OutletId::new(add.id, 0))?.shape != out.shape {
        return Ok(None);
    }
    Ok(Some(bias.try_as_plain_ram()?.as_slice::<f32>()?.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::tract_core::ops::cnn::PoolSpec;
    use tract_onnx::tract_core::ops::quant::quantize_linear_u8;

    /// A model `x → Quantize(1/scale, zp) → Dequantize(scale, zp)` over a 1-D input of `n` values.
    fn pair_model(scale: f32, zero_point: u8, n: usize) -> TypedModel {
        pair_model_with(scale, zero_point, zero_point, n, false)
    }

    /// [`pair_model`] with separate zero points for the two sides, and with the u8 tensor also a
    /// model output when `expose_quantized`.
    fn pair_model_with(
        scale: f32,
        quant_zero: u8,
        dequant_zero: u8,
        n: usize,
        expose_quantized: bool,
    ) -> TypedModel {
        let mut model = TypedModel::default();
        let x = model.add_source("x", f32::fact([n])).unwrap();
        let q = model
            .wire_node("q", quantize_linear_u8(scale.recip(), quant_zero), &[x])
            .unwrap();
        let y = model
            .wire_node(
                "dq",
                DequantizeLinearF32::new(scale, i32::from(dequant_zero)),
                &q,
            )
            .unwrap();
        let mut outputs = vec![y[0]];
        if expose_quantized {
            outputs.push(q[0]);
        }
        model.select_output_outlets(&outputs).unwrap();
        model
    }

    /// `x → Q → DQ → Conv (kernel: s8 weights folded to f32, bias) → Q → DQ` on a 1×C×H×W input,
    /// decluttered as the loader has it, the table of its integer weights, and an input.
    fn quantized_conv_model(
        channels: usize,
        size: usize,
        out_channels: usize,
        kernel: usize,
        quantized_input: bool,
    ) -> (TypedModel, QuantizedWeights, Vec<f32>) {
        quantized_model(channels, size, out_channels, kernel, quantized_input, 1, 1)
    }

    /// [`quantized_conv_model`] with `groups` groups (a depthwise convolution when there is one
    /// per channel) and a stride, padded as MobileNetV2 pads: "same" at stride 1, bottom and
    /// right only at stride 2.
    fn quantized_model(
        channels: usize,
        size: usize,
        out_channels: usize,
        kernel: usize,
        quantized_input: bool,
        groups: usize,
        stride: usize,
    ) -> (TypedModel, QuantizedWeights, Vec<f32>) {
        let taps = kernel * kernel;
        let per_group = channels / groups;
        let q: Vec<i8> = (0..out_channels * per_group * taps)
            .map(|i| ((i * 37 + 11) % 255) as u8 as i8)
            .collect();
        let scales: Vec<f32> = (0..out_channels)
            .map(|o| 0.002 + 0.0003 * o as f32)
            .collect();
        let bias: Vec<f32> = (0..out_channels).map(|o| 0.1 * o as f32 - 0.3).collect();
        let folded = fold(&q, &scales);
        let mut model = TypedModel::default();
        let x = model
            .add_source("x", f32::fact([1, channels, size, size]))
            .unwrap();
        let mut x = tvec![x];
        if quantized_input {
            x = model
                .wire_node("xq", quantize_linear_u8(1.0 / 0.02, 3), &x)
                .unwrap();
            x = model
                .wire_node("xdq", DequantizeLinearF32::new(0.02, 3), &x)
                .unwrap();
        }
        let k = Tensor::from_shape(&[out_channels, per_group, kernel, kernel], &folded).unwrap();
        let k = model.add_const("kernel", k).unwrap();
        let b = model.add_const("bias", tensor1(&bias)).unwrap();
        let pad = kernel / 2;
        let before = if stride == 2 { 0 } else { pad };
        let spec = PoolSpec::new(
            DataFormat::NCHW,
            tvec![kernel, kernel],
            PaddingSpec::Explicit(tvec![before, before], tvec![pad, pad]),
            None,
            (stride != 1).then(|| tvec![stride, stride]),
            channels,
            out_channels,
        );
        let conv = Conv::new(spec, KernelFormat::OIHW, groups, None);
        let y = model.wire_node("conv", conv, &[x[0], k, b]).unwrap();
        let y = model
            .wire_node("yq", quantize_linear_u8(1.0 / 0.05, 100), &y)
            .unwrap();
        let y = model
            .wire_node("ydq", DequantizeLinearF32::new(0.05, 100), &y)
            .unwrap();
        model.select_output_outlets(&y).unwrap();
        let mut weights = QuantizedWeights::default();
        weights.add(q, scales);
        let input = (0..channels * size * size)
            .map(|i| ((i * 29 % 256) as f32 - 3.0) * 0.02)
            .collect();
        (model.into_decluttered().unwrap(), weights, input)
    }

    fn run_image(model: TypedModel, shape: &[usize], xs: &[f32]) -> Vec<f32> {
        let plan = model.into_optimized().unwrap().into_runnable().unwrap();
        let x = Tensor::from_shape(shape, xs).unwrap();
        let out = plan.run(tvec!(x.into_tvalue())).unwrap();
        out[0]
            .to_plain_array_view::<f32>()
            .unwrap()
            .iter()
            .copied()
            .collect()
    }

    fn op_names(model: &TypedModel) -> Vec<String> {
        model
            .nodes
            .iter()
            .map(|n| n.op().name().to_string())
            .collect()
    }

    /// The portable kernel, and the fastest SIMD one where this CPU has one.
    fn kernels() -> Vec<Kernel> {
        std::iter::once(Kernel::Portable)
            .chain(Kernel::detect())
            .collect()
    }

    /// Both sides are on the output grid (step 0.05); the exact integer sums may round a value
    /// that tract's f32 sums put within float error of a tie to the next step, so they are one
    /// step apart at most and equal in at least 99 % of the outputs.
    fn assert_one_step_apart_at_most(kernel: Kernel, float: &[f32], integer: &[f32]) {
        assert_eq!(float.len(), integer.len());
        let mut same = 0;
        for (a, b) in float.iter().zip(integer) {
            assert!(
                (a - b).abs() <= 0.05 * 1.001,
                "{}: {a} vs {b}",
                kernel.name()
            );
            same += usize::from(a.to_bits() == b.to_bits());
        }
        assert!(
            same * 100 >= float.len() * 99,
            "{}: {same} of {} equal",
            kernel.name(),
            float.len()
        );
    }

    #[test]
    fn quantized_convolutions_become_integer_ones_with_the_same_outputs() {
        // 3x3 stays a Conv after decluttering; 1x1 becomes an EinSum plus a bias Add.
        for (channels, size, out_channels, kernel) in [(12, 9, 10, 3), (20, 6, 16, 1)] {
            let (model, weights, input) =
                quantized_conv_model(channels, size, out_channels, kernel, true);
            let shape = [1, channels, size, size];
            let float = run_image(model.clone(), &shape, &input);
            assert_eq!(float.len(), out_channels * size * size);
            for simd in kernels() {
                let mut rewritten = model.clone();
                let replaced = quantized_convolutions(&mut rewritten, &weights, simd).unwrap();
                assert_eq!(replaced, 1, "{kernel}x{kernel}");
                let names = op_names(&rewritten.clone().into_optimized().unwrap());
                assert!(names.iter().any(|n| n == "QConv"), "{names:?}");
                assert!(
                    !names
                        .iter()
                        .any(|n| (n.contains("Conv") && n != "QConv") || n.contains("MatMul")),
                    "a float convolution is left: {names:?}"
                );
                let integer = run_image(rewritten, &shape, &input);
                assert_one_step_apart_at_most(simd, &float, &integer);
            }
        }
    }

    #[test]
    fn quantized_depthwise_convolutions_become_integer_ones_with_the_same_outputs() {
        for (channels, size, stride) in [(24, 10, 1), (19, 13, 2), (8, 14, 2)] {
            let (model, weights, input) =
                quantized_model(channels, size, channels, 3, true, channels, stride);
            let shape = [1, channels, size, size];
            let float = run_image(model.clone(), &shape, &input);
            // ONNX's floor((size + padding − 3) / stride) + 1, padding 2 or 1.
            let out = if stride == 1 {
                size
            } else {
                (size - 2) / 2 + 1
            };
            assert_eq!(float.len(), channels * out * out);
            for simd in kernels() {
                let mut rewritten = model.clone();
                let replaced = quantized_convolutions(&mut rewritten, &weights, simd).unwrap();
                assert_eq!(replaced, 1, "stride {stride}");
                let names = op_names(&rewritten.clone().into_optimized().unwrap());
                assert!(names.iter().any(|n| n == "QDepthwise"), "{names:?}");
                assert!(
                    !names.iter().any(|n| n.contains("Conv")
                        || n.contains("MatMul")
                        || (n.contains("Depth") && n != "QDepthwise")),
                    "a float convolution is left: {names:?}"
                );
                let integer = run_image(rewritten, &shape, &input);
                assert_one_step_apart_at_most(simd, &float, &integer);
            }
        }
    }

    /// `x → Conv` (a float depthwise convolution with a bias, padded as [`quantized_model`] pads)
    /// on a 1×C×H×W input, decluttered as the loader has it, and an input.
    fn float_depthwise_model(
        channels: usize,
        size: usize,
        stride: usize,
    ) -> (TypedModel, Vec<f32>) {
        let values = |n: usize, k: usize| -> Vec<f32> {
            (0..n)
                .map(|i| ((i * k + 7) % 101) as f32 / 37.0 - 1.3)
                .collect()
        };
        let mut model = TypedModel::default();
        let x = model
            .add_source("x", f32::fact([1, channels, size, size]))
            .unwrap();
        let k = Tensor::from_shape(&[channels, 1, 3, 3], &values(channels * 9, 13)).unwrap();
        let k = model.add_const("kernel", k).unwrap();
        let b = model
            .add_const("bias", tensor1(&values(channels, 5)))
            .unwrap();
        let before = if stride == 2 { 0 } else { 1 };
        let spec = PoolSpec::new(
            DataFormat::NCHW,
            tvec![3, 3],
            PaddingSpec::Explicit(tvec![before, before], tvec![1, 1]),
            None,
            (stride != 1).then(|| tvec![stride, stride]),
            channels,
            channels,
        );
        let conv = Conv::new(spec, KernelFormat::OIHW, channels, None);
        let y = model.wire_node("conv", conv, &[x, k, b]).unwrap();
        let y = model.wire_node("abs", math::abs(), &y).unwrap();
        model.select_output_outlets(&y).unwrap();
        (
            model.into_decluttered().unwrap(),
            values(channels * size * size, 29),
        )
    }

    #[test]
    fn float_depthwise_convolutions_run_on_our_kernel_with_tracts_results() {
        for (channels, size, stride) in [(24, 10, 1), (19, 13, 2), (40, 7, 1)] {
            let (model, input) = float_depthwise_model(channels, size, stride);
            let shape = [1, channels, size, size];
            let tract = run_image(model.clone(), &shape, &input);
            for &simd in Simd::ALL.iter().filter(|s| s.available()) {
                let mut rewritten = model.clone();
                assert_eq!(
                    float_depthwise_convolutions(&mut rewritten, simd).unwrap(),
                    1
                );
                let names = op_names(&rewritten.clone().into_optimized().unwrap());
                assert!(names.iter().any(|n| n == "FloatDepthwise"), "{names:?}");
                assert!(
                    !names
                        .iter()
                        .any(|n| n.contains("Conv")
                            || (n.contains("Depth") && n != "FloatDepthwise")),
                    "tract's convolution is left: {names:?}"
                );
                let ours = run_image(rewritten, &shape, &input);
                assert_eq!(ours.len(), tract.len());
                // The same sums in another order: rounding apart only.
                for (a, b) in tract.iter().zip(&ours) {
                    assert!(
                        (a - b).abs() <= 1e-5 * a.abs().max(1.0),
                        "{simd:?}: {a} vs {b}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_float_pass_leaves_quantized_and_grouped_convolutions_alone() {
        // A quantized depthwise convolution is the integer rewrite's; after it, nothing is left
        // for the float pass. Without it, its kernel is the folded weights, a float one like any.
        let (model, weights, _) = quantized_model(8, 6, 8, 3, true, 8, 1);
        let mut rewritten = model.clone();
        assert_eq!(
            quantized_convolutions(&mut rewritten, &weights, Kernel::Portable).unwrap(),
            1
        );
        assert_eq!(
            float_depthwise_convolutions(&mut rewritten, Simd::Baseline).unwrap(),
            0
        );
        // Two groups of 4 channels, and a dense convolution: not depthwise.
        for groups in [2, 1] {
            let (model, _, _) = quantized_model(8, 5, 8, 3, false, groups, 1);
            let mut rewritten = model;
            assert_eq!(
                float_depthwise_convolutions(&mut rewritten, Simd::Baseline).unwrap(),
                0
            );
        }
    }

    #[test]
    fn a_grouped_convolution_that_is_not_depthwise_is_left_alone() {
        // Two groups of 4 channels: neither one group nor one per channel.
        let (model, weights, _) = quantized_model(8, 5, 8, 3, true, 2, 1);
        let mut rewritten = model;
        assert_eq!(
            quantized_convolutions(&mut rewritten, &weights, Kernel::Portable).unwrap(),
            0
        );
        assert!(op_names(&rewritten).iter().any(|n| n == "Conv"));
    }

    #[test]
    fn a_kernel_that_is_not_the_files_weights_is_left_alone() {
        let (model, weights, _) = quantized_conv_model(8, 5, 8, 3, true);
        // The same weights with one scale one ulp off: the folded kernel differs in some bits.
        let (q, mut scales) = weights.by_hash.into_values().next().unwrap().remove(0);
        scales[2] = f32::from_bits(scales[2].to_bits() + 1);
        let mut other = QuantizedWeights::default();
        other.add(q, scales);
        let mut rewritten = model;
        assert_eq!(
            quantized_convolutions(&mut rewritten, &other, Kernel::Portable).unwrap(),
            0
        );
        assert!(op_names(&rewritten).iter().any(|n| n == "Conv"));
    }

    #[test]
    fn a_convolution_of_float_activations_is_left_alone() {
        // The same convolution and weights, its input straight from the source: nothing says
        // the activations are quantized, so the integer form would not compute the same thing.
        let (model, weights, _) = quantized_conv_model(8, 5, 8, 3, false);
        let mut patched = model;
        assert_eq!(
            quantized_convolutions(&mut patched, &weights, Kernel::Portable).unwrap(),
            0
        );
    }

    fn run(model: TypedModel, xs: &[f32]) -> Vec<f32> {
        run_image(model, &[xs.len()], xs)
    }

    #[test]
    fn the_fused_pair_computes_what_tracts_operators_compute() {
        // Values on and around every rounding tie, both clamp edges, zeros and far out of range.
        let scale = 0.037_f32;
        let mut xs: Vec<f32> = (-400..400)
            .flat_map(|i| {
                let tie = (i as f32 + 0.5) * scale;
                [tie, f32::from_bits(tie.to_bits() + 1), i as f32 * scale]
            })
            .collect();
        xs.extend([0.0, -0.0, 1e6, -1e6]);
        for zero_point in [0u8, 3, 128, 255] {
            let reference = run(pair_model(scale, zero_point, xs.len()), &xs);
            let mut model = pair_model(scale, zero_point, xs.len());
            assert_eq!(fuse_quantize_dequantize(&mut model, Pairs::All).unwrap(), 1);
            let names: Vec<String> = model
                .nodes
                .iter()
                .map(|n| n.op.name().to_string())
                .collect();
            assert!(
                !names
                    .iter()
                    .any(|n| n.contains("QuantizeLinear") || n.contains("DequantizeLinear")),
                "the pair is still in the graph: {names:?}"
            );
            let fused = run(model, &xs);
            for ((x, r), f) in xs.iter().zip(&reference).zip(&fused) {
                assert_eq!(
                    r.to_bits(),
                    f.to_bits(),
                    "x = {x:e}, zero point {zero_point}: tract {r:e}, fused {f:e}"
                );
            }
        }
    }

    #[test]
    fn a_quantized_tensor_with_another_consumer_is_left_alone() {
        let mut model = pair_model_with(0.5, 0, 0, 4, true);
        assert_eq!(fuse_quantize_dequantize(&mut model, Pairs::All).unwrap(), 0);
    }

    #[test]
    fn a_pair_with_different_zero_points_is_left_alone() {
        let mut model = pair_model_with(0.5, 10, 0, 4, false);
        assert_eq!(fuse_quantize_dequantize(&mut model, Pairs::All).unwrap(), 0);
    }
}
