//! Stride-2 dense convolutions on the stride-1 integer kernels. A convolution with stride 2 reads
//! every other pixel; split the zero-padded input into 2×2 blocks and stack each block's four
//! pixels as channels (`[C][Hp][Wp] → [4C][Hp/2][Wp/2]`, "space to depth"), and the same
//! convolution is a stride-1 one over the stacked image with a kernel half as tall and wide
//! (rounded up; the taps that fall outside the original kernel get zero weights). open_nsfw's first
//! convolution, 7×7 with stride 2 over 3 channels, becomes a 4×4 one over 12: its integer sums are
//! the same sums in another order, so [`QConv`] computes it exactly, on every kernel.
//!
//! [`SpaceToDepth`] is the f32 rearrangement the rewrite puts before the [`QConv`]. It pads with
//! `0.0`, which the convolution's quantizer maps to the input's zero point: what the float graph's
//! zero padding means, and what [`QConv`]'s own padding holds.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

use super::Geometry;

/// The space-to-depth rearrangement of one CHW image (see the module documentation): channel
/// `4c + 2py + px` of the output holds the pixels `(2y + py, 2x + px)` of the input's channel `c`,
/// zero-padded by `before` (top, left) and up to the output's size after.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct SpaceToDepth {
    /// The input's channels, height and width.
    channels: usize,
    height: usize,
    width: usize,
    /// Zero rows above and columns left of the input.
    before: (usize, usize),
    /// The output planes' height and width.
    out_height: usize,
    out_width: usize,
    out_shape: TVec<usize>,
}

impl SpaceToDepth {
    /// The convolution `g` (its `pad` included) with stride 2 as a [`SpaceToDepth`] followed by a
    /// stride-1 convolution: the rearrangement, the stride-1 geometry, and its weights (OIHW, from
    /// `weights` in `g`'s OIHW order). `None` where the stride-1 form would not have the strided
    /// convolution's output size or would be out of the integer kernels' range. `batch` says
    /// whether the tensors have a leading batch axis of 1.
    pub fn stride_two(
        g: &Geometry,
        weights: &[i8],
        batch: bool,
    ) -> Option<(SpaceToDepth, Geometry, Vec<i8>)> {
        if !g.is_valid() || weights.len() != g.out_channels * g.channels * g.taps() {
            return None;
        }
        let (hp, wp) = g.padded();
        let strided = ((hp - g.kernel[0]) / 2 + 1, (wp - g.kernel[1]) / 2 + 1);
        let stacked = Geometry {
            channels: g.channels.checked_mul(4)?,
            height: hp.div_ceil(2),
            width: wp.div_ceil(2),
            kernel: [g.kernel[0].div_ceil(2), g.kernel[1].div_ceil(2)],
            pad: [0; 4],
            out_channels: g.out_channels,
        };
        if !stacked.is_valid() || stacked.output() != strided {
            return None;
        }
        let (taps, stacked_taps) = (g.taps(), stacked.taps());
        let mut stacked_weights = vec![0i8; g.out_channels * stacked.channels * stacked_taps];
        for o in 0..g.out_channels {
            for c in 0..g.channels {
                for dy in 0..g.kernel[0] {
                    for dx in 0..g.kernel[1] {
                        let c4 = 4 * c + 2 * (dy % 2) + dx % 2;
                        let t = dy / 2 * stacked.kernel[1] + dx / 2;
                        stacked_weights[(o * stacked.channels + c4) * stacked_taps + t] =
                            weights[(o * g.channels + c) * taps + dy * g.kernel[1] + dx];
                    }
                }
            }
        }
        let mut out_shape: TVec<usize> = tvec![stacked.channels, stacked.height, stacked.width];
        if batch {
            out_shape.insert(0, 1);
        }
        let op = SpaceToDepth {
            channels: g.channels,
            height: g.height,
            width: g.width,
            before: (g.pad[0], g.pad[1]),
            out_height: stacked.height,
            out_width: stacked.width,
            out_shape,
        };
        Some((op, stacked, stacked_weights))
    }

    /// The operator's line in tract's graph dumps.
    fn describe(&self) -> String {
        format!(
            "{}x{}x{} padded {:?} to {}x{}x{}",
            self.channels,
            self.height,
            self.width,
            self.before,
            4 * self.channels,
            self.out_height,
            self.out_width
        )
    }

    /// Writes `input`'s 2×2 blocks as channels into `output`, padding with `0.0`, the input
    /// starting `before` (rows, columns) into the padded image.
    ///
    /// Each input row is copied once into a padded row (its padding `0.0` from the start), whose
    /// even and odd columns then go to the row's two planes in one pass, a loop the compiler
    /// vectorizes (`ld2` on aarch64): a column at a time it took 13 aarch64 instructions per
    /// value.
    fn rearrange(&self, input: &[f32], output: &mut [f32], before: (usize, usize)) {
        let (h, w) = (self.height, self.width);
        let (oh, ow) = (self.out_height, self.out_width);
        let plane = oh * ow;
        assert!(input.len() == self.channels * h * w && output.len() == 4 * self.channels * plane);
        let (top, left) = before;
        // The padded row: `left` zeros, the input row, zeros to its end (two per output column:
        // the padded width rounded up to even, at least `left + w`).
        assert!(left + w <= 2 * ow, "the padded width holds the input row");
        let mut padded = vec![0.0f32; 2 * ow];
        for (channel, planes) in input
            .chunks_exact(h * w)
            .zip(output.chunks_exact_mut(4 * plane))
        {
            // Planes 2·py + px of the channel: row phase py, column phase px.
            for (py, pair) in planes.chunks_exact_mut(2 * plane).enumerate() {
                let (evens, odds) = pair.split_at_mut(plane);
                for (y, (even, odd)) in evens
                    .chunks_exact_mut(ow)
                    .zip(odds.chunks_exact_mut(ow))
                    .enumerate()
                {
                    // The padded image's row 2y + py is the input's row 2y + py − top.
                    let Some(iy) = (2 * y + py).checked_sub(top).filter(|&iy| iy < h) else {
                        even.fill(0.0);
                        odd.fill(0.0);
                        continue;
                    };
                    padded[left..left + w].copy_from_slice(&channel[iy * w..(iy + 1) * w]);
                    for ((e, o), columns) in even
                        .iter_mut()
                        .zip(odd.iter_mut())
                        .zip(padded.chunks_exact(2))
                    {
                        *e = columns[0];
                        *o = columns[1];
                    }
                }
            }
        }
    }
}

f32_operator!(
    SpaceToDepth,
    "SpaceToDepth",
    rearrange,
    before,
    |op: &SpaceToDepth| op.channels * op.height * op.width
);

#[cfg(test)]
mod tests {
    use super::super::tests::{assert_same_bits, defined_sum, missing, parameters, Rng};
    use super::super::{Kernel, QConv, Requantize};
    use super::*;

    /// A stride-2 convolution straight from the definition, on the quantized input: exact
    /// integer sums, then the operator's epilogue.
    #[allow(clippy::too_many_arguments)]
    fn strided(
        g: &Geometry,
        input: &[f32],
        weights: &[i8],
        sx: f32,
        zx: u8,
        scales: &[f32],
        bias: &[f32],
        requantize: Option<Requantize>,
    ) -> Vec<f32> {
        let (hp, wp) = g.padded();
        let (oh, ow) = ((hp - g.kernel[0]) / 2 + 1, (wp - g.kernel[1]) / 2 + 1);
        let mut out = vec![0.0; g.out_channels * oh * ow];
        let weight = |o, c, t| weights[(o * g.channels + c) * g.taps() + t];
        for o in 0..g.out_channels {
            for y in 0..oh {
                for x in 0..ow {
                    let sum = defined_sum(g, 2, input, (sx.recip(), zx), weight, (o, y, x));
                    let sum = i32::try_from(sum).expect("an i32 sum");
                    out[(o * oh + y) * ow + x] =
                        super::super::finish(sum, sx * scales[o], bias[o], requantize);
                }
            }
        }
        out
    }

    fn geometry(
        channels: usize,
        size: [usize; 2],
        kernel: usize,
        pad: [usize; 4],
        out_channels: usize,
    ) -> Geometry {
        Geometry {
            channels,
            height: size[0],
            width: size[1],
            kernel: [kernel, kernel],
            pad,
            out_channels,
        }
    }

    /// open_nsfw's first convolution (7×7, pads 3, even size), odd sizes, padding after only
    /// (MobileNet's), and even kernels: the rearranged convolution gives the strided one's
    /// outputs bit for bit on the portable kernel and every SIMD kernel this CPU has.
    #[test]
    fn a_stride_two_convolution_is_the_stride_one_convolution_of_its_blocks() {
        let cases = [
            geometry(3, [30, 30], 7, [3; 4], 16),
            geometry(3, [17, 23], 7, [3; 4], 9),
            geometry(5, [9, 12], 3, [0, 0, 1, 1], 8),
            geometry(8, [10, 10], 3, [1; 4], 24),
            geometry(4, [12, 12], 2, [0; 4], 8),
            geometry(2, [11, 11], 5, [2, 1, 2, 1], 3),
        ];
        for (i, g) in cases.into_iter().enumerate() {
            let mut rng = Rng(41 + i as u64);
            let (sx, zx) = (0.02f32, [0u8, 3, 128][i % 3]);
            let input: Vec<f32> = (0..g.channels * g.height * g.width)
                .map(|_| (rng.below(256) as f32 - f32::from(zx)) * sx)
                .collect();
            let (weights, scales, bias) = parameters(&g, &mut rng);
            for requantize in [
                None,
                Some(Requantize {
                    inv_scale: 1.0 / 0.05,
                    zero_point: 100,
                    scale: 0.05,
                }),
            ] {
                let want = strided(&g, &input, &weights, sx, zx, &scales, &bias, requantize);
                let (s2d, stacked, stacked_weights) =
                    SpaceToDepth::stride_two(&g, &weights, true).expect("a valid geometry");
                let (oh, ow) = stacked.output();
                assert_eq!(want.len(), g.out_channels * oh * ow, "{g:?}");
                let mut blocks = vec![f32::NAN; stacked.channels * stacked.height * stacked.width];
                s2d.rearrange(&input, &mut blocks, s2d.before);
                let op = QConv::new(
                    stacked,
                    sx,
                    zx,
                    &stacked_weights,
                    &scales,
                    Some(&bias),
                    requantize,
                    tvec![1, g.out_channels, oh, ow],
                )
                .unwrap();
                let mut portable = vec![f32::NAN; want.len()];
                op.convolve(&blocks, &mut portable, Kernel::Portable);
                for (k, (a, b)) in portable.iter().zip(&want).enumerate() {
                    assert_eq!(a.to_bits(), b.to_bits(), "{g:?}: output {k}: {a} vs {b}");
                }
                for kernel in Kernel::SIMD {
                    if !kernel.available() {
                        missing(kernel);
                        continue;
                    }
                    let mut out = vec![f32::NAN; want.len()];
                    op.convolve(&blocks, &mut out, kernel);
                    assert_same_bits(kernel, &g, &out, &portable);
                }
            }
        }
    }

    /// Where the stacked convolution would compute a row or column the strided one has not (an
    /// even kernel over an odd padded size), the rewrite gets `None` and leaves it to tract.
    #[test]
    fn a_stride_two_convolution_it_cannot_stack_exactly_is_refused() {
        let g = geometry(4, [9, 9], 4, [0; 4], 8);
        let weights = vec![1i8; 8 * 4 * 16];
        assert!(SpaceToDepth::stride_two(&g, &weights, true).is_none());
        // Weights that are not the geometry's: refused, not read out of bounds.
        let g = geometry(4, [10, 10], 3, [1; 4], 8);
        assert!(SpaceToDepth::stride_two(&g, &weights[..10], true).is_none());
    }
}
