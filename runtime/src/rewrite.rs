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

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::element_wise::ElementWiseOp;
use tract_onnx::tract_core::ops::math;
use tract_onnx::tract_core::ops::quant::{DequantizeLinearF32, QuantizeLinearU8};

/// `1.5 · 2²³`: adding then subtracting it rounds an f32 below 2²² in magnitude to an integer, ties
/// to even.
const ROUNDING_BIAS: f32 = 12_582_912.0;

/// Replaces each `QuantizeLinear(u8) → DequantizeLinear(f32)` pair whose quantized tensor feeds only
/// the dequantization by the equivalent f32 arithmetic. Returns how many pairs were fused.
pub(crate) fn fuse_quantize_dequantize(model: &mut TypedModel) -> TractResult<usize> {
    let mut fused = 0;
    // Patching renumbers nothing that is still to be visited: each patch removes two nodes and
    // appends its own at the end, so walking the original ids and re-reading each node is safe.
    for id in 0..model.nodes.len() {
        let Some((scale_inv, zero_point, scale, dequant)) = pair_at(model, id)? else {
            continue;
        };
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

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::tract_core::ops::quant::quantize_linear_u8;

    /// A model `x → Quantize(1/scale, zp) → Dequantize(scale, zp)` over a 1-D input of `n` values.
    fn pair_model(scale: f32, zero_point: u8, n: usize) -> TypedModel {
        let mut model = TypedModel::default();
        let x = model.add_source("x", f32::fact([n])).unwrap();
        let q = model
            .wire_node("q", quantize_linear_u8(scale.recip(), zero_point), &[x])
            .unwrap();
        let y = model
            .wire_node(
                "dq",
                DequantizeLinearF32::new(scale, i32::from(zero_point)),
                &q,
            )
            .unwrap();
        model.select_output_outlets(&y).unwrap();
        model
    }

    fn run(model: TypedModel, xs: &[f32]) -> Vec<f32> {
        let plan = model.into_optimized().unwrap().into_runnable().unwrap();
        let out = plan.run(tvec!(tensor1(xs).into_tvalue())).unwrap();
        out[0]
            .to_plain_array_view::<f32>()
            .unwrap()
            .iter()
            .copied()
            .collect()
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
            assert_eq!(fuse_quantize_dequantize(&mut model).unwrap(), 1);
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
        let mut model = TypedModel::default();
        let x = model.add_source("x", f32::fact([4])).unwrap();
        let q = model
            .wire_node("q", quantize_linear_u8(2.0, 0), &[x])
            .unwrap();
        let y = model
            .wire_node("dq", DequantizeLinearF32::new(0.5, 0), &q)
            .unwrap();
        model.select_output_outlets(&[y[0], q[0]]).unwrap();
        assert_eq!(fuse_quantize_dequantize(&mut model).unwrap(), 0);
    }

    #[test]
    fn a_pair_with_different_zero_points_is_left_alone() {
        let mut model = TypedModel::default();
        let x = model.add_source("x", f32::fact([4])).unwrap();
        let q = model
            .wire_node("q", quantize_linear_u8(2.0, 10), &[x])
            .unwrap();
        let y = model
            .wire_node("dq", DequantizeLinearF32::new(0.5, 0), &q)
            .unwrap();
        model.select_output_outlets(&y).unwrap();
        assert_eq!(fuse_quantize_dequantize(&mut model).unwrap(), 0);
    }
}
