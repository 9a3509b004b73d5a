//! The float depthwise pass: depthwise convolutions that stay in f32 run on prescreen's own kernel
//! ([`FloatDepthwise`]) rather than tract's.

use tract_onnx::prelude::*;

use super::convolution::{
    absorb_bias, absorb_clip, absorb_input_clip, convolution, Convolution, Shape,
};
use crate::inference::qconv::{FloatDepthwise, Simd};

/// Replaces each depthwise convolution still in f32 (a `Conv` with one group per channel over f32
/// activations with a constant f32 kernel, stride 1 to 4, at most 4 wide: every one of a float
/// file's, and those a QDQ file keeps in float) with a [`FloatDepthwise`] on `simd`, absorbing a
/// bias added after it and a clip after that (ReLU6: tract ran it as a pass of its own over the
/// output, single-threaded), or else a clip before it that no other operator took (the ReLU6 of
/// a convolution tract keeps, e.g. MobileNetV2's first), which the operator applies as it copies
/// its input. Run after [`quantized_convolutions`], which takes the quantized ones. Returns how
/// many were replaced.
///
/// [`quantized_convolutions`]: super::quantized_convolutions
pub(crate) fn float_depthwise_convolutions(
    model: &mut TypedModel,
    simd: Simd,
) -> TractResult<usize> {
    let (mut found, mut claimed) = (vec![], vec![]);
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
        let input_clip = absorb_input_clip(model, node, &claimed, &mut absorbed)?;
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
        let (op, input) = match input_clip {
            Some(([low, high], input)) => (op.with_input_clip(low, high)?, Some(input)),
            None => (op, None),
        };
        claimed.extend_from_slice(&absorbed);
        found.push((id, input, op, absorbed, last));
    }
    let replaced = found.len();
    // Last first: a patch replaces the nodes it takes by its own, so an outlet found before it
    // (the input a clip before a convolution reads) would be gone; the nodes a later convolution
    // reads are still there, and the earlier one's patch then moves its readers onto the new
    // node.
    for (conv, input, op, absorbed, last) in found.into_iter().rev() {
        let input = input.unwrap_or(model.nodes[conv].inputs[0]);
        super::chain_reading(
            model,
            input,
            conv,
            last,
            &absorbed,
            [("depthwise", op.into())],
        )?;
    }
    Ok(replaced)
}
