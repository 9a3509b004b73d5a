//! Reading a convolution out of tract's graph, for the passes that replace convolutions: its shape,
//! constant kernel and bias, whether it is a `Conv` or the `EinSum` a 1×1 convolution becomes, and a
//! per-channel bias added after it.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::binary::TypedBinOp;
use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat, PaddingSpec};
use tract_onnx::tract_core::ops::einsum::EinSum;
use tract_onnx::tract_core::ops::math;
use tract_onnx::tract_core::ops::nn::DataFormat;

use crate::inference::qconv::{DepthwiseGeometry, Geometry};

/// The shapes of a convolution the rewrite can replace.
pub(super) enum Shape {
    /// One group; stride 1, or 2 in both axes where [`Convolution::stride_two`] says so.
    Dense(Geometry),
    /// One group per channel, one output channel per group.
    Depthwise(DepthwiseGeometry),
}

/// An f32 convolution over a CHW image with a constant kernel.
pub(super) struct Convolution {
    pub(super) shape: Shape,
    /// OIHW (a 1×1 convolution's OI; a depthwise one's `[C][1][kh][kw]`).
    pub(super) kernel: Arc<Tensor>,
    pub(super) bias: Option<Vec<f32>>,
    /// A dense convolution with stride 2 in both axes (its [`Geometry`] is the stride-1 one with
    /// the same input, kernel and padding).
    pub(super) stride_two: bool,
}

/// The node as a [`Convolution`], if it is one.
pub(super) fn convolution(
    model: &TypedModel,
    node: &TypedNode,
) -> TractResult<Option<Convolution>> {
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
            stride_two: false,
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
        || (stride != [1, 1] && !depthwise && stride != [2, 2])
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
    let stride_two = !depthwise && stride == [2, 2];
    let (oh, ow) = match &shape {
        Shape::Dense(g) if stride_two => {
            let (hp, wp) = (height + pad[0] + pad[2], width + pad[1] + pad[3]);
            ((hp - g.kernel[0]) / 2 + 1, (wp - g.kernel[1]) / 2 + 1)
        }
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
        stride_two,
    }))
}

/// Whether `model` has a depthwise convolution (a `Conv` with one group per input channel) that
/// no pass replaced. Reads only the operators: the answer is the same before and after tract's
/// declutter.
pub(super) fn has_depthwise(model: &TypedModel) -> bool {
    model.nodes.iter().any(|node| {
        node.op_as::<Conv>()
            .is_some_and(|c| c.group > 1 && c.group == c.pool_spec.input_channels)
    })
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

/// When `bias` is none and the node after `last` adds one value per output channel to it (`+ bias`
/// as a separate add): takes those values, and that node as absorbed and as the new `last`.
pub(super) fn absorb_bias(
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

/// When the nodes after `last` are a `Max` with one number and then a `Min` with another (ONNX's
/// `Clip`, e.g. ReLU6), each the only user of the node before it: returns the two numbers (low,
/// high) and takes both nodes as absorbed, the `Min` as the new `last`.
pub(super) fn absorb_clip(
    model: &TypedModel,
    absorbed: &mut Vec<usize>,
    last: &mut usize,
) -> TractResult<Option<[f32; 2]>> {
    let Some(max) = model.single_succ(*last)? else {
        return Ok(None);
    };
    let Some(low) = scalar_operand::<math::Max>(model, max, *last)? else {
        return Ok(None);
    };
    let Some(min) = model.single_succ(max.id)? else {
        return Ok(None);
    };
    let Some(high) = scalar_operand::<math::Min>(model, min, max.id)? else {
        return Ok(None);
    };
    absorbed.extend([max.id, min.id]);
    *last = min.id;
    Ok(Some([low, high]))
}

/// When `conv`'s input is a `Min` with one number of a `Max` with another (ONNX's `Clip`, e.g. the
/// ReLU6 of the layer before), each read by nothing else and neither in `claimed` (taken by an
/// operator before): returns the two numbers (low, high) and the `Max`'s input, which the operator
/// reads instead, and takes both nodes as absorbed.
pub(super) fn absorb_input_clip(
    model: &TypedModel,
    conv: &TypedNode,
    claimed: &[usize],
    absorbed: &mut Vec<usize>,
) -> TractResult<Option<([f32; 2], OutletId)>> {
    // `node`'s first output, when it is the only one `next` reads and nothing else does.
    let only_into = |node: usize, next: usize| -> TractResult<bool> {
        let outlet = OutletId::new(node, 0);
        Ok(model.nodes[node].outputs.len() == 1
            && !model.outputs.contains(&outlet)
            && !claimed.contains(&node)
            && model.single_succ(node)?.is_some_and(|n| n.id == next))
    };
    let Some(&into_conv) = conv.inputs.first() else {
        return Ok(None);
    };
    let min = &model.nodes[into_conv.node];
    if into_conv.slot != 0 || !only_into(min.id, conv.id)? {
        return Ok(None);
    }
    let Some(&into_min) = min.inputs.first() else {
        return Ok(None);
    };
    let max = &model.nodes[into_min.node];
    if !only_into(max.id, min.id)? {
        return Ok(None);
    }
    let Some(&input) = max.inputs.first() else {
        return Ok(None);
    };
    if input.slot != 0 {
        return Ok(None);
    }
    let Some(high) = scalar_operand::<math::Min>(model, min, max.id)? else {
        return Ok(None);
    };
    let Some(low) = scalar_operand::<math::Max>(model, max, input.node)? else {
        return Ok(None);
    };
    absorbed.extend([max.id, min.id]);
    Ok(Some(([low, high], input)))
}

/// The number `node` combines node `from`'s output with, when `node` is an f32 binary `Op` of that
/// output and one constant number, with the output's shape.
pub(super) fn scalar_operand<Op: tract_onnx::tract_core::ops::binary::BinMiniOp>(
    model: &TypedModel,
    node: &TypedNode,
    from: usize,
) -> TractResult<Option<f32>> {
    let is_op = node
        .op_as::<TypedBinOp>()
        .is_some_and(|op| op.0.is::<Op>() && op.1.is_none());
    if !is_op || node.inputs.len() != 2 || node.inputs[0] != OutletId::new(from, 0) {
        return Ok(None);
    }
    let Some(k) = model.outlet_fact(node.inputs[1])?.konst.clone() else {
        return Ok(None);
    };
    let input = model.outlet_fact(OutletId::new(from, 0))?;
    if k.datum_type() != f32::datum_type()
        || k.len() != 1
        || input.datum_type != f32::datum_type()
        || model.outlet_fact(OutletId::new(node.id, 0))?.shape != input.shape
    {
        return Ok(None);
    }
    let v = k.try_as_plain_ram()?.as_slice::<f32>()?[0];
    Ok((!v.is_nan()).then_some(v))
}
