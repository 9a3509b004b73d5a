//! The layout passes, copies that tract makes through generic strided views: the transpose of a
//! channels-last input to the channels-first layout its convolutions read becomes prescreen's
//! [`ChannelsFirst`], and the subsampling before a strided 1×1 convolution its [`Subsample`] (the
//! same values: copies). One pass moves no copy but a subsampling: [`subsample_before_einsums`]
//! puts it before the 1×1 convolution whose output it thins.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::change_axes::{AxisOp, InOut};
use tract_onnx::tract_core::ops::cnn::{Conv, PaddingSpec};
use tract_onnx::tract_core::ops::einsum::EinSum;
use tract_onnx::tract_core::ops::nn::DataFormat;
use tract_onnx::tract_core::ops::{Downsample, TypedOp};

use crate::inference::qconv::{ChannelsFirst, Subsample};

/// Replaces each f32 `[1, H, W, C] → [1, C, H, W]` move of axes (what tract makes of ONNX's
/// `Transpose` with `perm = [0, 3, 1, 2]`; `[H, W, C] → [C, H, W]` too) with a [`ChannelsFirst`].
/// When its one reader is an f32 convolution that pads its input, the planes are written padded
/// and the convolution pads no more (tract would pad them in a single-threaded pass of its own).
/// Returns how many were replaced.
pub(crate) fn channels_first(model: &mut TypedModel) -> TractResult<usize> {
    let mut found = vec![];
    for node in &model.nodes {
        let Some(&AxisOp::Move(from, to)) = node.op_as::<AxisOp>() else {
            continue;
        };
        let fact = model.outlet_fact(node.inputs[0])?;
        let Some(shape) = fact.shape.as_concrete() else {
            continue;
        };
        let rank = shape.len();
        if fact.datum_type != f32::datum_type() || rank < 3 || (from, to) != (rank - 1, rank - 3) {
            continue;
        }
        let Some(op) = ChannelsFirst::new(shape) else {
            continue;
        };
        let padded = padding_of_reader(model, node)?
            .and_then(|(pad, conv, valid)| Some((op.clone().with_padding(pad)?, conv, valid)));
        match padded {
            Some((op, conv, valid)) => found.push((node.id, op, Some((conv, valid)))),
            None => found.push((node.id, op, None)),
        }
    }
    let replaced = found.len();
    for (id, op, reader) in found {
        let Some((conv, valid)) = reader else {
            super::replace(model, id, id, &[], "channels_first", op)?;
            continue;
        };
        let (node, reader) = (&model.nodes[id], &model.nodes[conv]);
        let mut patch = TypedModelPatch::default();
        let x = patch.tap_model(model, node.inputs[0])?;
        let planes = patch.wire_node(format!("{}.channels_first", node.name), op, &[x])?[0];
        let mut inputs = patch.taps(model, &reader.inputs)?;
        inputs[0] = planes;
        let y = patch.wire_node(format!("{}.unpadded", reader.name), valid, &inputs)?[0];
        patch.shunt_outside(model, OutletId::new(conv, 0), y)?;
        patch.obliterate(id)?;
        patch.obliterate(conv)?;
        patch.apply(model)?;
    }
    Ok(replaced)
}

/// When the one reader of `node`'s output (channels-first planes) is an f32 convolution of it
/// that pads them: that padding (top, left, bottom, right), the convolution's node, and the
/// convolution without padding, which gives the same output from the padded planes.
fn padding_of_reader(
    model: &TypedModel,
    node: &TypedNode,
) -> TractResult<Option<([usize; 4], usize, Conv)>> {
    let planes = OutletId::new(node.id, 0);
    let Some(reader) = model.single_succ(node.id)? else {
        return Ok(None);
    };
    let Some(conv) = reader.op_as::<Conv>() else {
        return Ok(None);
    };
    let chw = matches!(
        conv.pool_spec.data_format,
        DataFormat::NCHW | DataFormat::CHW
    );
    if model.outputs.contains(&planes) || reader.inputs[0] != planes || !chw {
        return Ok(None);
    }
    if conv.q_params.is_some() || reader.inputs[1..].contains(&planes) {
        return Ok(None);
    }
    let fact = model.outlet_fact(planes)?;
    let Some(shape) = fact.shape.as_concrete() else {
        return Ok(None);
    };
    let rank = shape.len();
    let computed = conv.pool_spec.computed_padding(&shape[rank - 2..]);
    let [rows, columns] = &computed[..] else {
        return Ok(None);
    };
    let pad = [
        rows.pad_before,
        columns.pad_before,
        rows.pad_after,
        columns.pad_after,
    ];
    if pad == [0; 4] {
        return Ok(None);
    }
    let mut valid = conv.clone();
    valid.pool_spec.padding = PaddingSpec::Valid;
    // The same output shape from the padded planes, or the padding is not what it seems (a
    // pooling-style rounding).
    let grown = |n: usize, before: usize, after: usize| n.checked_add(before)?.checked_add(after);
    let mut padded_shape = shape.to_vec();
    let (Some(ph), Some(pw)) = (
        grown(shape[rank - 2], pad[0], pad[2]),
        grown(shape[rank - 1], pad[1], pad[3]),
    ) else {
        return Ok(None);
    };
    padded_shape[rank - 2] = ph;
    padded_shape[rank - 1] = pw;
    let mut facts: TVec<TypedFact> = tvec![f32::fact(padded_shape)];
    for input in &reader.inputs[1..] {
        facts.push(model.outlet_fact(*input)?.clone());
    }
    let facts: TVec<&TypedFact> = facts.iter().collect();
    let Ok(out) = valid.output_facts(&facts) else {
        return Ok(None);
    };
    let was = model.outlet_fact(OutletId::new(reader.id, 0))?;
    if out[0].shape != was.shape || out[0].datum_type != was.datum_type {
        return Ok(None);
    }
    Ok(Some((pad, reader.id, valid)))
}

/// Replaces tract's `Downsample`s of the last two axes of an f32 tensor (positive stride) with a
/// [`Subsample`]: a row `Downsample` whose one reader is a column `Downsample` (or the other way
/// round) becomes one operator. Returns how many `Downsample`s were replaced.
pub(crate) fn subsamples(model: &mut TypedModel) -> TractResult<usize> {
    // (first node, last node, operator), the nodes in between being the pair's.
    let mut found: Vec<(usize, usize, Subsample)> = vec![];
    let mut taken = std::collections::HashSet::new();
    let outputs = model.output_outlets()?.to_vec();
    for node in &model.nodes {
        if taken.contains(&node.id) {
            continue;
        }
        let Some((axis, stride, offset)) = spatial_downsample(model, node)? else {
            continue;
        };
        let fact = model.outlet_fact(node.inputs[0])?;
        let Some(shape) = fact.shape.as_concrete() else {
            continue;
        };
        let (mut strides, mut offsets) = ([1, 1], [0, 0]);
        strides[axis] = stride;
        offsets[axis] = offset;
        let mut last = node.id;
        // Its one reader, on the other axis.
        let readers = &node.outputs[0].successors;
        if let [reader] = &readers[..] {
            let next = &model.nodes[reader.node];
            if let Some((other, s, o)) = spatial_downsample(model, next)? {
                if other != axis && !outputs.contains(&OutletId::new(node.id, 0)) {
                    strides[other] = s;
                    offsets[other] = o;
                    last = next.id;
                }
            }
        }
        if let Some(op) = Subsample::new(shape, strides, offsets) {
            taken.insert(node.id);
            taken.insert(last);
            found.push((node.id, last, op));
        }
    }
    let replaced = taken.len();
    for (first, last, op) in found {
        let absorbed: &[usize] = if last == first { &[] } else { &[last] };
        super::replace(model, first, last, absorbed, "subsample", op)?;
    }
    Ok(replaced)
}

/// A `Downsample` of one of the last two axes (0: rows, 1: columns) of a concrete f32 tensor,
/// forwards: (that axis, stride, offset).
fn spatial_downsample(
    model: &TypedModel,
    node: &TypedNode,
) -> TractResult<Option<(usize, usize, usize)>> {
    let Some(down) = node.op_as::<Downsample>() else {
        return Ok(None);
    };
    let fact = model.outlet_fact(node.inputs[0])?;
    let rank = fact.rank();
    if fact.datum_type != f32::datum_type() || rank < 2 || down.stride < 1 || down.axis + 2 < rank {
        return Ok(None);
    }
    Ok(Some((
        down.axis + 2 - rank,
        down.stride as usize,
        down.modulo,
    )))
}

/// Moves each `Downsample` that thins an f32 `EinSum`'s output (its only reader) to the one input
/// that carries the thinned axis, then lets tract pull it on up as its declutter does: the same
/// values, from fewer sums. tract's declutter pulls a subsampling up through element-wise operators
/// (into a `Conv` as its stride) but stops at an `EinSum`. In a ResNet it pulls the next stage's
/// stride-2 subsampling through the last residual add of a stage and the quantize/dequantize pair
/// and bias add before it, up to that block's last 1×1 convolution, which then ends at its
/// `EinSum` and leaves its bias and pair to tract. Moved, the 1×1 convolution reads a subsampled
/// input (as a strided one does), [`super::quantized_convolutions`] takes its bias and pair again,
/// and the 3×3 convolution before it computes only the values read: it becomes strided. Returns how
/// many subsamplings were moved over an `EinSum`.
///
/// The axis must be one the sum does not run over, on exactly one input at its full length:
/// then each kept output value is the sum it was, of the kept input values. Only a subsampling
/// from offset 0 (a strided convolution's) moves, and only where it then goes on up into a
/// convolution or past it: tract strides a `Conv` by a subsampling as if it were from offset 0
/// and its padding explicit, so one it cannot take exactly (from another offset, or `SAME`
/// padding, which a stride splits anew) stays after the `EinSum`.
pub(crate) fn subsample_before_einsums(model: &mut TypedModel) -> TractResult<usize> {
    let mut moved = 0;
    // Subsamplings left where they are: ids survive patches (a patch appends its nodes).
    let mut refused = std::collections::HashSet::new();
    while let Some((down, input, axis)) = einsum_to_thin(model, &refused)? {
        // On a copy, kept only if the subsampling then stops nowhere tract would stride a
        // convolution by it wrongly: tract's own declutter, run again when the plan is
        // optimised, would take it there.
        let mut trial = model.clone();
        move_before_einsum(&mut trial, down, input, axis)?;
        pull_up(&mut trial)?;
        let stuck = trial.nodes.iter().any(|node| {
            node.op_is::<Downsample>() && trial.nodes[node.inputs[0].node].op_is::<Conv>()
        });
        if stuck {
            refused.insert(down);
        } else {
            *model = trial;
            moved += 1;
        }
    }
    Ok(moved)
}

/// Moves `down`, which thins the output of the `EinSum` before it, to that sum's input `input`
/// (its axis `axis` there).
fn move_before_einsum(
    model: &mut TypedModel,
    down: usize,
    input: usize,
    axis: usize,
) -> TractResult<()> {
    let node = &model.nodes[down];
    let sum = &model.nodes[node.inputs[0].node];
    let mut op = node
        .op_as::<Downsample>()
        .expect("einsum_to_thin returns a Downsample")
        .clone();
    op.axis = axis;
    let mut patch = TypedModelPatch::default();
    let mut inputs = patch.taps(model, &sum.inputs)?;
    inputs[input] = patch.wire_node(&node.name, op, &[inputs[input]])?[0];
    let y = patch.wire_node(&sum.name, sum.op.clone(), &inputs)?[0];
    patch.shunt_outside(model, OutletId::new(down, 0), y)?;
    patch.obliterate(sum.id)?;
    patch.obliterate(down)?;
    patch.apply(model)
}

/// tract's declutter of every `Downsample` it can pull on up exactly ([`strides_exactly`]), to
/// its fixed point. The graph was at that point before the move: only what moved (and what its
/// move lets move) is pulled.
fn pull_up(model: &mut TypedModel) -> TractResult<()> {
    // Each pull moves a subsampling one operator up, so a graph of n nodes takes fewer than n²
    // of them.
    let steps = model.nodes.len().pow(2) + 1;
    for _ in 0..steps {
        let mut pulled = None;
        for node in &model.nodes {
            let Some(down) = node.op_as::<Downsample>() else {
                continue;
            };
            if strides_exactly(model, node, down) {
                pulled = down.declutter(model, node)?;
                if pulled.is_some() {
                    break;
                }
            }
        }
        match pulled {
            Some(patch) => patch.apply(model)?,
            None => return Ok(()),
        }
    }
    tract_onnx::tract_core::internal::bail!("subsamplings still moving after {steps} steps")
}

/// Whether tract's pull of `down` (read from `node`) gives the same values: a pull into a `Conv`
/// strides it as if the subsampling were from offset 0 and its padding stayed where it is, so
/// the subsampling must be from 0 and the padding explicit (`SAME` padding is split anew for the
/// new stride).
fn strides_exactly(model: &TypedModel, node: &TypedNode, down: &Downsample) -> bool {
    let before = &model.nodes[node.inputs[0].node];
    before.op_as::<Conv>().is_none_or(|conv| {
        down.modulo == 0
            && matches!(
                conv.pool_spec.padding,
                PaddingSpec::Explicit(..) | PaddingSpec::Valid
            )
    })
}

/// The first `Downsample` [`subsample_before_einsums`] can move and has not `refused`: its node, which input of the
/// `EinSum` before it carries the thinned axis, and that axis's position in the input.
fn einsum_to_thin(
    model: &TypedModel,
    refused: &std::collections::HashSet<usize>,
) -> TractResult<Option<(usize, usize, usize)>> {
    let outputs = model.output_outlets()?;
    for node in &model.nodes {
        let Some(down) = node.op_as::<Downsample>() else {
            continue;
        };
        if refused.contains(&node.id) {
            continue;
        }
        let from = node.inputs[0];
        let sum = &model.nodes[from.node];
        let Some(einsum) = sum.op_as::<EinSum>() else {
            continue;
        };
        let only_reader = model.single_succ(sum.id)?.is_some_and(|n| n.id == node.id);
        if !only_reader
            || down.modulo != 0
            || sum.outputs.len() != 1
            || outputs.contains(&from)
            || down.stride < 1
            || einsum.q_params.is_some()
            || model.outlet_fact(from)?.datum_type != f32::datum_type()
        {
            continue;
        }
        let Ok(axis) = einsum.axes.axis((InOut::Out(0), down.axis)) else {
            continue;
        };
        let carriers: Vec<(usize, usize)> = axis
            .inputs
            .iter()
            .enumerate()
            .filter_map(|(i, at)| at.first().map(|&a| (i, a)))
            .collect();
        let [(input, at)] = carriers[..] else {
            continue;
        };
        let full = model.outlet_fact(from)?.shape[down.axis].clone();
        if axis.outputs.len() != 1
            || axis.outputs[0].len() != 1
            || axis.inputs[input].len() != 1
            || model.outlet_fact(sum.inputs[input])?.shape[at] != full
        {
            continue;
        }
        return Ok(Some((node.id, input, at)));
    }
    Ok(None)
}
