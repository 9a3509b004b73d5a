//! The float depthwise pass: depthwise convolutions that stay in f32 run on prescreen's own kernel
//! ([`FloatDepthwise`]) rather than tract's.

use tract_onnx::prelude::*;

use super::convolution::{absorb_bias, absorb_clip, convolution, Convolution, Shape};
use crate::inference::qconv::{FloatDepthwise, Simd};

/// Replaces each depthwise convolution still in f32 (a `Conv` with one group per channel over f32
/// activations with a constant f32 kernel, stride 1 to 4, at most 4 wide: every one of a float
/// file's, and those a QDQ file keeps in float) with a [`FloatDepthwise`] on `simd`, absorbing a
/// bias added after it and a clip after that (ReLU6: tract ran it as a pass of its own over the
/// output, single-threaded). Run after [`quantized_convolutions`], which takes the quantized ones.
/// Returns how many were replaced.
///
/// [`quantized_convolutions`]: super::quantized_convolutions
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
            ..
        }) = convolution(model, node)?
        else {
            continue;
        };
        if model.outputs.contains(&OutletId::new(id, 0)) {
            continue;
        }
        let (mut absorbed, mut last) = (vec![], id);
        absorb_bias(model, &mut bias, &mut absorbed, &mut last, g.channels)?;
        let clip = absorb_clip(model, &mut absorbed, &mut last)?;
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
        let op = match clip {
            Some([low, high]) => op.with_clip(low, high)?,
            None => op,
        };
        found.push((id, op, absorbed, last));
    }
    let replaced = found.len();
    for (conv, op, absorbed, last) in found {
        super::replace(model, conv, last, &absorbed, "depthwise", op)?;
    }
    Ok(replaced)
}
