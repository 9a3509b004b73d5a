//! The layout passes, copies that tract makes through generic strided views: the transpose of a
//! channels-last input to the channels-first layout its convolutions read becomes prescreen's
//! [`ChannelsFirst`], and the subsampling before a strided 1×1 convolution its [`Subsample`] (the
//! same values: copies).

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::change_axes::AxisOp;
use tract_onnx::tract_core::ops::Downsample;

use crate::inference::qconv::{ChannelsFirst, Subsample};

/// Replaces each f32 `[1, H, W, C] → [1, C, H, W]` move of axes (what tract makes of ONNX's
/// `Transpose` with `perm = [0, 3, 1, 2]`; `[H, W, C] → [C, H, W]` too) with a [`ChannelsFirst`].
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
        if let Some(op) = ChannelsFirst::new(shape) {
            found.push((node.id, op));
        }
    }
    let replaced = found.len();
    for (id, op) in found {
        super::replace(model, id, id, &[], "channels_first", op)?;
    }
    Ok(replaced)
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
