//! Tests of the graph passes on small graphs built here: a rewritten graph computes what tract's own
//! operators compute, and what a pass must not match is left alone.

use super::convolution::has_depthwise;
use super::integer::left_to_tract;
use super::weights::fold;
use super::*;
use tract_onnx::tract_core::ops::change_axes::AxisOp;
use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat, PaddingSpec, PoolSpec};
use tract_onnx::tract_core::ops::math;
use tract_onnx::tract_core::ops::nn::DataFormat;
use tract_onnx::tract_core::ops::quant::{quantize_linear_u8, DequantizeLinearF32};

/// A model `x → Quantize(1/scale, zp) → Dequantize(scale, zp)` over a 1-D input of `n` values.
fn pair_model(scale: f32, zero_point: u8, n: usize) -> TypedModel {
    pair_model_with(scale, zero_point, zero_point, n, false)
}

/// [`pair_model`] with separate zero points for the two sides, and with the u8 tensor also a
/// model output when `expose_quantized`.
fn pair_model_with(
    scale: f32,
    quant_zero: u8,
    dequant_zero: u8,
    n: usize,
    expose_quantized: bool,
) -> TypedModel {
    let mut model = TypedModel::default();
    let x = model.add_source("x", f32::fact([n])).unwrap();
    let q = model
        .wire_node("q", quantize_linear_u8(scale.recip(), quant_zero), &[x])
        .unwrap();
    let y = model
        .wire_node(
            "dq",
            DequantizeLinearF32::new(scale, i32::from(dequant_zero)),
            &q,
        )
        .unwrap();
    let mut outputs = vec![y[0]];
    if expose_quantized {
        outputs.push(q[0]);
    }
    model.select_output_outlets(&outputs).unwrap();
    model
}

/// `x → Q → DQ → Conv (kernel: s8 weights folded to f32, bias) → Q → DQ` on a 1×C×H×W input,
/// decluttered as the loader has it, the table of its integer weights, and an input.
fn quantized_conv_model(
    channels: usize,
    size: usize,
    out_channels: usize,
    kernel: usize,
    quantized_input: bool,
) -> (TypedModel, QuantizedWeights, Vec<f32>) {
    quantized_model(channels, size, out_channels, kernel, quantized_input, 1, 1)
}

/// [`quantized_conv_model`] with `groups` groups (a depthwise convolution when there is one
/// per channel) and a stride, padded as MobileNetV2 pads: "same" at stride 1, bottom and
/// right only at stride 2.
fn quantized_model(
    channels: usize,
    size: usize,
    out_channels: usize,
    kernel: usize,
    quantized_input: bool,
    groups: usize,
    stride: usize,
) -> (TypedModel, QuantizedWeights, Vec<f32>) {
    let mut model = TypedModel::default();
    let x = model
        .add_source("x", f32::fact([1, channels, size, size]))
        .unwrap();
    let mut x = tvec![x];
    if quantized_input {
        x = model
            .wire_node("xq", quantize_linear_u8(1.0 / 0.02, 3), &x)
            .unwrap();
        x = model
            .wire_node("xdq", DequantizeLinearF32::new(0.02, 3), &x)
            .unwrap();
    }
    let mut weights = QuantizedWeights::default();
    let shape = (channels, out_channels, kernel);
    let y = wire_quantized_conv(
        &mut model,
        x[0],
        "conv",
        shape,
        groups,
        stride,
        &mut weights,
    );
    model.select_output_outlets(&[y]).unwrap();
    (
        model.into_decluttered().unwrap(),
        weights,
        image(channels, size),
    )
}

/// An input for a `channels`×`size`×`size` image, on the grid of [`quantized_model`]'s input pair.
fn image(channels: usize, size: usize) -> Vec<f32> {
    (0..channels * size * size)
        .map(|i| ((i * 29 % 256) as f32 - 3.0) * 0.02)
        .collect()
}

/// `x → Conv (kernel: s8 weights folded to f32, bias) → Q → DQ`, the convolution as
/// [`quantized_model`] makes it (`channels` in, `out_channels` out, `kernel`×`kernel`), named
/// after `at`; its integer weights added to `weights`.
fn wire_quantized_conv(
    model: &mut TypedModel,
    x: OutletId,
    at: &str,
    (channels, out_channels, kernel): (usize, usize, usize),
    groups: usize,
    stride: usize,
    weights: &mut QuantizedWeights,
) -> OutletId {
    let taps = kernel * kernel;
    let per_group = channels / groups;
    let q: Vec<i8> = (0..out_channels * per_group * taps)
        .map(|i| ((i * 37 + 11) % 255) as u8 as i8)
        .collect();
    let scales: Vec<f32> = (0..out_channels)
        .map(|o| 0.002 + 0.0003 * o as f32)
        .collect();
    let bias: Vec<f32> = (0..out_channels).map(|o| 0.1 * o as f32 - 0.3).collect();
    let folded = fold(&q, &scales);
    let k = Tensor::from_shape(&[out_channels, per_group, kernel, kernel], &folded).unwrap();
    let k = model.add_const(format!("{at}.kernel"), k).unwrap();
    let b = model
        .add_const(format!("{at}.bias"), tensor1(&bias))
        .unwrap();
    let pad = kernel / 2;
    let before = if stride == 2 { 0 } else { pad };
    let spec = PoolSpec::new(
        DataFormat::NCHW,
        tvec![kernel, kernel],
        PaddingSpec::Explicit(tvec![before, before], tvec![pad, pad]),
        None,
        (stride != 1).then(|| tvec![stride, stride]),
        channels,
        out_channels,
    );
    let conv = Conv::new(spec, KernelFormat::OIHW, groups, None);
    let y = model.wire_node(at, conv, &[x, k, b]).unwrap();
    let y = model
        .wire_node(format!("{at}.yq"), quantize_linear_u8(1.0 / 0.05, 100), &y)
        .unwrap();
    let y = model
        .wire_node(format!("{at}.ydq"), DequantizeLinearF32::new(0.05, 100), &y)
        .unwrap();
    weights.add(q, scales);
    y[0]
}

fn run_image(model: TypedModel, shape: &[usize], xs: &[f32]) -> Vec<f32> {
    let plan = model.into_optimized().unwrap().into_runnable().unwrap();
    let x = Tensor::from_shape(shape, xs).unwrap();
    let out = plan.run(tvec!(x.into_tvalue())).unwrap();
    out[0]
        .to_plain_array_view::<f32>()
        .unwrap()
        .iter()
        .copied()
        .collect()
}

fn op_names(model: &TypedModel) -> Vec<String> {
    model
        .nodes
        .iter()
        .map(|n| n.op().name().to_string())
        .collect()
}

/// The portable kernel, and the fastest SIMD one where this CPU has one.
fn kernels() -> Vec<Kernel> {
    std::iter::once(Kernel::Portable)
        .chain(Kernel::detect())
        .collect()
}

/// Both sides are on the output grid (step 0.05); the exact integer sums may round a value
/// that tract's f32 sums put within float error of a tie to the next step, so they are one
/// step apart at most and equal in at least 99 % of the outputs.
fn assert_one_step_apart_at_most(kernel: Kernel, float: &[f32], integer: &[f32]) {
    assert_eq!(float.len(), integer.len());
    let mut same = 0;
    for (a, b) in float.iter().zip(integer) {
        assert!(
            (a - b).abs() <= 0.05 * 1.001,
            "{}: {a} vs {b}",
            kernel.name()
        );
        same += usize::from(a.to_bits() == b.to_bits());
    }
    assert!(
        same * 100 >= float.len() * 99,
        "{}: {same} of {} equal",
        kernel.name(),
        float.len()
    );
}

/// Rewrites `model` for the portable kernel and each SIMD one this CPU has (that has a depthwise
/// twin, for a `depthwise` convolution): exactly one
/// convolution replaced, the optimized plan's operator names accepted by `plan`, and the outputs
/// one step from the float graph's (`float`) at most.
fn assert_rewritten_for_every_kernel(
    model: &TypedModel,
    weights: &QuantizedWeights,
    (shape, input): (&[usize], &[f32]),
    float: &[f32],
    case: &str,
    plan: impl Fn(&[String]) -> bool,
    depthwise: bool,
) {
    // A depthwise convolution only where the kernel has a depthwise twin.
    for simd in kernels()
        .into_iter()
        .filter(|k| !depthwise || k.runs_depthwise())
    {
        let mut rewritten = model.clone();
        let replaced = quantized_convolutions(&mut rewritten, weights, simd).unwrap();
        assert_eq!(replaced, 1, "{case}");
        let names = op_names(&rewritten.clone().into_optimized().unwrap());
        assert!(plan(&names), "{case}: {names:?}");
        let integer = run_image(rewritten, shape, input);
        assert_one_step_apart_at_most(simd, float, integer.as_slice());
    }
}

#[test]
fn quantized_convolutions_become_integer_ones_with_the_same_outputs() {
    // 3x3 stays a Conv after decluttering; 1x1 becomes an EinSum plus a bias Add.
    for (channels, size, out_channels, kernel) in [(12, 9, 10, 3), (20, 6, 16, 1)] {
        let (model, weights, input) =
            quantized_conv_model(channels, size, out_channels, kernel, true);
        let shape = [1, channels, size, size];
        let float = run_image(model.clone(), &shape, &input);
        assert_eq!(float.len(), out_channels * size * size);
        // No float convolution is left.
        let plan = |names: &[String]| {
            names.iter().any(|n| n == "QConv")
                && !names
                    .iter()
                    .any(|n| (n.contains("Conv") && n != "QConv") || n.contains("MatMul"))
        };
        let case = format!("{kernel}x{kernel}");
        assert_rewritten_for_every_kernel(
            &model,
            &weights,
            (&shape, &input),
            &float,
            &case,
            plan,
            false,
        );
    }
}

/// A dense convolution with stride 2 (7×7 as open_nsfw's first, 3×3 as MobileNet's) becomes a
/// `SpaceToDepth` and a stride-1 `QConv`, with the float graph's outputs.
#[test]
fn strided_quantized_convolutions_become_integer_ones_over_stacked_blocks() {
    for (channels, size, out_channels, kernel) in [(3, 16, 16, 7), (6, 9, 8, 3)] {
        let (model, weights, input) =
            quantized_model(channels, size, out_channels, kernel, true, 1, 2);
        let shape = [1, channels, size, size];
        let float = run_image(model.clone(), &shape, &input);
        let out = (size + kernel / 2 - kernel) / 2 + 1;
        assert_eq!(float.len(), out_channels * out * out);
        // The stacked blocks and the integer convolution; no float convolution is left.
        let plan = |names: &[String]| {
            names.iter().any(|n| n == "SpaceToDepth")
                && names.iter().any(|n| n == "QConv")
                && !names.iter().any(|n| n.contains("Conv") && n != "QConv")
        };
        let case = format!("{kernel}x{kernel}");
        assert_rewritten_for_every_kernel(
            &model,
            &weights,
            (&shape, &input),
            &float,
            &case,
            plan,
            false,
        );
    }
}

/// [`quantized_conv_model`] (1×1) with its output subsampled by `stride` in rows and columns
/// (from `offset`), decluttered as the loader has it: tract pulls the subsampling up through the
/// output's pair and the bias add, to the convolution's `EinSum`, as it does in open_nsfw before
/// each stage's first, strided block.
fn subsampled_pointwise_model(
    channels: usize,
    size: usize,
    out_channels: usize,
    (stride, offset): (isize, usize),
) -> (TypedModel, QuantizedWeights, Vec<f32>) {
    let (mut model, weights, input) = quantized_conv_model(channels, size, out_channels, 1, true);
    let mut y = model.output_outlets().unwrap()[0];
    for axis in [2, 3] {
        let down = tract_onnx::tract_core::ops::Downsample::new(axis, stride, offset);
        y = model.wire_node(format!("down{axis}"), down, &[y]).unwrap()[0];
    }
    model.select_output_outlets(&[y]).unwrap();
    (model.into_decluttered().unwrap(), weights, input)
}

/// The names of the operators `model`'s output is computed with, in order.
fn evaluated(model: &TypedModel) -> Vec<String> {
    let order = model.eval_order().unwrap();
    order
        .iter()
        .map(|&id| model.nodes[id].op().name().to_string())
        .collect()
}

/// A 1×1 convolution whose output tract subsamples right after its `EinSum` reads a subsampled
/// input instead, and so becomes one integer convolution with its bias and output pair, computing
/// the float graph's outputs.
#[test]
fn a_subsampled_pointwise_convolution_reads_a_subsampled_input() {
    for (size, stride) in [(6, 2), (7, 2), (9, 3)] {
        let (channels, out_channels) = (20, 16);
        let (model, weights, input) =
            subsampled_pointwise_model(channels, size, out_channels, (stride, 0));
        let case = format!("size {size}, stride {stride}");
        let before = evaluated(&model);
        let at = before.iter().position(|n| n == "EinSum").expect(&case);
        assert_eq!(before[at + 1], "Downsample", "{case}: {before:?}");
        let shape = [1, channels, size, size];
        let float = run_image(model.clone(), &shape, &input);
        let out = size.div_ceil(stride as usize);
        assert_eq!(float.len(), out_channels * out * out, "{case}");
        let mut thinned = model.clone();
        assert_eq!(subsample_before_einsums(&mut thinned).unwrap(), 2, "{case}");
        // Both subsamplings before the sum (tract pulls them on up, to the input), and the pass
        // has nothing left to move.
        let names = evaluated(&thinned);
        let at = names.iter().position(|n| n == "EinSum").expect(&case);
        let downs: Vec<usize> = (0..names.len())
            .filter(|&i| names[i] == "Downsample")
            .collect();
        assert!(downs.len() == 2 && downs[1] < at, "{case}: {names:?}");
        let reads_input = thinned.nodes.iter().any(|n| {
            n.op_is::<tract_onnx::tract_core::ops::Downsample>()
                && thinned.nodes[n.inputs[0].node].op().name() == "Source"
        });
        assert!(reads_input, "{case}: {names:?}");
        assert_eq!(subsample_before_einsums(&mut thinned).unwrap(), 0, "{case}");
        // The same sums (tract's kernels may order a sum of another width differently).
        let thinned_float = run_image(thinned.clone(), &shape, &input);
        assert_one_step_apart_at_most(Kernel::Portable, &float, &thinned_float);
        for simd in kernels() {
            let mut rewritten = thinned.clone();
            assert_eq!(
                quantized_convolutions(&mut rewritten, &weights, simd).unwrap(),
                1
            );
            // The bias and the output's pair are in the integer convolution, the graph's last
            // operator.
            let names = evaluated(&rewritten);
            assert_eq!(names.last().map(String::as_str), Some("QConv"), "{case}");
            assert!(!names.iter().any(|n| n == "Add"), "{case}: {names:?}");
            let integer = run_image(rewritten, &shape, &input);
            assert_one_step_apart_at_most(simd, &float, &integer);
        }
    }
}

/// A ResNet's block before a strided one: a 3×3 convolution, then a 1×1 one whose output the
/// next block subsamples by 2. Moved before the 1×1 convolution, tract pulls the subsampling into
/// the 3×3 one (stride 2): both become integer ones (the strided one over stacked blocks) with
/// their biases and pairs, computing the float graph's outputs. With `SAME` padding (which tract
/// would split anew for a stride of 2) nothing moves.
#[test]
fn a_subsampling_before_a_pointwise_convolution_strides_the_convolution_before_it() {
    let (channels, mid, out_channels, size) = (8, 12, 16, 10);
    for same in [false, true] {
        let mut model = TypedModel::default();
        let x = model
            .add_source("x", f32::fact([1, channels, size, size]))
            .unwrap();
        let x = model
            .wire_node("xq", quantize_linear_u8(1.0 / 0.02, 3), &[x])
            .unwrap();
        let x = model
            .wire_node("xdq", DequantizeLinearF32::new(0.02, 3), &x)
            .unwrap();
        let mut weights = QuantizedWeights::default();
        let shapes = [(channels, mid, 3), (mid, out_channels, 1)];
        let y = wire_quantized_conv(&mut model, x[0], "b", shapes[0], 1, 1, &mut weights);
        if same {
            let b = model.node_by_name_mut("b").unwrap();
            let conv = b.op_as_mut::<Conv>().unwrap();
            conv.pool_spec.padding = PaddingSpec::SameUpper;
        }
        let mut y = wire_quantized_conv(&mut model, y, "c", shapes[1], 1, 1, &mut weights);
        for axis in [2, 3] {
            let down = tract_onnx::tract_core::ops::Downsample::new(axis, 2, 0);
            y = model.wire_node(format!("down{axis}"), down, &[y]).unwrap()[0];
        }
        model.select_output_outlets(&[y]).unwrap();
        let model = model.into_decluttered().unwrap();
        let (shape, input) = ([1, channels, size, size], image(channels, size));
        let float = run_image(model.clone(), &shape, &input);
        assert_eq!(float.len(), out_channels * 5 * 5);
        let mut thinned = model.clone();
        if same {
            // Pulled up, it would stop right after the convolution, which tract would then
            // stride wrongly: it stays after the sum.
            assert_eq!(subsample_before_einsums(&mut thinned).unwrap(), 0);
            assert_eq!(evaluated(&thinned), evaluated(&model));
            assert_eq!(run_image(thinned, &shape, &input), float);
            continue;
        }
        assert_eq!(subsample_before_einsums(&mut thinned).unwrap(), 2);
        let names = evaluated(&thinned);
        assert!(!names.iter().any(|n| n == "Downsample"), "{names:?}");
        let strides = thinned
            .nodes
            .iter()
            .filter_map(|n| n.op_as::<Conv>())
            .map(|c| c.pool_spec.strides.clone())
            .collect::<Vec<_>>();
        assert_eq!(strides, [Some(tvec![2, 2])]);
        assert_one_step_apart_at_most(
            Kernel::Portable,
            &float,
            &run_image(thinned.clone(), &shape, &input),
        );
        for simd in kernels() {
            let mut rewritten = thinned.clone();
            assert_eq!(
                quantized_convolutions(&mut rewritten, &weights, simd).unwrap(),
                2
            );
            let names = evaluated(&rewritten);
            assert_eq!(
                names[names.len() - 3..],
                ["SpaceToDepth", "QConv", "QConv"],
                "{names:?}"
            );
            let integer = run_image(rewritten, &shape, &input);
            assert_one_step_apart_at_most(simd, &float, &integer);
        }
    }
}

/// A subsampling from another offset than 0, of a sum another operator also reads, or of an axis
/// the sum's inputs do not carry one to one, stays where it is.
#[test]
fn a_subsampling_stays_after_a_sum_it_cannot_thin_alone() {
    let ein = |expr: &str| {
        tract_onnx::tract_core::ops::einsum::EinSum::new(expr.parse().unwrap(), f32::datum_type())
    };
    let down = |axis| tract_onnx::tract_core::ops::Downsample::new(axis, 2, 0);
    // From offset 1.
    let (model, ..) = subsampled_pointwise_model(20, 7, 16, (2, 1));
    let mut thinned = model.clone();
    assert_eq!(subsample_before_einsums(&mut thinned).unwrap(), 0);
    assert_eq!(evaluated(&thinned), evaluated(&model));
    // `x` (1×4×6×6) summed with a constant of `shape` as `expr`, its `axis` subsampled by 2; the
    // sum also an output of the model where `read_twice`.
    let sum_then_down = |expr: &str, shape: &[usize], axis: usize, read_twice: bool| {
        let mut model = TypedModel::default();
        let x = model.add_source("x", f32::fact([1, 4, 6, 6])).unwrap();
        let n = shape.iter().product();
        let w = Tensor::from_shape(shape, &vec![0.5f32; n]).unwrap();
        let w = model.add_const("w", w).unwrap();
        let y = model.wire_node("sum", ein(expr), &[x, w]).unwrap()[0];
        let d = model.wire_node("down", down(axis), &[y]).unwrap()[0];
        let outputs = if read_twice { vec![d, y] } else { vec![d] };
        model.select_output_outlets(&outputs).unwrap();
        model
    };
    // Read twice: by the subsampling and as an output of the model.
    let mut model = sum_then_down("nihw,oi->nohw", &[3, 4], 2, true);
    assert_eq!(subsample_before_einsums(&mut model).unwrap(), 0);
    // Rows carried by both inputs (a per-row weight): each would have to be thinned.
    let mut model = sum_then_down("nihw,hi->nhw", &[6, 4], 1, false);
    assert_eq!(subsample_before_einsums(&mut model).unwrap(), 0);
    assert!(evaluated(&model).ends_with(&["EinSum".to_string(), "Downsample".to_string()]));
}

#[test]
fn quantized_depthwise_convolutions_become_integer_ones_with_the_same_outputs() {
    for (channels, size, stride) in [(24, 10, 1), (19, 13, 2), (8, 14, 2)] {
        let (model, weights, input) =
            quantized_model(channels, size, channels, 3, true, channels, stride);
        let shape = [1, channels, size, size];
        let float = run_image(model.clone(), &shape, &input);
        // ONNX's floor((size + padding − 3) / stride) + 1, padding 2 or 1.
        let out = if stride == 1 {
            size
        } else {
            (size - 2) / 2 + 1
        };
        assert_eq!(float.len(), channels * out * out);
        // No float convolution, matrix product or depthwise operator is left.
        let plan = |names: &[String]| {
            names.iter().any(|n| n == "QDepthwise")
                && !names.iter().any(|n| {
                    n.contains("Conv")
                        || n.contains("MatMul")
                        || (n.contains("Depth") && n != "QDepthwise")
                })
        };
        let case = format!("stride {stride}");
        assert_rewritten_for_every_kernel(
            &model,
            &weights,
            (&shape, &input),
            &float,
            &case,
            plan,
            true,
        );
        // The NEON kernel has no depthwise twin: such a model is left to tract whole (a dense
        // one is not).
        assert!(left_to_tract(&model, Kernel::Neon) && !left_to_tract(&model, Kernel::Portable));
        let (dense, ..) = quantized_model(channels, size, channels, 3, true, 1, stride);
        assert!(!left_to_tract(&dense, Kernel::Neon));
        let mut kept = model.clone();
        assert_eq!(
            quantized_convolutions(&mut kept, &weights, Kernel::Neon).unwrap(),
            0
        );
        assert_eq!(op_names(&kept), op_names(&model), "{case}");
    }
}

/// `x → Conv` (a float depthwise convolution with a bias, padded as [`quantized_model`] pads)
/// on a 1×C×H×W input, decluttered as the loader has it, and an input.
fn float_depthwise_model(channels: usize, size: usize, stride: usize) -> (TypedModel, Vec<f32>) {
    depthwise_then(channels, size, stride, None, None)
}

/// Values in [-1.3, 1.4] with many distinct mantissas.
fn ramp(n: usize, k: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * k + 7) % 101) as f32 / 37.0 - 1.3)
        .collect()
}

/// `y` clipped to `[low, high]` (`Max(low)` then `Min(high)`, ONNX's `Clip` as tract wires it),
/// the nodes named after `at`.
fn wire_clip(model: &mut TypedModel, y: OutletId, at: &str, [low, high]: [f32; 2]) -> OutletId {
    let bound = |v: f32| Tensor::from_shape(&[1, 1, 1, 1], &[v]).unwrap();
    let low = model.add_const(format!("{at}.low"), bound(low)).unwrap();
    let y = model
        .wire_node(format!("{at}.max"), math::max(), &[y, low])
        .unwrap();
    let high = model.add_const(format!("{at}.high"), bound(high)).unwrap();
    model
        .wire_node(format!("{at}.min"), math::min(), &[y[0], high])
        .unwrap()[0]
}

/// A 3x3 depthwise convolution of `x`'s `channels` with a bias (padded as [`quantized_model`]
/// pads), named `at`.
fn wire_depthwise(
    model: &mut TypedModel,
    x: OutletId,
    channels: usize,
    stride: usize,
    at: &str,
) -> OutletId {
    let k = Tensor::from_shape(&[channels, 1, 3, 3], &ramp(channels * 9, 13)).unwrap();
    let k = model.add_const(format!("{at}.kernel"), k).unwrap();
    let b = model
        .add_const(format!("{at}.bias"), tensor1(&ramp(channels, 5)))
        .unwrap();
    let pad = if stride == 2 { 0 } else { 1 };
    let spec = PoolSpec::new(
        DataFormat::NCHW,
        tvec![3, 3],
        PaddingSpec::Explicit(tvec![pad, pad], tvec![1, 1]),
        None,
        (stride != 1).then(|| tvec![stride, stride]),
        channels,
        channels,
    );
    let conv = Conv::new(spec, KernelFormat::OIHW, channels, None);
    model.wire_node(at, conv, &[x, k, b]).unwrap()[0]
}

/// [`float_depthwise_model`] with a clip before the convolution when `before` says so and after
/// it when `after` does; the clipped input (before) or the convolution's output (after) also
/// squared into a second output of the model when the clip's flag says `shared`.
fn depthwise_then(
    channels: usize,
    size: usize,
    stride: usize,
    before: Option<([f32; 2], bool)>,
    after: Option<([f32; 2], bool)>,
) -> (TypedModel, Vec<f32>) {
    let mut model = TypedModel::default();
    let mut others = vec![];
    let mut x = model
        .add_source("x", f32::fact([1, channels, size, size]))
        .unwrap();
    if let Some((bounds, shared)) = before {
        x = wire_clip(&mut model, x, "before", bounds);
        if shared {
            others.push(
                model
                    .wire_node("before.other", math::square(), &[x])
                    .unwrap()[0],
            );
        }
    }
    let mut y = wire_depthwise(&mut model, x, channels, stride, "conv");
    if let Some((bounds, shared)) = after {
        if shared {
            others.push(
                model
                    .wire_node("after.other", math::square(), &[y])
                    .unwrap()[0],
            );
        }
        y = wire_clip(&mut model, y, "after", bounds);
    }
    let y = model.wire_node("abs", math::abs(), &[y]).unwrap()[0];
    model
        .select_output_outlets(&[vec![y], others].concat())
        .unwrap();
    (
        model.into_decluttered().unwrap(),
        ramp(channels * size * size, 29),
    )
}

/// `model` through the float depthwise pass on every instruction set this CPU has, each checked
/// to replace `convolutions` convolutions and to give tract's outputs on `input` of `shape` (the
/// same sums in another order: rounding apart only); the rewritten graphs and their outputs.
fn float_pass_against_tract(
    model: &TypedModel,
    shape: &[usize],
    input: &[f32],
    convolutions: usize,
) -> Vec<(Simd, TypedModel, Vec<f32>)> {
    let tract = run_image(model.clone(), shape, input);
    let mut runs = vec![];
    for &simd in Simd::ALL.iter().filter(|s| s.available()) {
        let mut rewritten = model.clone();
        assert_eq!(
            float_depthwise_convolutions(&mut rewritten, simd).unwrap(),
            convolutions
        );
        let ours = run_image(rewritten.clone(), shape, input);
        assert_eq!(ours.len(), tract.len());
        for (a, b) in tract.iter().zip(&ours) {
            assert!(
                (a - b).abs() <= 1e-5 * a.abs().max(1.0),
                "{simd:?}: {a} vs {b}"
            );
        }
        runs.push((simd, rewritten, ours));
    }
    runs
}

/// The dump lines of `model`'s `FloatDepthwise` nodes, in graph order.
fn float_depthwise_lines(model: &TypedModel) -> Vec<String> {
    model
        .nodes
        .iter()
        .filter(|n| n.op.name() == "FloatDepthwise")
        .map(|n| n.op.info().unwrap().join(" "))
        .collect()
}

/// How many `Max` and `Min` nodes `model` has.
fn clips_left(model: &TypedModel) -> usize {
    let names = op_names(model);
    names.iter().filter(|n| *n == "Max" || *n == "Min").count()
}

#[test]
fn float_depthwise_convolutions_run_on_our_kernel_with_tracts_results() {
    for (channels, size, stride) in [(24, 10, 1), (19, 13, 2), (40, 7, 1)] {
        let (model, input) = float_depthwise_model(channels, size, stride);
        let shape = [1, channels, size, size];
        for (_, rewritten, _) in float_pass_against_tract(&model, &shape, &input, 1) {
            let names = op_names(&rewritten.into_optimized().unwrap());
            assert!(names.iter().any(|n| n == "FloatDepthwise"), "{names:?}");
            assert!(
                !names
                    .iter()
                    .any(|n| n.contains("Conv") || (n.contains("Depth") && n != "FloatDepthwise")),
                "tract's convolution is left: {names:?}"
            );
        }
    }
}

#[test]
fn a_clip_after_a_float_depthwise_convolution_runs_in_its_kernel() {
    // ReLU6's shape (from zero), and bounds on both sides of zero, both inside the outputs'
    // range; then the same convolution whose unclipped output is used elsewhere too, which must
    // keep its Max and Min.
    for (clip, shared) in [
        ([0.0, 1.5], false),
        ([-1.25, 0.75], false),
        ([0.0, 1.5], true),
    ] {
        let (model, input) = depthwise_then(24, 10, 1, None, Some((clip, shared)));
        for (simd, rewritten, ours) in float_pass_against_tract(&model, &[1, 24, 10, 10], &input, 1)
        {
            let left = clips_left(&rewritten);
            assert_eq!(left, if shared { 2 } else { 0 }, "{simd:?} {clip:?}");
            if !shared {
                let at_bounds = |v: f32| ours.iter().filter(|o| **o == v.abs()).count();
                assert!(at_bounds(clip[0]) > 0 && at_bounds(clip[1]) > 0, "{clip:?}");
            }
        }
    }
}

#[test]
fn a_clip_before_a_float_depthwise_convolution_runs_as_it_copies_its_input() {
    // ReLU6's shape and bounds on both sides of zero, each cutting the inputs (in [-1.3, 1.4]),
    // at strides 1 and 2; then a clipped input that another operator reads too, which must keep
    // its Max and Min.
    for (clip, shared, stride) in [
        ([0.0, 1.0], false, 1),
        ([-0.5, 0.75], false, 2),
        ([0.0, 1.0], true, 1),
    ] {
        let (model, input) = depthwise_then(24, 10, stride, Some((clip, shared)), None);
        for (simd, rewritten, _) in float_pass_against_tract(&model, &[1, 24, 10, 10], &input, 1) {
            let left = clips_left(&rewritten);
            assert_eq!(left, if shared { 2 } else { 0 }, "{simd:?} {clip:?}");
            let lines = float_depthwise_lines(&rewritten);
            let taken = format!("input clip {:?}", (!shared).then_some(clip));
            assert!(lines[0].contains(&taken), "{simd:?}: {lines:?}");
        }
    }
}

#[test]
fn a_clip_between_two_float_depthwise_convolutions_is_taken_once() {
    // The first convolution takes it as its output's clip; the second reads that output as is.
    let mut model = TypedModel::default();
    let x = model.add_source("x", f32::fact([1, 16, 9, 9])).unwrap();
    let y = wire_depthwise(&mut model, x, 16, 1, "first");
    let y = wire_clip(&mut model, y, "between", [0.0, 1.0]);
    let y = wire_depthwise(&mut model, y, 16, 1, "second");
    let y = model.wire_node("abs", math::abs(), &[y]).unwrap()[0];
    model.select_output_outlets(&[y]).unwrap();
    let model = model.into_decluttered().unwrap();
    let input = ramp(16 * 81, 29);
    for (simd, rewritten, _) in float_pass_against_tract(&model, &[1, 16, 9, 9], &input, 2) {
        assert_eq!(clips_left(&rewritten), 0);
        let lines = float_depthwise_lines(&rewritten);
        let with = |what: &str| lines.iter().filter(|l| l.contains(what)).count();
        assert_eq!(
            (with("input clip Some"), with(", clip Some([0.0, 1.0])")),
            (0, 1),
            "{simd:?}: {lines:?}"
        );
    }
}

/// `x` (`[1, H, W, C]`) moved channels first and read by a 3x3 f32 convolution (C → 4, with a
/// bias) with `padding` and `stride`, and by a second operator too when `shared`, decluttered as
/// the loader has it.
fn transpose_then_conv(
    shape: [usize; 4],
    padding: PaddingSpec,
    stride: usize,
    shared: bool,
) -> TypedModel {
    let c = shape[3];
    let mut model = TypedModel::default();
    let x = model.add_source("x", f32::fact(shape)).unwrap();
    let planes = model.wire_node("move", AxisOp::Move(3, 1), &[x]).unwrap()[0];
    let k = Tensor::from_shape(&[4, c, 3, 3], &ramp(4 * c * 9, 13)).unwrap();
    let k = model.add_const("kernel", k).unwrap();
    let b = model.add_const("bias", tensor1(&ramp(4, 5))).unwrap();
    let spec = PoolSpec::new(
        DataFormat::NCHW,
        tvec![3, 3],
        padding,
        None,
        (stride != 1).then(|| tvec![stride, stride]),
        c,
        4,
    );
    let conv = Conv::new(spec, KernelFormat::OIHW, 1, None);
    let y = model.wire_node("conv", conv, &[planes, k, b]).unwrap()[0];
    let mut outputs = vec![y];
    if shared {
        outputs.push(model.wire_node("other", math::square(), &[planes]).unwrap()[0]);
    }
    model.select_output_outlets(&outputs).unwrap();
    declutter_keeping_layout(model).unwrap()
}

#[test]
fn channels_first_planes_are_padded_for_the_convolution_that_reads_them() {
    // nsfwjs's first convolution's padding (a row and a column after, stride 2), same-upper (one
    // each side at stride 1) and uneven explicit padding; then a convolution without padding,
    // and planes another operator reads too, which keep the convolution's padding. The
    // convolution is tract's in every case, so the outputs are its own, bit for bit.
    let shape = [1, 9, 10, 3];
    let input = ramp(9 * 10 * 3, 29);
    let explicit = |before: [usize; 2], after: [usize; 2]| {
        PaddingSpec::Explicit(before.into_iter().collect(), after.into_iter().collect())
    };
    for (padding, stride, shared, pad) in [
        (explicit([0, 0], [1, 1]), 2, false, [0, 0, 1, 1]),
        (PaddingSpec::SameUpper, 1, false, [1, 1, 1, 1]),
        (explicit([2, 0], [1, 3]), 1, false, [2, 0, 1, 3]),
        (PaddingSpec::Valid, 1, false, [0; 4]),
        (explicit([1, 1], [1, 1]), 1, true, [0; 4]),
    ] {
        let case = format!("{padding:?} stride {stride} shared {shared}");
        let model = transpose_then_conv(shape, padding, stride, shared);
        let tract = run_image(model.clone(), &shape, &input);
        let mut rewritten = model;
        assert_eq!(channels_first(&mut rewritten).unwrap(), 1, "{case}");
        let lines: Vec<String> = rewritten
            .nodes
            .iter()
            .filter(|n| n.op.name() == "ChannelsFirst")
            .map(|n| n.op.info().unwrap().join(" "))
            .collect();
        assert_eq!(lines.len(), 1, "{case}");
        assert!(
            lines[0].ends_with(&format!("padded by {pad:?}")),
            "{case}: {lines:?}"
        );
        if pad != [0; 4] {
            let names = op_names(&rewritten.clone().into_optimized().unwrap());
            assert!(!names.iter().any(|n| n == "Pad"), "{case}: {names:?}");
        }
        let ours = run_image(rewritten, &shape, &input);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&ours), bits(&tract), "{case}");
    }
}

#[test]
fn the_float_pass_leaves_quantized_and_grouped_convolutions_alone() {
    // A quantized depthwise convolution is the integer rewrite's; after it, nothing is left
    // for the float pass. Without it, its kernel is the folded weights, a float one like any.
    let (model, weights, _) = quantized_model(8, 6, 8, 3, true, 8, 1);
    let mut rewritten = model.clone();
    assert_eq!(
        quantized_convolutions(&mut rewritten, &weights, Kernel::Portable).unwrap(),
        1
    );
    assert_eq!(
        float_depthwise_convolutions(&mut rewritten, Simd::Baseline).unwrap(),
        0
    );
    // Two groups of 4 channels, and a dense convolution: not depthwise.
    for groups in [2, 1] {
        let (model, _, _) = quantized_model(8, 5, 8, 3, false, groups, 1);
        let mut rewritten = model;
        assert_eq!(
            float_depthwise_convolutions(&mut rewritten, Simd::Baseline).unwrap(),
            0
        );
    }
}

#[test]
fn a_grouped_convolution_that_is_not_depthwise_is_left_alone() {
    // Two groups of 4 channels: neither one group nor one per channel.
    let (model, weights, _) = quantized_model(8, 5, 8, 3, true, 2, 1);
    let mut rewritten = model;
    assert_eq!(
        quantized_convolutions(&mut rewritten, &weights, Kernel::Portable).unwrap(),
        0
    );
    assert!(op_names(&rewritten).iter().any(|n| n == "Conv"));
}

#[test]
fn a_kernel_that_is_not_the_files_weights_is_left_alone() {
    let (model, weights, _) = quantized_conv_model(8, 5, 8, 3, true);
    // The same weights with one scale one ulp off: the folded kernel differs in some bits.
    let (q, mut scales) = weights.by_hash.into_values().next().unwrap().remove(0);
    scales[2] = f32::from_bits(scales[2].to_bits() + 1);
    let mut other = QuantizedWeights::default();
    other.add(q, scales);
    let mut rewritten = model;
    assert_eq!(
        quantized_convolutions(&mut rewritten, &other, Kernel::Portable).unwrap(),
        0
    );
    assert!(op_names(&rewritten).iter().any(|n| n == "Conv"));
}

#[test]
fn a_convolution_of_float_activations_is_left_alone() {
    // The same convolution and weights, its input straight from the source: nothing says
    // the activations are quantized, so the integer form would not compute the same thing.
    let (model, weights, _) = quantized_conv_model(8, 5, 8, 3, false);
    let mut patched = model;
    assert_eq!(
        quantized_convolutions(&mut patched, &weights, Kernel::Portable).unwrap(),
        0
    );
}

fn run(model: TypedModel, xs: &[f32]) -> Vec<f32> {
    run_image(model, &[xs.len()], xs)
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
        assert_eq!(fuse_quantize_dequantize(&mut model, Pairs::All).unwrap(), 1);
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
    let mut model = pair_model_with(0.5, 0, 0, 4, true);
    assert_eq!(fuse_quantize_dequantize(&mut model, Pairs::All).unwrap(), 0);
}

#[test]
fn a_pair_with_different_zero_points_is_left_alone() {
    let mut model = pair_model_with(0.5, 10, 0, 4, false);
    assert_eq!(fuse_quantize_dequantize(&mut model, Pairs::All).unwrap(), 0);
}

#[test]
fn a_graph_with_depthwise_convolutions_left_to_tract_gets_tracts_full_declutter() {
    // A quantized 3×3 convolution, then an f32 depthwise one (as a QDQ file keeps a few).
    let graph = || {
        let (mut model, weights, _) = quantized_model(8, 6, 8, 3, true, 1, 1);
        let y = model.output_outlets().unwrap()[0];
        let values: Vec<f32> = (0..8 * 9).map(|i| (i % 7) as f32 / 5.0 - 0.6).collect();
        let k = Tensor::from_shape(&[8, 1, 3, 3], &values).unwrap();
        let k = model.add_const("dw_kernel", k).unwrap();
        let b = model.add_const("dw_bias", tensor1(&[0.1f32; 8])).unwrap();
        let spec = PoolSpec::new(
            DataFormat::NCHW,
            tvec![3, 3],
            PaddingSpec::Explicit(tvec![1, 1], tvec![1, 1]),
            None,
            None,
            8,
            8,
        );
        let conv = Conv::new(spec, KernelFormat::OIHW, 8, None);
        let z = model.wire_node("dw", conv, &[y, k, b]).unwrap();
        // Not the graph's output, which the f32 pass leaves alone.
        let z = model.wire_node("abs", math::abs(), &z).unwrap();
        model.select_output_outlets(&z).unwrap();
        assert!(has_depthwise(&model));
        let source = Source {
            weights: Some((Kernel::Portable, weights)),
            is_quantized: true,
        };
        (model, source)
    };
    // tract keeps the depthwise convolution: the loader must run tract's whole declutter.
    let (model, source) = graph();
    let r = apply(model, source, false).unwrap();
    assert_eq!((r.integer_convolutions, r.float_depthwise), (1, 0));
    assert!(has_depthwise(&r.model) && !r.decluttered);
    // prescreen's f32 kernel takes it: codegen alone.
    let (model, source) = graph();
    let r = apply(model, source, true).unwrap();
    assert_eq!((r.integer_convolutions, r.float_depthwise), (1, 1));
    assert!(!has_depthwise(&r.model) && r.decluttered);
    // No depthwise convolution at all.
    let (dense, ..) = quantized_model(8, 6, 8, 3, true, 1, 1);
    assert!(!has_depthwise(&dense));
}

/// `a + b → Quantize(1/scale, zp) → Dequantize(scale, zp)` over two inputs of `n` values (`b` of
/// one value, broadcast, when `broadcast`), with the sum also squared into a second output when
/// `shared`.
fn residual_model(
    scale: f32,
    zero_point: u8,
    n: usize,
    broadcast: bool,
    shared: bool,
) -> TypedModel {
    let mut model = TypedModel::default();
    let a = model.add_source("a", f32::fact([n])).unwrap();
    let b = model
        .add_source("b", f32::fact([if broadcast { 1 } else { n }]))
        .unwrap();
    let sum = model.wire_node("add", math::add(), &[a, b]).unwrap();
    let q = model
        .wire_node("q", quantize_linear_u8(scale.recip(), zero_point), &sum)
        .unwrap();
    let y = model
        .wire_node(
            "dq",
            DequantizeLinearF32::new(scale, i32::from(zero_point)),
            &q,
        )
        .unwrap();
    let mut outputs = vec![y[0]];
    if shared {
        outputs.push(model.wire_node("other", math::square(), &sum).unwrap()[0]);
    }
    model.select_output_outlets(&outputs).unwrap();
    model
}

fn run_two(model: TypedModel, a: &[f32], b: &[f32]) -> Vec<f32> {
    let plan = model.into_optimized().unwrap().into_runnable().unwrap();
    let out = plan
        .run(tvec!(tensor1(a).into_tvalue(), tensor1(b).into_tvalue()))
        .unwrap();
    out[0]
        .try_as_plain_ram()
        .unwrap()
        .as_slice::<f32>()
        .unwrap()
        .to_vec()
}

#[test]
fn a_residual_add_and_its_pair_compute_what_tracts_operators_compute() {
    // Sums on and around rounding ties, both clamp edges and far out of range, over more values
    // than one task of the operator takes.
    let scale = 0.037_f32;
    let a: Vec<f32> = (-20_000..20_000).map(|i| i as f32 * scale / 40.0).collect();
    let b: Vec<f32> = (0..40_000)
        .map(|i| match i % 4 {
            0 => 0.5 * scale,
            1 => f32::from_bits((0.5 * scale).to_bits() + 1),
            2 => -7.0,
            _ => 1e6 * (i % 3) as f32,
        })
        .collect();
    for zero_point in [0u8, 128, 255] {
        let model = residual_model(scale, zero_point, a.len(), false, false);
        let reference = run_two(model.clone(), &a, &b);
        let mut rewritten = model;
        assert_eq!(residual_adds(&mut rewritten).unwrap(), 1);
        let names = op_names(&rewritten);
        assert!(names.iter().any(|n| n == "ResidualAdd"), "{names:?}");
        assert!(
            !names.iter().any(|n| n.contains("Quantize") || n == "Add"),
            "{names:?}"
        );
        let ours = run_two(rewritten, &a, &b);
        let same = ours
            .iter()
            .zip(&reference)
            .all(|(x, y)| x.to_bits() == y.to_bits());
        assert!(
            same && ours.len() == reference.len(),
            "zero point {zero_point}"
        );
    }
}

#[test]
fn an_add_that_broadcasts_or_whose_sum_has_another_user_is_left_alone() {
    for (broadcast, shared) in [(true, false), (false, true)] {
        let mut model = residual_model(0.5, 10, 8, broadcast, shared);
        assert_eq!(
            residual_adds(&mut model).unwrap(),
            0,
            "{broadcast} {shared}"
        );
    }
}
