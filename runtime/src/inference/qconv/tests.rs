//! Tests of the dense integer convolution: the portable kernel against the definition, every SIMD
//! kernel against the portable one bit for bit, and the kernel-coverage helpers the depthwise tests
//! share.

use super::*;

/// Deterministic pseudo-random values (xorshift), no dependency.
pub(super) struct Rng(pub(super) u64);
impl Rng {
    pub(super) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub(super) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Random weights for `g`, and per-channel scales and biases.
pub(super) fn parameters(g: &Geometry, rng: &mut Rng) -> (Vec<i8>, Vec<f32>, Vec<f32>) {
    let weights = (0..g.out_channels * g.channels * g.taps())
        .map(|_| (rng.below(256) as i32 - 128) as i8)
        .collect();
    let scales = (0..g.out_channels)
        .map(|o| 0.001 + o as f32 * 1e-4)
        .collect();
    let bias = (0..g.out_channels).map(|o| o as f32 * 0.25 - 1.0).collect();
    (weights, scales, bias)
}

fn case(g: Geometry, in_zero: u8, requant: bool, seed: u64) -> (QConv, Vec<f32>, Vec<i8>) {
    let mut rng = Rng(seed);
    let sx = 0.02f32;
    // Inputs on the quantization grid, as a dequantized tensor is, plus a few off it.
    let input: Vec<f32> = (0..g.channels * g.height * g.width)
        .map(|i| {
            let q = rng.below(256) as f32;
            let off = if i % 7 == 0 { 0.004 } else { 0.0 };
            (q - f32::from(in_zero)) * sx + off
        })
        .collect();
    let (weights, scales, bias) = parameters(&g, &mut rng);
    let requantize = requant.then_some(Requantize {
        inv_scale: 1.0 / 0.05,
        zero_point: 100,
        scale: 0.05,
    });
    let (oh, ow) = g.output();
    let shape = tvec![1, g.out_channels, oh, ow];
    let op = QConv::new(
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

/// Output pixel (`y`, `x`) of channel `o`'s integer sum straight from the definition, at `stride`,
/// on the input quantized with `(inv_scale, zero)`: taps in the padding contribute nothing.
pub(super) fn defined_sum(
    g: &Geometry,
    stride: usize,
    input: &[f32],
    (inv_scale, zero): (f32, u8),
    weight: impl Fn(usize, usize, usize) -> i8,
    (o, y, x): (usize, usize, usize),
) -> i64 {
    let mut sum = 0;
    for c in 0..g.channels {
        for dy in 0..g.kernel[0] {
            for dx in 0..g.kernel[1] {
                let iy = (stride * y + dy)
                    .checked_sub(g.pad[0])
                    .filter(|&iy| iy < g.height);
                let ix = (stride * x + dx)
                    .checked_sub(g.pad[1])
                    .filter(|&ix| ix < g.width);
                let (Some(iy), Some(ix)) = (iy, ix) else {
                    continue;
                };
                let v = input[(c * g.height + iy) * g.width + ix];
                let q = i64::from(quantize_one(v, inv_scale, zero) as u8) - i64::from(zero);
                sum += q * i64::from(weight(o, c, dy * g.kernel[1] + dx));
            }
        }
    }
    sum
}

/// The convolution in f64 straight from the definition, on the quantized input.
fn direct(op: &QConv, weights_of: impl Fn(usize, usize, usize) -> i8, input: &[f32]) -> Vec<f64> {
    let g = &op.geometry;
    let (oh, ow) = g.output();
    let quantization = (op.in_inv_scale, op.in_zero);
    let mut out = vec![0.0; g.out_channels * oh * ow];
    for o in 0..g.out_channels {
        for y in 0..oh {
            for x in 0..ow {
                let sum = defined_sum(g, 1, input, quantization, &weights_of, (o, y, x));
                out[(o * oh + y) * ow + x] =
                    sum as f64 * f64::from(op.scales[o]) + f64::from(op.bias[o]);
            }
        }
    }
    out
}

fn geometries() -> Vec<Geometry> {
    let g = |channels, height, width, kernel: [usize; 2], pad, out_channels| Geometry {
        channels,
        height,
        width,
        kernel,
        pad,
        out_channels,
    };
    vec![
        g(64, 7, 7, [1, 1], [0; 4], 24), // 1x1, channels a multiple of 4 and 8
        g(13, 9, 21, [1, 1], [0; 4], 11), // ragged channels, width over one vector
        g(32, 14, 14, [3, 3], [1; 4], 16), // 3x3 "same"
        g(5, 6, 17, [3, 3], [1, 1, 1, 1], 9), // ragged everything
        g(8, 5, 5, [3, 2], [2, 1, 0, 1], 3), // uneven kernel and padding
        g(3, 4, 4, [3, 3], [0; 4], 2),   // no padding, 2x2 output
        g(6, 5, 9, [3, 1], [1, 0, 1, 0], 5), // rows padded above and below only: one run
    ]
}

#[test]
fn the_portable_kernel_computes_the_exact_integer_convolution() {
    for (i, g) in geometries().into_iter().enumerate() {
        for zero in [0u8, 3, 128] {
            let (op, input, weights) = case(g.clone(), zero, false, 7 + i as u64);
            let taps = g.taps();
            let expected = direct(
                &op,
                |o, c, t| weights[(o * g.channels + c) * taps + t],
                &input,
            );
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
fn requantized_outputs_lie_on_the_output_grid() {
    let (op, input, _) = case(geometries()[3].clone(), 3, true, 99);
    let (plain, _, _) = case(geometries()[3].clone(), 3, false, 99);
    let mut out = vec![0.0; op.out_shape.iter().product()];
    let mut raw = out.clone();
    op.convolve(&input, &mut out, Kernel::Portable);
    plain.convolve(&input, &mut raw, Kernel::Portable);
    for (&q, &v) in out.iter().zip(&raw) {
        let step = (q / 0.05).round();
        assert!(
            (q - step * 0.05).abs() < 1e-6,
            "{q} is not a multiple of the scale"
        );
        assert!(
            (-100.0..=155.0).contains(&step),
            "{q} is outside the u8 range"
        );
        let expected = (v * (1.0 / 0.05)).clamp(-100.0, 155.0).round_ties_even() * 0.05;
        assert_eq!(q.to_bits(), expected.to_bits());
    }
}

/// Kernels this test must find on this machine, named in `PRESCREEN_REQUIRE_KERNELS`
/// (comma-separated [`Kernel::name`]s): `make test-arm` sets it for the emulated CPUs that
/// have them, so a detection bug cannot turn the bit-exactness test into a skip.
pub(super) fn required_kernels() -> Vec<String> {
    std::env::var("PRESCREEN_REQUIRE_KERNELS")
        .unwrap_or_default()
        .split(',')
        .filter(|k| !k.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A kernel of this architecture that this CPU does not run, so a test cannot try it: a
/// printed skip, which fails under `CI` unless `PRESCREEN_WAIVE_KERNELS` (comma-separated
/// names) waives it. A CI machine that loses a kernel must say so; `make test-arm` waives what
/// each emulated CPU lacks. Kernels of the other architecture are not this machine's concern.
pub(super) fn missing(kernel: Kernel) {
    let native = match kernel {
        Kernel::Portable => true,
        Kernel::Vnni => cfg!(target_arch = "x86_64"),
        Kernel::Dotprod | Kernel::I8mm | Kernel::Neon => cfg!(target_arch = "aarch64"),
    };
    if native {
        missing_named(kernel.name());
    }
}

/// [`missing`] for a kernel of this architecture known by its name.
pub(crate) fn missing_named(name: &str) {
    let waived = std::env::var("PRESCREEN_WAIVE_KERNELS").unwrap_or_default();
    let waived = waived.split(',').any(|k| k == name);
    assert!(
        std::env::var_os("CI").is_none() || waived,
        "this CPU has no {name} kernel; under CI that fails unless PRESCREEN_WAIVE_KERNELS names it"
    );
    let note = if waived { " (waived)" } else { "" };
    eprintln!("SKIPPED {name}: not on this CPU{note}");
}

/// Asserts that a SIMD kernel's outputs are the portable kernel's, bit for bit.
pub(super) fn assert_same_bits(
    kernel: Kernel,
    what: &dyn std::fmt::Debug,
    simd: &[f32],
    portable: &[f32],
) {
    assert_eq!(simd.len(), portable.len());
    for (k, (a, b)) in simd.iter().zip(portable).enumerate() {
        assert_eq!(
            a.to_bits(),
            b.to_bits(),
            "{} {what:?}: output {k}: {a} vs {b}",
            kernel.name()
        );
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
    for kernel in Kernel::SIMD {
        if !kernel.available() {
            // The loader never selects a kernel the CPU lacks (`Kernel::detect`).
            missing(kernel);
            continue;
        }
        for (i, g) in geometries().into_iter().enumerate() {
            for (zero, requant) in [
                (0u8, false),
                (0, true),
                (3, true),
                (200, false),
                (128, true),
                (255, true),
            ] {
                let (op, input, _) = case(g.clone(), zero, requant, 1000 + i as u64);
                let n = op.out_shape.iter().product();
                let (mut simd, mut portable) = (vec![f32::NAN; n], vec![f32::NAN; n]);
                op.convolve(&input, &mut simd, kernel);
                op.convolve(&input, &mut portable, Kernel::Portable);
                assert_same_bits(kernel, &(&g, zero), &simd, &portable);
            }
        }
    }
}

#[test]
fn the_neon_kernel_sums_two_products_in_16_bits_only_where_they_cannot_overflow() {
    // 8 input channels (one pair of groups), 1×1, 2 output channels: the NEON kernel adds input
    // channel c's and c + 4's products in one 16-bit lane.
    let g = Geometry {
        channels: 8,
        height: 2,
        width: 5,
        kernel: [1, 1],
        pad: [0; 4],
        out_channels: 2,
    };
    let build = |weights: &[i8]| {
        QConv::new(
            g.clone(),
            0.02,
            0,
            weights,
            &[0.01; 2],
            None,
            None,
            tvec![1, 2, 2, 5],
        )
        .unwrap()
    };
    // The check itself runs on every host; the operator keeps its verdict only where the NEON
    // kernel can run (elsewhere it is `false`, the pass skipped at load).
    let safe = |weights: &[i8]| {
        let op = build(weights);
        let verdict = neon_safe(&op.geometry, &op.packed);
        assert_eq!(op.neon_safe, verdict && Kernel::Neon.available());
        verdict
    };
    let mut weights = vec![-127i8; 16];
    assert!(safe(&weights));
    // −128 at inputs 1 and 6 of output 0, and at 3 of output 1: never both places of a pair.
    (weights[1], weights[6], weights[8 + 3]) = (-128, -128, -128);
    assert!(safe(&weights));
    // Inputs 2 and 6 of output 1: a pair.
    weights[8 + 2] = -128;
    weights[8 + 6] = -128;
    assert!(!safe(&weights));
    let op = build(&weights);
    // Every input at q = 0, i.e. −128 in the kernels' offset form: (−128)·(−128) twice is 2¹⁵,
    // past i16. Every kernel must still give the portable kernel's outputs.
    let input = vec![0.0f32; 8 * 10];
    let mut portable = vec![f32::NAN; 20];
    op.convolve(&input, &mut portable, Kernel::Portable);
    for kernel in Kernel::SIMD.into_iter().filter(|k| k.available()) {
        let mut simd = vec![f32::NAN; 20];
        op.convolve(&input, &mut simd, kernel);
        assert_same_bits(kernel, &"-128 pairs", &simd, &portable);
    }
    assert!(!safe(&[-128i8; 16]));
}

/// Every third value of `input` replaced by one of NaN, the infinities, `-0.0`, values far
/// outside any quantization grid, ties and the smallest normal number, in turn.
pub(super) fn with_extremes(input: &mut [f32]) {
    const EXTREMES: [f32; 10] = [
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        -0.0,
        1e30,
        -1e30,
        0.01,
        0.03,
        -0.01,
        f32::MIN_POSITIVE,
    ];
    for (i, v) in input.iter_mut().enumerate().step_by(3) {
        *v = EXTREMES[i / 3 % EXTREMES.len()];
    }
}

#[test]
fn extreme_inputs_quantize_alike_in_every_kernel() {
    // NaN, infinities, values far outside the grid and exact ties: the SIMD quantizers must
    // clamp and round them as `quantize_one` does.
    let g = Geometry {
        channels: 6,
        height: 3,
        width: 11,
        kernel: [1, 1],
        pad: [0; 4],
        out_channels: 9,
    };
    // 7, and 0 (the NEON quantizer's saturating path).
    for zero in [7, 0] {
        let (op, mut input, _) = case(g.clone(), zero, true, 5);
        with_extremes(&mut input);
        for kernel in Kernel::SIMD {
            if !kernel.available() {
                missing(kernel);
                continue;
            }
            let n = op.out_shape.iter().product();
            let (mut simd, mut portable) = (vec![0f32; n], vec![1f32; n]);
            op.convolve(&input, &mut simd, kernel);
            op.convolve(&input, &mut portable, Kernel::Portable);
            assert_same_bits(kernel, &("extreme inputs", zero), &simd, &portable);
        }
    }
}

#[test]
fn absurd_geometries_are_refused() {
    let g = Geometry {
        channels: 1 << 20,
        height: 2,
        width: 2,
        kernel: [1, 1],
        pad: [0; 4],
        out_channels: 1,
    };
    assert!(!g.is_valid());
    let g = Geometry {
        kernel: [3, 3],
        pad: [3, 0, 0, 0],
        channels: 4,
        height: 4,
        width: 4,
        out_channels: 1,
    };
    assert!(!g.is_valid());
}
