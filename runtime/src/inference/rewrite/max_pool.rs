//! The max pool pass: tract's f32 `MaxPool` over a CHW image becomes prescreen's
//! [`FloatMaxPool`], which computes the same values bit for bit, with the ReLU before it and the
//! quantize/dequantize pair after it where there are such.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::cnn::{MaxPool, PaddingSpec};
use tract_onnx::tract_core::ops::math;
use tract_onnx::tract_core::ops::nn::DataFormat;

use super::convolution::scalar_operand;
use super::fuse::pair_at;
use crate::inference::qconv::{
    same_padding, FloatMaxPool, PoolGeometry, PoolOutput, Requantize, Simd,
};

/// What [`max_pools`] replaced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Pools {
    /// Max pools now [`FloatMaxPool`]s.
    pub(crate) pools: usize,
    /// Quantize/dequantize pairs after them that they took (f32 arithmetic in the pool).
    pub(crate) pairs: usize,
}

/// One pool the pass replaces, found before any patch is applied.
struct Found {
    pool: usize,
    op: FloatMaxPool,
    /// The ReLU before the pool (its `Max`'s input is the operator's) and the pair's two nodes.
    absorbed: Vec<usize>,
    input: OutletId,
    /// The node whose output the operator's replaces.
    last: usize,
}

/// Replaces each 2-D f32 max pool over one channel-first image (no dilation, explicit, `SAME` or no
/// padding, no index output, a shape [`PoolGeometry::is_valid`] takes, not 2×2) with a
/// [`FloatMaxPool`] on `simd`, which takes a ReLU-like `Max` with one number before it and a
/// quantize/dequantize pair after it where each is the other's only reader (`qconv::max_pool`).
pub(crate) fn max_pools(model: &mut TypedModel, simd: Simd) -> TractResult<Pools> {
    let mut found = vec![];
    for node in &model.nodes {
        let Some(pool) = node.op_as::<MaxPool>() else {
            continue;
        };
        let Some(geometry) = geometry(model, node, pool)? else {
            continue;
        };
        let Some(out_shape) = model
            .outlet_fact(OutletId::new(node.id, 0))?
            .shape
            .as_concrete()
        else {
            continue;
        };
        let mut absorbed = vec![];
        let (mut input, mut last) = (node.inputs[0], node.id);
        let mut output = PoolOutput::default();
        if let Some((low, relu)) = relu_before(model, node)? {
            output.low = Some(low);
            absorbed.push(relu.id);
            input = relu.inputs[0];
        }
        let outputs = model.output_outlets()?;
        if !outputs.contains(&OutletId::new(node.id, 0)) {
            if let Some(quant) = model.single_succ(node.id)? {
                if let Some((inv_scale, zero_point, scale, dequant)) = pair_at(model, quant.id)? {
                    output.requantize = Some(Requantize {
                        inv_scale,
                        zero_point,
                        scale,
                    });
                    absorbed.extend([quant.id, dequant]);
                    last = dequant;
                }
            }
        }
        // The operator checks that its output holds what the geometry gives (`ceil_mode` does
        // not) and refuses a shape or a pair it does not take: tract keeps those.
        let out_shape = out_shape.into();
        if let Ok(op) = FloatMaxPool::new(geometry, output, out_shape, simd) {
            found.push(Found {
                pool: node.id,
                op,
                absorbed,
                input,
                last,
            });
        }
    }
    let mut replaced = Pools::default();
    for f in found {
        replaced.pools += 1;
        replaced.pairs += usize::from(f.last != f.pool);
        let chain: [(&str, Box<dyn TypedOp>); 1] = [("max_pool", Box::new(f.op))];
        super::chain_reading(model, f.input, f.pool, f.last, &f.absorbed, chain)?;
    }
    Ok(replaced)
}

/// When the pool's input is an f32 `Max` with one number (a ReLU) that nothing else reads: that
/// number and the `Max`'s node.
fn relu_before<'m>(
    model: &'m TypedModel,
    pool: &TypedNode,
) -> TractResult<Option<(f32, &'m TypedNode)>> {
    let into_pool = pool.inputs[0];
    let max = &model.nodes[into_pool.node];
    let read_once = model.single_succ(max.id)?.is_some_and(|n| n.id == pool.id);
    if into_pool.slot != 0
        || max.outputs.len() != 1
        || !read_once
        || model.output_outlets()?.contains(&into_pool)
    {
        return Ok(None);
    }
    let Some(&from) = max.inputs.first() else {
        return Ok(None);
    };
    if from.slot != 0 {
        return Ok(None);
    }
    let low = scalar_operand::<math::Max>(model, max, from.node)?;
    Ok(low.map(|low| (low, max)))
}

/// The pool's shape, if the pass takes it.
fn geometry(
    model: &TypedModel,
    node: &TypedNode,
    pool: &MaxPool,
) -> TractResult<Option<PoolGeometry>> {
    let fact = model.outlet_fact(node.inputs[0])?;
    let Some(x) = fact.shape.as_concrete() else {
        return Ok(None);
    };
    let spec = &pool.pool_spec;
    let chw = match spec.data_format {
        DataFormat::NCHW => x.len() == 4 && x[0] == 1,
        DataFormat::CHW => x.len() == 3,
        _ => false,
    };
    let pair = |v: &TVec<usize>| (v.len() == 2).then(|| [v[0], v[1]]);
    let ones = spec
        .dilations
        .as_ref()
        .is_none_or(|d| d.iter().all(|&d| d == 1));
    let stride = match &spec.strides {
        None => Some([1, 1]),
        Some(s) => pair(s),
    };
    let (Some(kernel), Some(stride)) = (pair(&spec.kernel_shape), stride) else {
        return Ok(None);
    };
    if !chw || x.len() < 3 {
        return Ok(None);
    }
    let n = x.len();
    // tract's declutter writes ONNX's explicit pads as `SameUpper` where they are the same.
    let same = |upper| {
        let (top, bottom) = same_padding(x[n - 2], kernel[0], stride[0], upper);
        let (left, right) = same_padding(x[n - 1], kernel[1], stride[1], upper);
        Some([top, left, bottom, right])
    };
    let pad = match &spec.padding {
        PaddingSpec::Valid => Some([0; 4]),
        PaddingSpec::Explicit(b, a) | PaddingSpec::ExplicitOnnxPool(b, a, false) => {
            pair(b).zip(pair(a)).map(|(b, a)| [b[0], b[1], a[0], a[1]])
        }
        PaddingSpec::SameUpper => same(true),
        PaddingSpec::SameLower => same(false),
        PaddingSpec::ExplicitOnnxPool(_, _, true) => None,
    };
    let Some(pad) = pad else {
        return Ok(None);
    };
    // tract's 2x2 windows run on its own SIMD path, whose NaN and zero handling is each
    // architecture's max instruction, not the definition `FloatMaxPool` computes: left to tract.
    if !ones
        || kernel == [2, 2]
        || pool.with_index_outputs.is_some()
        || fact.datum_type != f32::datum_type()
    {
        return Ok(None);
    }
    Ok(Some(PoolGeometry {
        channels: x[n - 3],
        height: x[n - 2],
        width: x[n - 1],
        kernel,
        stride,
        pad,
    }))
}
