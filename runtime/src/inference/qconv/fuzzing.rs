//! The integer convolutions, dense and depthwise, built from arbitrary bytes, for the fuzz target
//! `qconv` (fuzz/fuzz_targets/qconv.rs, feature `fuzzing`) and the unit test below: every SIMD
//! kernel this CPU runs is compared with the portable one bit for bit, on geometries (strides too,
//! for the depthwise one), zero points, weights, scales and inputs (NaN and infinities included)
//! that the bytes choose. Under libFuzzer the
//! kernels run with AddressSanitizer watching every load and store.

use super::{DepthwiseGeometry, Geometry, Kernel, QConv, QDepthwise, Requantize};
use tract_onnx::prelude::tvec;

/// Reads small numbers off the front of the input; zeros once it is used up.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn byte(&mut self) -> u8 {
        let (b, rest) = self.0.split_first().map_or((0, &[][..]), |(b, r)| (*b, r));
        self.0 = rest;
        b
    }

    /// A number in `lo..=hi`.
    fn within(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.byte() as usize % (hi - lo + 1)
    }

    /// Padding (top, left, bottom, right), each side below the kernel's size.
    fn pad(&mut self, kernel: [usize; 2]) -> [usize; 4] {
        [
            self.within(0, kernel[0] - 1),
            self.within(0, kernel[1] - 1),
            self.within(0, kernel[0] - 1),
            self.within(0, kernel[1] - 1),
        ]
    }

    /// An input value: mostly on the quantization grid (as a dequantized tensor is), sometimes
    /// off it, far outside the u8 range, or not finite.
    fn value(&mut self, scale: f32, zero: u8) -> f32 {
        let q = self.byte();
        match self.byte() {
            0 => f32::NAN,
            1 => f32::INFINITY,
            2 => f32::NEG_INFINITY,
            3 => 1e30,
            4 => -0.0,
            5..=31 => (f32::from(q) - f32::from(zero)) * scale + 0.3 * scale,
            _ => (f32::from(q) - f32::from(zero)) * scale,
        }
    }
}

/// What both operators take besides their geometry, read off the bytes.
struct Parameters {
    in_zero: u8,
    in_scale: f32,
    weights: Vec<i8>,
    weight_scales: Vec<f32>,
    bias: Option<Vec<f32>>,
    requantize: Option<Requantize>,
    input: Vec<f32>,
}

impl Parameters {
    fn read(b: &mut Bytes, channels: usize, weights: usize, inputs: usize) -> Parameters {
        let in_zero = b.byte();
        let in_scale = 0.001 + f32::from(b.byte()) * 1e-3;
        let weights = (0..weights).map(|_| b.byte() as i8).collect();
        let weight_scales = (0..channels)
            .map(|_| (1 + b.within(0, 255)) as f32 * 1e-4)
            .collect();
        let bias = (b.byte() & 1 == 1).then(|| {
            (0..channels)
                .map(|_| (b.byte() as i8) as f32 * 0.125)
                .collect::<Vec<f32>>()
        });
        let requantize = (b.byte() & 1 == 1).then(|| {
            let scale = 0.005 + f32::from(b.byte()) * 1e-3;
            Requantize {
                inv_scale: scale.recip(),
                zero_point: b.byte(),
                scale,
            }
        });
        let input = (0..inputs).map(|_| b.value(in_scale, in_zero)).collect();
        Parameters {
            in_zero,
            in_scale,
            weights,
            weight_scales,
            bias,
            requantize,
            input,
        }
    }
}

/// The SIMD kernels this CPU runs.
fn dense() -> impl Iterator<Item = Kernel> {
    Kernel::SIMD.into_iter().filter(|k| k.available())
}

/// The SIMD kernels this CPU runs that have a depthwise twin.
fn depthwise() -> impl Iterator<Item = Kernel> {
    dense().filter(|k| k.runs_depthwise())
}

/// Runs `convolve` on the portable kernel and on `kernels`, and compares
/// their `n` outputs bit for bit. Returns how many SIMD kernels it compared.
fn compare(
    n: usize,
    what: &dyn std::fmt::Debug,
    kernels: impl Iterator<Item = Kernel>,
    convolve: impl Fn(&mut [f32], Kernel),
) -> usize {
    let mut portable = vec![f32::NAN; n];
    convolve(&mut portable, Kernel::Portable);
    let mut compared = 0;
    for kernel in kernels {
        let mut simd = vec![f32::NAN; n];
        convolve(&mut simd, kernel);
        for (k, (a, p)) in simd.iter().zip(&portable).enumerate() {
            assert_eq!(
                a.to_bits(),
                p.to_bits(),
                "{} {what:?}: output {k}: {a} vs {p}",
                kernel.name()
            );
        }
        compared += 1;
    }
    compared
}

/// Builds a convolution from `data` and runs it on every SIMD kernel this CPU has and on the
/// portable one. Returns how many SIMD kernels it compared (0 when the bytes chose a geometry the
/// operator refuses, or the CPU has none).
///
/// # Panics
///
/// When a SIMD kernel's output differs from the portable kernel's in any bit, or the operator
/// refuses parameters it was given in range.
pub fn fuzz_kernels(data: &[u8]) -> usize {
    let mut b = Bytes(data);
    let kernel = [b.within(1, 4), b.within(1, 4)];
    let pad = b.pad(kernel);
    let geometry = Geometry {
        channels: b.within(1, 40),
        height: b.within(1, 12),
        width: b.within(1, 40),
        kernel,
        pad,
        out_channels: b.within(1, 20),
    };
    if !geometry.is_valid() {
        return 0;
    }
    let g = geometry.clone();
    let p = Parameters::read(
        &mut b,
        g.out_channels,
        g.out_channels * g.channels * g.taps(),
        g.channels * g.height * g.width,
    );
    let (oh, ow) = g.output();
    let op = QConv::new(
        geometry,
        p.in_scale,
        p.in_zero,
        &p.weights,
        &p.weight_scales,
        p.bias.as_deref(),
        p.requantize,
        tvec![1, g.out_channels, oh, ow],
    )
    .expect("parameters in range");
    compare(
        g.out_channels * oh * ow,
        &(&g, p.in_zero),
        dense(),
        |out, k| op.convolve(&p.input, out, k),
    )
}

/// [`fuzz_kernels`] for the depthwise convolution ([`QDepthwise`]): kernels up to 5x4, strides
/// up to 3, from the same kind of bytes.
///
/// # Panics
///
/// As [`fuzz_kernels`].
pub fn fuzz_depthwise(data: &[u8]) -> usize {
    let mut b = Bytes(data);
    let kernel = [b.within(1, 5), b.within(1, 4)];
    let pad = b.pad(kernel);
    let geometry = DepthwiseGeometry {
        channels: b.within(1, 40),
        height: b.within(1, 12),
        width: b.within(1, 40),
        kernel,
        stride: [b.within(1, 3), b.within(1, 3)],
        pad,
    };
    if !geometry.is_valid() {
        return 0;
    }
    let g = geometry.clone();
    let p = Parameters::read(
        &mut b,
        g.channels,
        g.channels * kernel[0] * kernel[1],
        g.channels * g.height * g.width,
    );
    let (oh, ow) = g.output();
    let op = QDepthwise::new(
        geometry,
        p.in_scale,
        p.in_zero,
        &p.weights,
        &p.weight_scales,
        p.bias.as_deref(),
        p.requantize,
        tvec![1, g.channels, oh, ow],
    )
    .expect("parameters in range");
    compare(
        g.channels * oh * ow,
        &(&g, p.in_zero),
        depthwise(),
        |out, k| op.convolve(&p.input, out, k),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fuzz target's seeds (fuzz/seeds/qconv) and 300 pseudo-random byte strings: the same
    /// comparison in every test run, on whichever kernels the CPU (or qemu's emulated one) has.
    #[test]
    fn random_convolutions_agree_bit_for_bit_on_every_kernel() {
        let (simd, simd_depthwise) = (dense().count(), depthwise().count());
        let seeds = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/seeds/qconv");
        let mut files = 0;
        for entry in std::fs::read_dir(seeds).expect("the fuzz target's seeds") {
            let path = entry.unwrap().path();
            // Each seed is a valid geometry, so every kernel runs on it.
            assert_eq!(
                fuzz_kernels(&std::fs::read(&path).unwrap()),
                simd,
                "{path:?}"
            );
            files += 1;
        }
        assert!(files >= 5, "{files} seeds in {seeds}");
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let (mut valid, mut valid_depthwise) = (0, 0);
        for len in (0..300).map(|i| i * 37 % 4000) {
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state >> 24) as u8
                })
                .collect();
            let compared = fuzz_kernels(&data);
            assert!(compared == 0 || compared == simd);
            valid += usize::from(compared == simd);
            let compared = fuzz_depthwise(&data);
            assert!(compared == 0 || compared == simd_depthwise);
            valid_depthwise += usize::from(compared == simd_depthwise);
        }
        // Most draws are valid geometries (only absurd padding is refused), so the kernels ran.
        assert!(simd == 0 || valid > 200, "{valid} valid draws");
        assert!(
            simd_depthwise == 0 || valid_depthwise > 150,
            "{valid_depthwise} valid depthwise draws"
        );
    }

    #[test]
    fn empty_input_builds_the_smallest_convolution() {
        // All-zero bytes: a 1x1 kernel over one channel of one pixel, one output channel.
        assert_eq!(fuzz_kernels(&[]), dense().count());
        assert_eq!(fuzz_depthwise(&[]), depthwise().count());
    }
}
