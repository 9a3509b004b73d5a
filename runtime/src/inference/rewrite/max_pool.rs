//! The max pool pass: tract's f32 `MaxPool` over a CHW image becomes prescreen's
//! [`FloatMaxPool`], which computes the same values bit for bit.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::cnn::{MaxPool, PaddingSpec};
use tract_onnx::tract_core::ops::nn::DataFormat;

use crate::inference::qconv::{same_padding, FloatMaxPool, PoolGeometry, Simd};

/// Replaces each 2-D f32 max pool over one channel-first image (no dilation, explicit, `SAME` or no
/// padding, no index output, a shape [`PoolGeometry::is_valid`] takes, not 2×2) with a
/// [`FloatMaxPool`] on `simd`. Returns how many were replaced.
pub(crate) fn max_pools(model: &mut TypedModel, simd: Simd) -> TractResult<usize> {
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
        // The operator checks that its output holds what the geometry gives (`ceil_mode` does
        // not) and refuses a shape it does not take: tract keeps those.
        if let Ok(op) = FloatMaxPool::new(geometry, out_shape.into(), simd) {
            found.push((node.id, op));
        }
    }
    let replaced = found.len();
    for (id, op) in found {
        super::replace(model, id, id, &[], "max_pool", op)?;
    }
    Ok(replaced)
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
