//! The integer convolution pass: convolutions of quantized activations by quantized weights become
//! prescreen's integer convolutions ([`QConv`], [`QDepthwise`]), bias and requantization included.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::quant::DequantizeLinearF32;
use tract_onnx::tract_core::ops::Downsample;

use super::convolution::{absorb_bias, convolution, has_depthwise, Convolution, Shape};
use super::fuse::pair_at;
use super::weights::QuantizedWeights;
use crate::inference::qconv::{Kernel, QConv, QDepthwise, Requantize, SpaceToDepth};

/// An integer convolution operator: dense (a stride-2 one after its input's [`SpaceToDepth`]) or
/// depthwise.
enum Integer {
    Dense(QConv),
    Strided(SpaceToDepth, QConv),
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
/// with stride 1, or the `EinSum` a 1×1 convolution becomes) with a [`QConv`], each one with
/// stride 2 (open_nsfw's first, 7×7) with a [`SpaceToDepth`] and a [`QConv`], and each depthwise
/// one (a `Conv` with one group per channel, stride 1 to 4, at most 4 wide) with a [`QDepthwise`],
/// absorbing the bias and the output's quantize/dequantize pair when they follow. Returns how many
/// were replaced.
///
/// Only a convolution whose input comes from a `DequantizeLinear` of u8 (through `Downsample`, a
/// strided 1×1 convolution's subsampling, at most) and whose kernel is exactly the folding of the
/// file's s8 weights is replaced: its integer form then computes what the float graph means.
/// The integer convolutions run on `kernel`; where it has no depthwise twin, a model with depthwise
/// convolutions keeps them all in f32 (nothing is replaced).
pub(crate) fn quantized_convolutions(
    model: &mut TypedModel,
    weights: &QuantizedWeights,
    kernel: Kernel,
) -> TractResult<usize> {
    if left_to_tract(model, kernel) {
        return Ok(0);
    }
    let mut candidates = vec![];
    for id in 0..model.nodes.len() {
        if let Some(c) = candidate(model, weights, id)? {
            candidates.push(c);
        }
    }
    let replaced = candidates.len();
    for c in candidates {
        match c.op {
            Integer::Dense(op) => {
                let op = op.with_kernel(kernel);
                super::replace(model, c.conv, c.last, &c.absorbed, "qconv", op)?
            }
            Integer::Strided(blocks, op) => {
                let op = op.with_kernel(kernel);
                let chain: [(&str, Box<dyn TypedOp>); 2] =
                    [("blocks", Box::new(blocks)), ("qconv", Box::new(op))];
                super::replace_chain(model, c.conv, c.last, &c.absorbed, chain)?
            }
            Integer::Depthwise(op) => {
                let op = op.with_kernel(kernel);
                super::replace(model, c.conv, c.last, &c.absorbed, "qdepthwise", op)?
            }
        }
    }
    Ok(replaced)
}

/// Whether [`quantized_convolutions`] leaves `model` to tract whole on `kernel`: the kernel has no
/// depthwise twin (`Kernel::Neon`) and the model has a depthwise convolution. Its dense layers in
/// integer and its depthwise ones in f32 measured slower than all in f32 (nsfwjs int8 at
/// `cortex-a72`: 206.4 M instructions per inference, 225.0 M without tract's `ChangeAxes`,
/// against 154.7 M). Reads only the operators: no weights are packed for a model left alone.
pub(super) fn left_to_tract(model: &TypedModel, kernel: Kernel) -> bool {
    !kernel.runs_depthwise() && has_depthwise(model)
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
        stride_two,
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
        Shape::Dense(g) if stride_two => {
            let batch = model.outlet_fact(node.inputs[0])?.rank() == 4;
            let Some((blocks, stacked, stacked_q)) = SpaceToDepth::stride_two(&g, &q, batch) else {
                return Ok(None);
            };
            QConv::new(
                stacked,
                in_scale,
                in_zero,
                &stacked_q,
                &scales,
                bias.as_deref(),
                requantize,
                out_shape,
            )
            .map(|op| Integer::Strided(blocks, op))
        }
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
