//! The fused fake quantization pass: each `QuantizeLinear → DequantizeLinear` pair of a QDQ file
//! becomes the f32 arithmetic it stands for.
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

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::binary::TypedBinOp;
use tract_onnx::tract_core::ops::cnn::Conv;
use tract_onnx::tract_core::ops::element_wise::ElementWiseOp;
use tract_onnx::tract_core::ops::math;
use tract_onnx::tract_core::ops::quant::{DequantizeLinearF32, QuantizeLinearU8};

use crate::inference::qconv::ResidualAdd;

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
    ///
    /// [`quantized_convolutions`]: super::quantized_convolutions
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

/// If node `id` quantizes f32 to u8 and its only consumer dequantizes with the same scale and zero
/// point: (1/scale as stored by tract, zero point, scale, dequantize node id).
pub(super) fn pair_at(model: &TypedModel, id: usize) -> TractResult<Option<(f32, u8, f32, usize)>> {
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

/// Replaces each add of two f32 activations of one shape whose sum only goes through a
/// quantize/dequantize pair (a QDQ file's residual add) by a [`ResidualAdd`], which computes the
/// same values as the add and the fused pair, over the model's pool. Run before the last
/// [`fuse_quantize_dequantize`]. Returns how many were replaced.
pub(crate) fn residual_adds(model: &mut TypedModel) -> TractResult<usize> {
    let mut found = vec![];
    for id in 0..model.nodes.len() {
        let node = &model.nodes[id];
        let is_add = node
            .op_as::<TypedBinOp>()
            .is_some_and(|op| op.0.is::<math::Add>() && op.1.is_none());
        if !is_add || node.inputs.len() != 2 || model.outputs.contains(&OutletId::new(id, 0)) {
            continue;
        }
        let out = model.outlet_fact(OutletId::new(id, 0))?;
        let Some(shape) = out.shape.as_concrete() else {
            continue;
        };
        let mut same = out.datum_type == f32::datum_type();
        for input in &node.inputs {
            let fact = model.outlet_fact(*input)?;
            same &= fact.konst.is_none()
                && fact.datum_type == f32::datum_type()
                && fact.shape.as_concrete() == Some(shape);
        }
        let Some(quant) = model.single_succ(id)? else {
            continue;
        };
        let Some((inv_scale, zero_point, scale, dequant)) = pair_at(model, quant.id)? else {
            continue;
        };
        if !same {
            continue;
        }
        let Ok(op) = ResidualAdd::new(inv_scale, zero_point, scale, shape.into()) else {
            continue;
        };
        found.push((id, quant.id, dequant, op));
    }
    let replaced = found.len();
    for (add, quant, dequant, op) in found {
        let node = &model.nodes[add];
        let mut patch = TypedModelPatch::default();
        let a = patch.tap_model(model, node.inputs[0])?;
        let b = patch.tap_model(model, node.inputs[1])?;
        let y = patch.wire_node(format!("{}.residual", node.name), op, &[a, b])?[0];
        patch.shunt_outside(model, OutletId::new(dequant, 0), y)?;
        for id in [add, quant, dequant] {
            patch.obliterate(id)?;
        }
        patch.apply(model)?;
    }
    Ok(replaced)
}
