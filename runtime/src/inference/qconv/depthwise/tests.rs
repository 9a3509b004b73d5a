use super::super::tests::{assert_same_bits, missing, required_kernels, with_extremes, Rng};
use super::*;

/// A depthwise convolution with pseudo-random weights, scales and bias, and an input mostly on
/// the quantization grid (as a dequantized tensor is) with a few values off it.
fn case(
    g: DepthwiseGeometry,
    in_zero: u8,
    requant: bool,
    seed: u64,
) -> (QDepthwise, Vec<f32>, Vec<i8>) {
    let mut rng = Rng(seed);
    let sx = 0.02f32;
    let input: Vec<f32> = (0..g.channels * g.height * g.width)
        .map(|i| {
            let q = rng.below(256) as f32;
            let off = if i % 7 == 0 { 0.004 } else { 0.0 };
            (q - f32::from(in_zero)) * sx + off
        })
        .collect();
    let weights: Vec<i8> = (0..g.channels * g.kernel[0] * g.kernel[1])
        .map(|_| (rng.below(256) as i32 - 128) as i8)
        .collect();
    let scales: Vec<f32> = (0..g.channels).map(|c| 0.001 + c as f32 * 1e-4).collect();
    let bias: Vec<f32> = (0..g.channels).map(|c| c as f32 * 0.25 - 1.0).collect();
    let requantize = requant.then_some(Requantize {
        inv_scale: 1.0 / 0.05,
        zero_point: 100,
        scale: 0.05,
    });
    let (oh, ow) = g.output();
    let shape = tvec![1, g.channels, oh, ow];
    let op = QDepthwise::new(
        g,
        sx,
        in_zero,
        &weights,
        &scales,
        Some(&bias),
        requantize,
        shape,
    )
    .unwrap();
    (op, input, weights)
}

/// The convolution in f64 straight from ONNX's definition, on the input quantized by
/// [`quantize_one`].
fn direct(op: &QDepthwise, weights: &[i8], input: &[f32]) -> Vec<f64> {
    let g = &op.geometry;
    let (oh, ow) = g.output();
    let [kh, kw] = g.kernel;
    let mut out = vec![0.0; g.channels * oh * ow];
    for c in 0..g.channels {
        for y in 0..oh {
            for x in 0..ow {
                let mut sum = 0i64;
                for dy in 0..kh {
                    for dx in 0..kw {
                        let (iy, ix) = (y * g.stride[0] + dy, x * g.stride[1] + dx);
                        if iy < g.pad[0] || ix < g.pad[1] {
                            continue;
                        }
                        let (iy, ix) = (iy - g.pad[0], ix - g.pad[1]);
                        if iy >= g.height || ix >= g.width {
                            continue;
                        }
                        let v = input[(c * g.height + iy) * g.width + ix];
                        let q = i64::from(quantize_one(v, op.in_inv_scale, op.in_zero) as u8)
                            - i64::from(op.in_zero);
                        sum += q * i64::from(weights[(c * kh + dy) * kw + dx]);
                    }
                }
                out[(c * oh + y) * ow + x] =
                    sum as f64 * f64::from(op.scales[c]) + f64::from(op.bias[c]);
            }
        }
    }
    out
}

fn geometries() -> Vec<DepthwiseGeometry> {
    let g = |channels, height, width, kernel, stride, pad| DepthwiseGeometry {
        channels,
        height,
        width,
        kernel,
        stride,
        pad,
    };
    vec![
        // MobileNetV2's two: 3x3 "same" at stride 1, and stride 2 padded bottom and right only.
        g(24, 14, 14, [3, 3], [1, 1], [1; 4]),
        g(19, 28, 28, [3, 3], [2, 2], [0, 0, 1, 1]),
        // Ragged: odd sizes, more than one task of channels, a width over one vector.
        g(37, 9, 21, [3, 3], [1, 1], [1; 4]),
        g(5, 7, 35, [3, 3], [2, 2], [1; 4]),
        // Other kernels and strides the operator takes.
        g(3, 6, 6, [1, 1], [1, 1], [0; 4]),
        g(4, 8, 9, [5, 4], [3, 2], [2, 3, 1, 0]),
        g(2, 3, 3, [3, 3], [1, 1], [0; 4]),
        g(1, 1, 1, [3, 3], [2, 1], [1, 2, 1, 0]),
        // Horizontal strides 3 and 4: the AVX-512 packer's widest shuffles and reads.
        g(2, 4, 19, [3, 3], [2, 3], [1; 4]),
        g(3, 5, 23, [2, 4], [1, 4], [1, 3, 0, 2]),
    ]
}

#[test]
fn the_portable_kernel_computes_the_exact_integer_convolution() {
    for (i, g) in geometries().into_iter().enumerate() {
        for zero in [0u8, 3, 128, 255] {
            let (op, input, weights) = case(g.clone(), zero, false, 7 + i as u64);
            let expected = direct(&op, &weights, &input);
            let mut out = vec![f32::NAN; expected.len()];
            op.convolve(&input, &mut out, Kernel::Portable);
            for (k, (&got, &want)) in out.iter().zip(&expected).enumerate() {
                assert!(
                    (f64::from(got) - want).abs() <= 1e-5 * want.abs().max(1.0),
                    "{g:?} zero point {zero}: output {k} is {got}, expected {want}"
                );
            }
        }
    }
}

#[test]
fn the_output_shape_is_onnx_s() {
    // floor((H + pads − k) / stride) + 1, the windows that fit whole.
    let g = &geometries();
    assert_eq!(g[0].output(), (14, 14));
    assert_eq!(g[1].output(), (14, 14));
    assert_eq!(g[3].output(), (4, 18));
    assert_eq!(g[5].output(), (3, 5));
    assert_eq!(g[7].output(), (1, 1));
}

#[test]
fn quantize_byte_rounds_as_quantize_one() {
    // Every tie and its neighbours across the grid, the clamp bounds and the non-finite values.
    let mut values: Vec<f32> = (-600..600)
        .flat_map(|i| {
            let v = i as f32 * 0.5;
            [v, v.next_up(), v.next_down()]
        })
        .collect();
    values.extend([
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        -0.0,
        1e30,
        -1e30,
    ]);
    for zero in [0u8, 1, 127, 128, 254, 255] {
        for &v in &values {
            assert_eq!(
                u32::from(quantize_byte(v, 1.0, f32::from(zero))),
                quantize_one(v, 1.0, zero),
                "{v} with zero point {zero}"
            );
        }
    }
}

#[test]
fn requantized_outputs_lie_on_the_output_grid() {
    let (op, input, _) = case(geometries()[3].clone(), 3, true, 99);
    let (plain, _, _) = case(geometries()[3].clone(), 3, false, 99);
    let mut out = vec![0.0; op.out_shape.iter().product()];
    let mut raw = out.clone();
    op.convolve(&input, &mut out, Kernel::Portable);
    plain.convolve(&input, &mut raw, Kernel::Portable);
    for (&q, &v) in out.iter().zip(&raw) {
        let expected = (v * (1.0 / 0.05)).clamp(-100.0, 155.0).round_ties_even() * 0.05;
        assert_eq!(q.to_bits(), expected.to_bits(), "{q} from {v}");
    }
}

#[test]
fn every_simd_kernel_matches_the_portable_one_bit_for_bit() {
    let required = required_kernels();
    for name in &required {
        assert!(
            Kernel::SIMD
                .iter()
                .any(|k| k.name() == name && k.available()),
            "PRESCREEN_REQUIRE_KERNELS names {name}, which this CPU does not run"
        );
    }
    for kernel in Kernel::SIMD.into_iter().filter(|k| k.runs_depthwise()) {
        if !kernel.available() {
            missing(kernel);
            continue;
        }
        for (i, g) in geometries().into_iter().enumerate() {
            for (zero, requant) in [
                (0u8, false),
                (3, true),
                (200, false),
                (128, true),
                (255, true),
            ] {
                let (op, input, _) = case(g.clone(), zero, requant, 1000 + i as u64);
                let n = op.out_shape.iter().product();
                let (mut simd, mut portable) = (vec![f32::NAN; n], vec![0f32; n]);
                op.convolve(&input, &mut simd, kernel);
                op.convolve(&input, &mut portable, Kernel::Portable);
                assert_same_bits(kernel, &(&g, zero), &simd, &portable);
            }
        }
    }
}

#[test]
fn extreme_inputs_and_weights_agree_in_every_kernel() {
    // NaN, infinities, values far outside the grid, exact ties, and the extreme weights (−128
    // against 255 is the largest product): every kernel must clamp, round and sum alike.
    let g = geometries()[3].clone();
    let (_, mut input, _) = case(g.clone(), 7, true, 5);
    with_extremes(&mut input);
    let weights: Vec<i8> = (0..g.channels * 9)
        .map(|i| if i % 2 == 0 { -128 } else { 127 })
        .collect();
    let (oh, ow) = g.output();
    let op = QDepthwise::new(
        g.clone(),
        0.02,
        0,
        &weights,
        &vec![0.01; g.channels],
        None,
        None,
        tvec![1, g.channels, oh, ow],
    )
    .unwrap();
    let n = g.channels * oh * ow;
    let mut portable = vec![0f32; n];
    op.convolve(&input, &mut portable, Kernel::Portable);
    let expected = direct(&op, &weights, &input);
    for (&got, &want) in portable.iter().zip(&expected) {
        assert!((f64::from(got) - want).abs() <= 1e-5 * want.abs().max(1.0));
    }
    for kernel in Kernel::SIMD.into_iter().filter(|k| k.runs_depthwise()) {
        if !kernel.available() {
            missing(kernel);
            continue;
        }
        let mut simd = vec![1f32; n];
        op.convolve(&input, &mut simd, kernel);
        assert_same_bits(kernel, &"extreme inputs and weights", &simd, &portable);
    }
}

#[test]
fn absurd_geometries_are_refused() {
    let fine = geometries()[0].clone();
    assert!(fine.is_valid());
    let with = |change: fn(&mut DepthwiseGeometry)| {
        let mut g = fine.clone();
        change(&mut g);
        g
    };
    let refused = [
        with(|g| g.kernel = [3, 5]),
        with(|g| g.kernel = [17, 3]),
        with(|g| g.stride = [0, 1]),
        with(|g| g.stride = [2, 5]),
        with(|g| g.pad = [3, 0, 0, 0]),
        with(|g| g.channels = 0),
        with(|g| g.width = usize::MAX - 1),
        with(|g| g.channels = usize::MAX / 8),
        with(|g| {
            g.height = 1;
            g.pad = [0; 4];
        }),
    ];
    for g in refused {
        assert!(!g.is_valid(), "{g:?}");
        let weights = vec![0i8; 9];
        assert!(QDepthwise::new(g, 1.0, 0, &weights, &[1.0], None, None, tvec![1]).is_err());
    }
}
