//! The f32 max pool: ResNet's 3×3 stride-2 pool after its first convolution, and any other 2-D max
//! pool over a CHW image (no dilation, explicit padding).
//!
//! tract's pool walks the output one value at a time and gathers each window's taps with scalar
//! loads: about 180 aarch64 instructions per output value for open_nsfw's pool (36 M of an int8
//! inference; `benches/arm/profile.py`). This one splits each padded input row into its `sx`
//! phases (columns `p, p + sx, …`) in a scratch image, so that each tap of a row of outputs reads
//! contiguous floats, and folds the taps over blocks of 16 outputs: a vector compare and select
//! per tap, which the compiler vectorizes for NEON, SSE2, AVX2 and AVX-512 from the one source.
//!
//! On aarch64, where what the pool stores hides the order of the fold ([`PoolOutput::order_free`]:
//! a pair after it, as in open_nsfw, or a ReLU before it), the window's maximum is taken in two
//! passes instead ([`separable`]): along each input row, where `ld2` splits a stride-2 row's
//! columns on the fly, then down the rows' results. No phase image, no padding, and each row's
//! maxima serve every output row whose window holds it (`SEPARABLE_BY_DEFAULT`).
//!
//! # What it computes
//!
//! tract's definition, bit for bit (checked against tract's own operator in the tests): each output
//! is the fold, in row-major tap order, of `if v > acc { v } else { acc }` over the window's
//! in-bounds values, starting from `f32::MIN`. So the first of equal maxima wins (`-0.0` before
//! `0.0` keeps `-0.0`), a NaN is never taken, and a window of NaNs or `-inf` gives `f32::MIN`.
//! tract's 2×2 windows take another path of its own, whose NaN and zero handling is each
//! architecture's max instruction; the rewrite leaves those to it.
//! Padding is `f32::MIN` in the scratch image: folding it in changes no accumulator, so every tap
//! may read the image without a bounds test.
//!
//! # What it may take from around it ([`PoolOutput`])
//!
//! A ReLU before the pool (tract's `Max` with one number, `low`) and a quantize/dequantize pair
//! after it: open_nsfw runs both on the pool's input and output maps, single-threaded in tract. The
//! ReLU moves after the fold, which then bounds 4 times fewer values (at stride 2): over values
//! that are not NaN, `max(max(a, low), max(b, low))` is `max(max(a, b), low)`. A zero's sign may
//! differ where `low` is `0` and a window's maximum is `-0.0` (tract's `Max` gives either); the pair
//! maps both zeros to the same value. A NaN is never taken by the fold, nor by tract's fold after
//! its `Max` (which makes it `low` on x86-64 and keeps it on aarch64, `fmax`); only a window of
//! NaNs alone differs: `low` here, and on aarch64 `f32::MIN` in tract. The pair is the fused
//! pair's f32 operations (`rewrite::fuse`), in the same order, so the same bits.

use super::float_depthwise::split_phases;
use super::{check_output_shape, in_chunks, with_scratch, Requantize, Simd, LANES};
use crate::inference::rewrite::ROUNDING_BIAS;
use std::cell::RefCell;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

/// Channels per task of the thread pool.
const CHANNELS_PER_TASK: usize = 8;

/// Whether the loader picks [`separable`]'s aarch64 kernels where they apply (see
/// [`FloatMaxPool::new`]). Their first build, a compare and select from `f32::MIN` per tap
/// (six instructions as compiled), cost 6.2 M guest instructions per open_nsfw int8 inference
/// against the fold's 4.1 M (`profile.py`, `max`); this one takes `fmaxnm` (one) and costs
/// 4.0 M, and the whole int8 inference 141.4 M against 141.9 M with the fold (README). Set it
/// false to measure the fold.
const SEPARABLE_BY_DEFAULT: bool = true;

/// The shape of one max pool.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct PoolGeometry {
    /// Channels, in and out.
    pub channels: usize,
    /// Input height.
    pub height: usize,
    /// Input width.
    pub width: usize,
    /// Window height and width.
    pub kernel: [usize; 2],
    /// Vertical and horizontal stride.
    pub stride: [usize; 2],
    /// Padding: top, left, bottom, right.
    pub pad: [usize; 4],
}

impl PoolGeometry {
    /// The largest window side and stride taken (tract keeps anything larger).
    const MAX_SIDE: usize = 16;

    /// Padded input height and width.
    fn padded(&self) -> (usize, usize) {
        (
            self.height + self.pad[0] + self.pad[2],
            self.width + self.pad[1] + self.pad[3],
        )
    }

    /// Output height and width: the last window that fits (ONNX's default, without `ceil_mode`).
    pub fn output(&self) -> (usize, usize) {
        let (hp, wp) = self.padded();
        (
            (hp - self.kernel[0]) / self.stride[0] + 1,
            (wp - self.kernel[1]) / self.stride[1] + 1,
        )
    }

    /// Whether the operator takes this shape: a window inside the padded image, sides and strides
    /// from 1 to 16, padding smaller than the window, and an image of at most 2²⁸ values.
    pub fn is_valid(&self) -> bool {
        let (hp, wp) = self.padded();
        let side = 1..=Self::MAX_SIDE;
        self.channels > 0
            && self.height > 0
            && self.width > 0
            && self.kernel.iter().all(|k| side.contains(k))
            && self.stride.iter().all(|s| side.contains(s))
            && self.pad[0] < self.kernel[0]
            && self.pad[2] < self.kernel[0]
            && self.pad[1] < self.kernel[1]
            && self.pad[3] < self.kernel[1]
            && hp >= self.kernel[0]
            && wp >= self.kernel[1]
            && self
                .channels
                .checked_mul(hp)
                .and_then(|n| n.checked_mul(wp))
                .is_some_and(|n| n <= 1 << 28)
    }

    /// Floats in one phase row of the scratch image: the widest read of the last block of 16
    /// outputs, and every padded column.
    fn span(&self) -> usize {
        let sx = self.stride[1];
        let reads = self.output().1.next_multiple_of(LANES) + (self.kernel[1] - 1) / sx + 1;
        reads.max(self.padded().1.div_ceil(sx))
    }
}

/// `SAME` padding along one axis of `size` values, as tract computes it: the output has
/// `⌈size / stride⌉` values and the padding it needs is split evenly, the odd one after
/// (`upper`, `SAME_UPPER`) or before. Returns (before, after).
pub(crate) fn same_padding(
    size: usize,
    kernel: usize,
    stride: usize,
    upper: bool,
) -> (usize, usize) {
    let out = size.div_ceil(stride.max(1));
    let total = ((out.max(1) - 1) * stride + kernel).saturating_sub(size);
    let small = total / 2;
    if upper {
        (small, total - small)
    } else {
        (total - small, small)
    }
}

/// What the pool applies to each maximum before it stores it (see the module documentation).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct PoolOutput {
    /// The bound of a ReLU-like `Max` with one number that came before the pool.
    pub low: Option<f32>,
    /// The quantize/dequantize pair that came after it.
    pub requantize: Option<Requantize>,
}

impl PoolOutput {
    /// Whether the operator takes these: a bound that is a number, scales finite and positive.
    fn is_valid(&self) -> bool {
        self.low.is_none_or(|low| !low.is_nan())
            && self.requantize.is_none_or(|r| {
                r.inv_scale.is_finite() && r.inv_scale > 0.0 && r.scale.is_finite() && r.scale > 0.0
            })
    }

    /// Whether what this gives hides the fold's order: a pair after the pool (it maps both zeros
    /// to one value, and `f32::MIN` and any lower number alike), or a bound of zero or more (which
    /// replaces both zeros and `f32::MIN`). Then a window's maximum may be taken in any order
    /// ([`separable`]), as long as no NaN is taken.
    fn order_free(self) -> bool {
        self.requantize.is_some() || self.low.is_some_and(|low| low >= 0.0)
    }

    /// A block of maxima, bounded below by `low` and through the pair.
    #[inline(always)]
    fn apply(self, mut block: [f32; LANES]) -> [f32; LANES] {
        if let Some(low) = self.low {
            for v in &mut block {
                *v = if *v > low { *v } else { low };
            }
        }
        if let Some(r) = self.requantize {
            let z = f32::from(r.zero_point);
            for v in &mut block {
                let q = (*v * r.inv_scale).max(-z).min(255.0 - z);
                *v = (q + ROUNDING_BIAS - ROUNDING_BIAS) * r.scale;
            }
        }
        block
    }
}

/// The f32 max pool operator (see the module documentation).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct FloatMaxPool {
    geometry: PoolGeometry,
    output: PoolOutput,
    out_shape: TVec<usize>,
    /// Chosen when the model is loaded.
    simd: Simd,
    /// Whether it runs [`separable`] (`Some`), and on its aarch64 kernels (`Some(true)`): on
    /// aarch64, for an order-free output and a row window and stride they are written for.
    separable: Option<bool>,
}

impl Eq for FloatMaxPool {}

impl FloatMaxPool {
    /// The operator, if it takes `geometry` and `output` and `out_shape` holds its output; each
    /// maximum goes through `output` before it is stored.
    pub fn new(
        geometry: PoolGeometry,
        output: PoolOutput,
        out_shape: TVec<usize>,
        simd: Simd,
    ) -> TractResult<FloatMaxPool> {
        ensure!(
            geometry.is_valid(),
            "max pool geometry out of range: {geometry:?}"
        );
        ensure!(
            output.is_valid(),
            "max pool output out of range: {output:?}"
        );
        check_output_shape(&out_shape, geometry.channels, geometry.output())?;
        let separable = (SEPARABLE_BY_DEFAULT
            && cfg!(target_arch = "aarch64")
            && output.order_free()
            && matches!((geometry.kernel[1], geometry.stride[1]), (2 | 3, 1 | 2)))
        .then_some(true);
        Ok(FloatMaxPool {
            geometry,
            output,
            out_shape,
            simd,
            separable,
        })
    }

    /// Pools one CHW image on `simd` (the baseline where this CPU lacks it).
    pub(super) fn convolve(&self, input: &[f32], output: &mut [f32], simd: Simd) {
        let (g, post) = (&self.geometry, self.output);
        let simd = if simd.available() {
            simd
        } else {
            Simd::Baseline
        };
        let (oh, ow) = g.output();
        assert!(input.len() >= g.channels * g.height * g.width);
        let output = &mut output[..g.channels * oh * ow];
        let separable = self.separable;
        let scratch_len = if separable.is_some() {
            g.height * ow
        } else {
            g.padded().0 * g.stride[1] * g.span()
        };
        in_chunks(output, CHANNELS_PER_TASK * oh * ow, |task, out| {
            with_scratch(&SCRATCH, scratch_len, |scratch| {
                let first = task * CHANNELS_PER_TASK;
                if let Some(neon) = separable {
                    return self::separable(g, post, input, first, out, scratch, neon);
                }
                scratch.fill(f32::MIN);
                match simd {
                    #[cfg(target_arch = "x86_64")]
                    // SAFETY: `available()` said the CPU has AVX-512F.
                    Simd::Avx512 => unsafe { x86::avx512(g, post, input, first, out, scratch) },
                    #[cfg(target_arch = "x86_64")]
                    // SAFETY: `available()` said the CPU has AVX2.
                    Simd::Avx2 => unsafe { x86::avx2(g, post, input, first, out, scratch) },
                    Simd::Baseline => channels(g, post, input, first, out, scratch),
                }
            })
        });
    }

    /// The operator's line in tract's graph dumps.
    fn describe(&self) -> String {
        let g = &self.geometry;
        let mut line = format!(
            "{}x{} max pool, {} channels on {}x{}, stride {:?}, pad {:?}, {:?}",
            g.kernel[0], g.kernel[1], g.channels, g.height, g.width, g.stride, g.pad, self.simd
        );
        if let Some(low) = self.output.low {
            line += &format!(", at least {low}");
        }
        if self.output.requantize.is_some() {
            line += ", requantized";
        }
        if self.separable.is_some() {
            line += ", separable";
        }
        line
    }
}

thread_local! {
    /// Each thread's scratch image: the phases of the padded channel, `f32::MIN` where padding.
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// The pool of channels `first ..`, as many as `out` holds, each maximum through `output`, using
/// `scratch` (all `f32::MIN`, the phases' image). Inlined into each instruction set's function.
#[inline(always)]
fn channels(
    g: &PoolGeometry,
    output: PoolOutput,
    input: &[f32],
    first: usize,
    out: &mut [f32],
    scratch: &mut [f32],
) {
    let (oh, ow) = g.output();
    let [kh, kw] = g.kernel;
    let [sy, sx] = g.stride;
    let (top, left) = (g.pad[0], g.pad[1]);
    let span = g.span();
    let hw = g.height * g.width;
    let count = out.len() / (oh * ow);
    let image = &mut scratch[..g.padded().0 * sx * span];
    assert!(first + count <= g.channels);
    // Where each tap reads, from its output row's first phase row and its block's column, in
    // row-major tap order (the fold's order).
    let offsets: Vec<usize> = (0..kh * kw)
        .map(|t| {
            let (dy, dx) = (t / kw, t % kw);
            (dy * sx + dx % sx) * span + dx / sx
        })
        .collect();
    for i in 0..count {
        let c = first + i;
        // The channel into the phases; the padding around it stays `f32::MIN` from the start.
        let plane = &input[c * hw..(c + 1) * hw];
        split_phases(plane, g.width, [top, left], sx, span, image, |v| v);
        let out = &mut out[i * oh * ow..(i + 1) * oh * ow];
        let step = sy * sx * span;
        let image = &image[..];
        // Every tap of every block of 16 lies inside the image (`PoolGeometry::span`).
        let last = (oh - 1) * step + (ow - 1) / LANES * LANES + offsets.iter().max().unwrap_or(&0);
        assert!(last + LANES <= image.len());
        for (y, row) in out.chunks_exact_mut(ow).enumerate() {
            for (block, dst) in row.chunks_mut(LANES).enumerate() {
                let acc = output.apply(fold(image, &offsets, y * step + block * LANES));
                dst.copy_from_slice(&acc[..dst.len()]);
            }
        }
    }
}

/// One block of 16 outputs: `if v > acc { v } else { acc }` over the taps at `at + offset`, in
/// their order, from `f32::MIN`. The caller checked that every read lies inside `image`.
#[inline(always)]
fn fold(image: &[f32], offsets: &[usize], at: usize) -> [f32; LANES] {
    #[cfg(target_arch = "aarch64")]
    {
        use std::arch::aarch64::*;
        // SAFETY: NEON is part of the aarch64 base ISA; each tap reads 16 floats from
        // `at + offset`, inside `image` (checked by the caller, `channels`).
        unsafe {
            let p = image.as_ptr().add(at);
            let mut acc = [vdupq_n_f32(f32::MIN); LANES / 4];
            for &offset in offsets {
                let src = p.add(offset);
                for (i, a) in acc.iter_mut().enumerate() {
                    let v = vld1q_f32(src.add(4 * i));
                    // `fcmgt` is an ordered compare: false where either is NaN, as `>`.
                    *a = vbslq_f32(vcgtq_f32(v, *a), v, *a);
                }
            }
            let mut out = [0f32; LANES];
            for (i, a) in acc.iter().enumerate() {
                vst1q_f32(out.as_mut_ptr().add(4 * i), *a);
            }
            out
        }
    }
    #[cfg(not(target_arch = "aarch64"))]
    {
        let mut acc = [f32::MIN; LANES];
        for &offset in offsets {
            let src = &image[at + offset..at + offset + LANES];
            for (a, &v) in acc.iter_mut().zip(src) {
                *a = if v > *a { v } else { *a };
            }
        }
        acc
    }
}

/// [`channels`] for an order-free output ([`PoolOutput::order_free`]), as two passes: each input
/// row's maximum over each output column's window (the fold, from `f32::MIN`, over the window's
/// columns inside the row), then each output's maximum of those rows over its window's rows
/// inside the image; no padding is read. The twin's row pass takes no NaN, the kernels' may
/// (see [`arm`]): the same values after an order-free output. `neon` runs both passes' aarch64 kernels where they are written for the shape
/// ([`FloatMaxPool::new`]); elsewhere, and where `neon` is false, the portable twin runs. Both
/// give the fold's values after `output` (tests below).
fn separable(
    g: &PoolGeometry,
    output: PoolOutput,
    input: &[f32],
    first: usize,
    out: &mut [f32],
    scratch: &mut [f32],
    neon: bool,
) {
    let (oh, ow) = g.output();
    let [kh, kw] = g.kernel;
    let [sy, sx] = g.stride;
    let (top, left) = (g.pad[0], g.pad[1]);
    let hw = g.height * g.width;
    let count = out.len() / (oh * ow);
    assert!(first + count <= g.channels && input.len() >= (first + count) * hw);
    let rows = &mut scratch[..g.height * ow];
    // Output columns before `inside` have windows that begin in the padding.
    let inside = left.div_ceil(sx).min(ow);
    for i in 0..count {
        let plane = &input[(first + i) * hw..(first + i + 1) * hw];
        for (row, maxima) in plane.chunks_exact(g.width).zip(rows.chunks_exact_mut(ow)) {
            row_fold(row, maxima, 0..inside, kw, sx, left);
            let done = if neon {
                arm::rows(row, maxima, kw, sx, left, inside)
            } else {
                inside
            };
            row_fold(row, maxima, done..ow, kw, sx, left);
        }
        let rows = &rows[..];
        let out = &mut out[i * oh * ow..(i + 1) * oh * ow];
        for (y, dst) in out.chunks_exact_mut(ow).enumerate() {
            // The window's rows inside the image: at least one (`PoolGeometry::is_valid`).
            let start = (y * sy).saturating_sub(top);
            let end = (y * sy + kh - top).min(g.height);
            let window = &rows[start * ow..end * ow];
            if !(neon && arm::columns(window, output, dst)) {
                column_fold(window, output, dst);
            }
        }
    }
}

/// The row pass's portable twin for output columns `xs`: the fold over each window's columns
/// inside `row`.
fn row_fold(
    row: &[f32],
    maxima: &mut [f32],
    xs: std::ops::Range<usize>,
    kw: usize,
    sx: usize,
    left: usize,
) {
    for x in xs {
        // `kw > left` (`PoolGeometry::is_valid`): the window ends inside or after column 0.
        let start = (x * sx).saturating_sub(left);
        let end = (x * sx + kw - left).min(row.len());
        maxima[x] = row[start..end]
            .iter()
            .fold(f32::MIN, |acc, &v| if v > acc { v } else { acc });
    }
}

/// The column pass's portable twin for one output row: the maximum of `window`'s rows (each
/// `dst.len()` long, numbers only), through `output`.
fn column_fold(window: &[f32], output: PoolOutput, dst: &mut [f32]) {
    let ow = dst.len();
    for (b, d) in dst.chunks_mut(LANES).enumerate() {
        let mut acc = [f32::MIN; LANES];
        for row in window.chunks_exact(ow) {
            for (a, &v) in acc.iter_mut().zip(&row[b * LANES..b * LANES + d.len()]) {
                *a = a.max(v);
            }
        }
        d.copy_from_slice(&output.apply(acc)[..d.len()]);
    }
}

/// Where there are no aarch64 kernels: the portable twin does all.
#[cfg(not(target_arch = "aarch64"))]
mod arm {
    use super::PoolOutput;

    /// Nothing done: the first column not computed is `x`.
    pub(super) fn rows(_: &[f32], _: &mut [f32], _: usize, _: usize, _: usize, x: usize) -> usize {
        x
    }

    /// Nothing done.
    pub(super) fn columns(_: &[f32], _: PoolOutput, _: &mut [f32]) -> bool {
        false
    }
}

/// [`separable`]'s aarch64 kernels (NEON is part of the base ISA: no run-time test).
///
/// Both passes take maxima with `fmaxnm`, one instruction per tap: a NaN is taken only where
/// nothing else is, so a window of NaNs alone gives NaN where the fold gives `f32::MIN`, and
/// `fmaxnm(+0, −0)` is `+0` whatever the order; every order-free output maps each pair alike
/// ([`PoolOutput::order_free`]). (A signaling NaN, which no arithmetic produces, `fmaxnm` turns
/// into a quiet one, which would end a window's maximum there; LLVM may compile the fold's
/// compare and select from `f32::MIN` to the same instruction.)
#[cfg(target_arch = "aarch64")]
mod arm {
    use super::{PoolOutput, ROUNDING_BIAS};
    use std::arch::aarch64::*;

    /// The row pass from output column `x` (whose window begins inside the row), 4 at a time
    /// while each read stays inside `row`, for the windows and strides written out below (none
    /// elsewhere). Returns the first column it did not compute.
    pub(super) fn rows(
        row: &[f32],
        maxima: &mut [f32],
        kw: usize,
        sx: usize,
        left: usize,
        x: usize,
    ) -> usize {
        // SAFETY: NEON is part of the aarch64 base ISA.
        unsafe {
            match (kw, sx) {
                (3, 2) => strided::<3>(row, maxima, left, x),
                (2, 2) => strided::<2>(row, maxima, left, x),
                (3, 1) => dense::<3>(row, maxima, left, x),
                (2, 1) => dense::<2>(row, maxima, left, x),
                _ => x,
            }
        }
    }

    /// How many blocks of 4 outputs from `x` fit both the outputs (`outputs`) and the row:
    /// the first block reads `reach` columns from `start`, each next one `step` further, and
    /// the row has `len`.
    fn blocks(
        x: usize,
        outputs: usize,
        start: usize,
        reach: usize,
        step: usize,
        len: usize,
    ) -> usize {
        let by_outputs = outputs.saturating_sub(x) / 4;
        let by_row = len
            .checked_sub(start + reach)
            .map_or(0, |spare| spare / step + 1);
        by_outputs.min(by_row)
    }

    /// Stride 2: `ld2` splits 8 columns into the even and the odd, each 4 windows' tap.
    #[inline]
    #[target_feature(enable = "neon")]
    fn strided<const KW: usize>(row: &[f32], maxima: &mut [f32], left: usize, x: usize) -> usize {
        if 2 * x < left {
            return x;
        }
        let start = 2 * x - left;
        // Outputs x..x + 4 read columns start .. start + reach.
        let reach = 2 * KW.div_ceil(2) + 6;
        let n = blocks(x, maxima.len(), start, reach, 8, row.len());
        for k in 0..n {
            // SAFETY: block k reads columns start + 8k .. + reach, inside the row, and writes
            // outputs x + 4k .. + 4, inside `maxima` (`blocks`).
            unsafe {
                let p = row.as_ptr().add(start + 8 * k);
                let v = vld2q_f32(p);
                let mut acc = if KW > 1 { vmaxnmq_f32(v.0, v.1) } else { v.0 };
                for j in 1..KW.div_ceil(2) {
                    let v = vld2q_f32(p.add(2 * j));
                    acc = vmaxnmq_f32(acc, v.0);
                    if 2 * j + 1 < KW {
                        acc = vmaxnmq_f32(acc, v.1);
                    }
                }
                vst1q_f32(maxima.as_mut_ptr().add(x + 4 * k), acc);
            }
        }
        x + 4 * n
    }

    /// Stride 1: one load per tap.
    #[inline]
    #[target_feature(enable = "neon")]
    fn dense<const KW: usize>(row: &[f32], maxima: &mut [f32], left: usize, x: usize) -> usize {
        if x < left {
            return x;
        }
        let start = x - left;
        let n = blocks(x, maxima.len(), start, KW + 3, 4, row.len());
        for k in 0..n {
            // SAFETY: block k reads columns start + 4k .. + KW + 3, inside the row, and writes
            // outputs x + 4k .. + 4, inside `maxima` (`blocks`).
            unsafe {
                let p = row.as_ptr().add(start + 4 * k);
                let mut acc = vld1q_f32(p);
                for dx in 1..KW {
                    acc = vmaxnmq_f32(acc, vld1q_f32(p.add(dx)));
                }
                vst1q_f32(maxima.as_mut_ptr().add(x + 4 * k), acc);
            }
        }
        x + 4 * n
    }

    /// What the column pass applies ([`finish`]): the pair (and the bound, joined to its
    /// lower clamp), the bound alone, or nothing.
    const PAIR: u8 = 0;
    const LOW: u8 = 1;
    const NONE: u8 = 2;

    /// `output`'s operations as vector ones (see [`columns`]).
    #[derive(Clone, Copy)]
    struct Finish {
        inv: float32x4_t,
        lo: float32x4_t,
        hi: float32x4_t,
        bias: float32x4_t,
        scale: float32x4_t,
        low: float32x4_t,
    }

    /// [`Finish`] on 4 maxima, the operations `MODE` names.
    #[inline]
    #[target_feature(enable = "neon")]
    fn finish<const MODE: u8>(f: Finish, v: float32x4_t) -> float32x4_t {
        match MODE {
            PAIR => {
                let q = vminnmq_f32(vmaxnmq_f32(vmulq_f32(v, f.inv), f.lo), f.hi);
                vmulq_f32(vsubq_f32(vaddq_f32(q, f.bias), f.bias), f.scale)
            }
            LOW => vbslq_f32(vcgtq_f32(v, f.low), v, f.low),
            _ => v,
        }
    }

    /// The column pass for one output row, where it has at least 4 columns (returns whether it
    /// ran).
    pub(super) fn columns(window: &[f32], output: PoolOutput, dst: &mut [f32]) -> bool {
        if dst.len() < 4 {
            return false;
        }
        // `max(v, low) · s` is `max(v · s, low · s)` for a scale above 0 (rounding is
        // monotonic), so a bound joins the pair's lower clamp; a zero's sign, where the two
        // differ, the rounding makes `+0`.
        let (mode, f) = match (output.low, output.requantize) {
            (low, Some(r)) => {
                let z = f32::from(r.zero_point);
                let lo = low.map_or(-z, |low| (low * r.inv_scale).max(-z));
                (
                    PAIR,
                    [r.inv_scale, lo, 255.0 - z, ROUNDING_BIAS, r.scale, 0.0],
                )
            }
            (Some(low), None) => (LOW, [0.0, 0.0, 0.0, 0.0, 0.0, low]),
            (None, None) => (NONE, [0.0; 6]),
        };
        let three = window.len() == 3 * dst.len();
        // SAFETY: NEON is part of the aarch64 base ISA.
        unsafe {
            let [inv, lo, hi, bias, scale, low] = f.map(|v| vdupq_n_f32(v));
            let f = Finish {
                inv,
                lo,
                hi,
                bias,
                scale,
                low,
            };
            match (mode, three) {
                (PAIR, true) => rows_of::<PAIR, 3>(window, dst, f),
                (PAIR, false) => rows_of::<PAIR, 0>(window, dst, f),
                (LOW, true) => rows_of::<LOW, 3>(window, dst, f),
                (LOW, false) => rows_of::<LOW, 0>(window, dst, f),
                _ => rows_of::<NONE, 0>(window, dst, f),
            }
        }
        true
    }

    /// The maximum of `window`'s rows (`R` of them, or any number where `R` is 0), through
    /// [`finish`], 4 columns at a time; the last 4 overlap the ones before where the row is not
    /// a multiple of 4 (the same values written again).
    #[inline]
    #[target_feature(enable = "neon")]
    fn rows_of<const MODE: u8, const R: usize>(window: &[f32], dst: &mut [f32], f: Finish) {
        let ow = dst.len();
        let rows = if R > 0 { R } else { window.len() / ow };
        assert!(ow >= 4 && rows >= 1 && window.len() == rows * ow);
        let mut x = 0;
        while x < ow {
            let at = x.min(ow - 4);
            // SAFETY: `at + 4 ≤ ow`, so each row's 4 reads and the 4 writes lie inside.
            unsafe {
                let p = window.as_ptr().add(at);
                let mut acc = vld1q_f32(p);
                for r in 1..rows {
                    acc = vmaxnmq_f32(acc, vld1q_f32(p.add(r * ow)));
                }
                vst1q_f32(dst.as_mut_ptr().add(at), finish::<MODE>(f, acc));
            }
            x += 4;
        }
    }
}

/// The definition, one output at a time over the window's in-bounds values (tract's walk): what
/// every instruction set must give bit for bit.
#[cfg(test)]
pub(crate) fn reference(g: &PoolGeometry, input: &[f32]) -> Vec<f32> {
    let (oh, ow) = g.output();
    let [kh, kw] = g.kernel;
    let mut out = vec![0.0; g.channels * oh * ow];
    for c in 0..g.channels {
        for y in 0..oh {
            for x in 0..ow {
                let mut acc = f32::MIN;
                for dy in 0..kh {
                    for dx in 0..kw {
                        let (py, px) = (y * g.stride[0] + dy, x * g.stride[1] + dx);
                        if let (Some(iy), Some(ix)) =
                            (py.checked_sub(g.pad[0]), px.checked_sub(g.pad[1]))
                        {
                            if iy < g.height && ix < g.width {
                                let v = input[(c * g.height + iy) * g.width + ix];
                                if acc < v {
                                    acc = v;
                                }
                            }
                        }
                    }
                }
                out[(c * oh + y) * ow + x] = acc;
            }
        }
    }
    out
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::*;

    /// [`channels`] compiled for AVX-512F (the same source, so the same values).
    ///
    /// # Safety
    /// The CPU must have AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn avx512(
        g: &PoolGeometry,
        output: PoolOutput,
        input: &[f32],
        first: usize,
        out: &mut [f32],
        scratch: &mut [f32],
    ) {
        channels(g, output, input, first, out, scratch)
    }

    /// [`channels`] compiled for AVX2.
    ///
    /// # Safety
    /// The CPU must have AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn avx2(
        g: &PoolGeometry,
        output: PoolOutput,
        input: &[f32],
        first: usize,
        out: &mut [f32],
        scratch: &mut [f32],
    ) {
        channels(g, output, input, first, out, scratch)
    }
}

f32_operator!(FloatMaxPool, "FloatMaxPool", simd);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use tract_onnx::tract_core::ops::cnn::{MaxPool, PaddingSpec, PoolSpec};
    use tract_onnx::tract_core::ops::nn::DataFormat;

    fn geometry(
        channels: usize,
        size: [usize; 2],
        kernel: [usize; 2],
        stride: [usize; 2],
        pad: [usize; 4],
    ) -> PoolGeometry {
        PoolGeometry {
            channels,
            height: size[0],
            width: size[1],
            kernel,
            stride,
            pad,
        }
    }

    /// Values with many ties, both zeros, NaNs and infinities among ordinary numbers: where the
    /// fold's order and its comparison show.
    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n as u32)
            .map(|i| {
                let h = (i ^ seed).wrapping_mul(0x9E37_79B9).rotate_left(13) ^ seed;
                match h % 16 {
                    0 => 0.0,
                    1 => -0.0,
                    2 => f32::NAN,
                    3 => f32::NEG_INFINITY,
                    4 => f32::MIN,
                    5 => 1.5,
                    _ => (h % 2_001) as f32 / 173.0 - 5.77,
                }
            })
            .collect()
    }

    fn run(g: &PoolGeometry, input: &[f32], simd: Simd) -> Vec<f32> {
        let (oh, ow) = g.output();
        let op = FloatMaxPool::new(
            g.clone(),
            PoolOutput::default(),
            tvec![1, g.channels, oh, ow],
            simd,
        )
        .unwrap();
        let mut out = vec![f32::NAN; g.channels * oh * ow];
        op.convolve(input, &mut out, simd);
        out
    }

    fn same_bits(a: &[f32], b: &[f32]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(a, b)| a.to_bits() == b.to_bits())
    }

    /// tract's own `MaxPool` on the same image.
    fn tract_pool(g: &PoolGeometry, input: &[f32]) -> Vec<f32> {
        let padding = PaddingSpec::Explicit(tvec![g.pad[0], g.pad[1]], tvec![g.pad[2], g.pad[3]]);
        tract_pool_with(g, padding, input)
    }

    /// tract's `MaxPool` with `padding` (`g.pad` unread).
    fn tract_pool_with(g: &PoolGeometry, padding: PaddingSpec, input: &[f32]) -> Vec<f32> {
        let spec = PoolSpec {
            data_format: DataFormat::NCHW,
            kernel_shape: tvec![g.kernel[0], g.kernel[1]],
            padding,
            dilations: None,
            strides: Some(tvec![g.stride[0], g.stride[1]]),
            input_channels: g.channels,
            output_channels: g.channels,
        };
        let mut model = TypedModel::default();
        let x = model
            .add_source("x", f32::fact([1, g.channels, g.height, g.width]))
            .unwrap();
        let y = model
            .wire_node("pool", MaxPool::new(spec, None), &[x])
            .unwrap();
        model.select_output_outlets(&y).unwrap();
        let image = Tensor::from_shape(&[1, g.channels, g.height, g.width], input).unwrap();
        let out = model
            .into_runnable()
            .unwrap()
            .run(tvec![image.into_tvalue()])
            .unwrap();
        let out = out[0].try_as_plain_ram().unwrap();
        out.as_slice::<f32>().unwrap().to_vec()
    }

    /// Every instruction set against the definition, and the definition against tract, bit for
    /// bit.
    fn check(g: &PoolGeometry, seed: u32) {
        let input = values(g.channels * g.height * g.width, seed);
        let want = reference(g, &input);
        // tract runs 2x2 windows through another path, whose NaN and zero handling is each
        // architecture's max instruction; the rewrite leaves those pools to it.
        if g.kernel != [2, 2] {
            assert!(
                same_bits(&tract_pool(g, &input), &want),
                "the definition differs from tract on {g:?}"
            );
        }
        for &simd in Simd::ALL {
            if !simd.available() {
                super::super::tests::missing_named(simd.name());
                continue;
            }
            let got = run(g, &input, simd);
            assert!(
                same_bits(&got, &want),
                "{simd:?} differs from the definition on {g:?}"
            );
        }
    }

    #[test]
    fn resnet_and_odd_shapes_match_tract_bit_for_bit() {
        // open_nsfw's pool (3x3, stride 2, padding after only), the symmetric one most ResNets
        // have, 2x2, and sizes that leave a ragged last block of 16 or cross several tasks.
        for (i, g) in [
            geometry(64, [112, 112], [3, 3], [2, 2], [0, 0, 1, 1]),
            geometry(17, [15, 33], [3, 3], [2, 2], [1, 1, 1, 1]),
            geometry(3, [8, 9], [2, 2], [2, 2], [0; 4]),
            geometry(5, [7, 40], [3, 1], [1, 3], [1, 0, 2, 0]),
            geometry(1, [1, 1], [1, 1], [1, 1], [0; 4]),
        ]
        .iter()
        .enumerate()
        {
            check(g, i as u32 + 1);
        }
    }

    #[test]
    fn a_known_pool_by_hand() {
        // 1 channel, 1x5 row -1 4 -0 0 2, 1x3 window, stride 2, one padded column each side:
        // windows [pad, -1, 4], [4, -0, 0], [0, 2, pad]. The first of equal maxima wins, so the
        // middle window keeps 4, and a window of -0 then 0 keeps -0 (its first).
        let g = geometry(1, [1, 5], [1, 3], [1, 2], [0, 1, 0, 1]);
        let edge = geometry(1, [1, 2], [1, 2], [1, 1], [0; 4]);
        for &simd in Simd::ALL.iter().filter(|s| s.available()) {
            assert_eq!(
                run(&g, &[-1.0, 4.0, -0.0, 0.0, 2.0], simd),
                [4.0, 4.0, 2.0],
                "{simd:?}"
            );
            let zero = run(&edge, &[-0.0, 0.0], simd);
            assert!(zero[0] == 0.0 && zero[0].is_sign_negative(), "{simd:?}");
            // A NaN is never taken; a window of NaN gives f32::MIN.
            assert_eq!(run(&edge, &[f32::NAN, 3.0], simd), [3.0], "{simd:?}");
            assert_eq!(
                run(&edge, &[f32::NAN, f32::NAN], simd),
                [f32::MIN],
                "{simd:?}"
            );
        }
    }

    /// The graph's order: `Max(v, low)` on every input value (as tract's `Max` on x86-64, a NaN
    /// becomes `low`), the pool, then the fused pair's f32 operations.
    fn graph_order(g: &PoolGeometry, output: PoolOutput, input: &[f32]) -> Vec<f32> {
        let bounded: Vec<f32> = match output.low {
            Some(low) => input.iter().map(|v| v.max(low)).collect(),
            None => input.to_vec(),
        };
        let mut out = reference(g, &bounded);
        if let Some(r) = output.requantize {
            let z = f32::from(r.zero_point);
            for v in &mut out {
                let q = (*v * r.inv_scale).max(-z).min(255.0 - z);
                *v = (q + ROUNDING_BIAS - ROUNDING_BIAS) * r.scale;
            }
        }
        out
    }

    /// A ReLU taken from before the pool and a pair from after it give the graph's values: bit
    /// for bit with the pair, equal without it (a zero's sign may differ).
    #[test]
    fn a_relu_before_and_a_pair_after_give_the_graphs_values() {
        let pair = Requantize {
            inv_scale: 1.0 / 0.043,
            zero_point: 7,
            scale: 0.043,
        };
        for (i, g) in [
            geometry(64, [112, 112], [3, 3], [2, 2], [0, 0, 1, 1]),
            geometry(7, [15, 33], [3, 3], [2, 2], [1, 1, 1, 1]),
            geometry(3, [9, 20], [3, 1], [1, 3], [1, 0, 2, 0]),
        ]
        .iter()
        .enumerate()
        {
            let input = values(g.channels * g.height * g.width, 40 + i as u32);
            let (oh, ow) = g.output();
            for output in [
                (Some(0.0), Some(pair)),
                (None, Some(pair)),
                (Some(0.0), None),
                (Some(-1.25), None),
            ]
            .map(|(low, requantize)| PoolOutput { low, requantize })
            {
                let want = graph_order(g, output, &input);
                for &simd in Simd::ALL.iter().filter(|s| s.available()) {
                    let op =
                        FloatMaxPool::new(g.clone(), output, tvec![1, g.channels, oh, ow], simd)
                            .unwrap();
                    let mut got = vec![f32::NAN; want.len()];
                    op.convolve(&input, &mut got, simd);
                    let case = format!("{simd:?} {output:?} on {g:?}");
                    if output.requantize.is_some() {
                        assert!(same_bits(&got, &want), "{case}");
                    } else {
                        assert_eq!(got, want, "{case}");
                    }
                }
            }
        }
        // A bound that is not a number, or a pair that cannot be one, is refused.
        let g = geometry(2, [4, 4], [3, 3], [2, 2], [1; 4]);
        let shape = tvec![1, 2, 2, 2];
        for output in [
            PoolOutput {
                low: Some(f32::NAN),
                requantize: None,
            },
            PoolOutput {
                low: None,
                requantize: Some(Requantize { scale: 0.0, ..pair }),
            },
            PoolOutput {
                low: None,
                requantize: Some(Requantize {
                    inv_scale: f32::INFINITY,
                    ..pair
                }),
            },
        ] {
            let op = FloatMaxPool::new(g.clone(), output, shape.clone(), Simd::Baseline);
            assert!(op.is_err(), "{output:?}");
        }
    }

    /// The separable passes, the portable twin and (on aarch64) the NEON kernels, give the
    /// fold's bits wherever the output is order-free: ties of both zeros, NaNs, infinities and
    /// `f32::MIN`, windows cut by padding on every side, rows shorter than a vector or not a
    /// multiple of 4, each kernel's shape and shapes it leaves to the twin. (Not signaling NaNs,
    /// which no arithmetic produces: LLVM may turn a compare and select from `f32::MIN` into
    /// `fmaxnm`, which takes one, in either path; seen in one aarch64 build and not another.)
    #[test]
    fn the_separable_passes_give_the_folds_values() {
        let pair = Requantize {
            inv_scale: 1.0 / 0.043,
            zero_point: 7,
            scale: 0.043,
        };
        let outputs = [
            (Some(0.0), Some(pair)),
            (None, Some(pair)),
            (
                Some(-1.25),
                Some(Requantize {
                    zero_point: 0,
                    ..pair
                }),
            ),
            (Some(0.0), None),
            (Some(2.5), None),
        ]
        .map(|(low, requantize)| PoolOutput { low, requantize });
        let shapes = [
            geometry(3, [112, 112], [3, 3], [2, 2], [0, 0, 1, 1]),
            geometry(2, [15, 33], [3, 3], [2, 2], [1, 1, 1, 1]),
            geometry(2, [9, 20], [2, 2], [2, 2], [0; 4]),
            geometry(2, [7, 21], [3, 3], [1, 1], [2, 2, 2, 2]),
            geometry(2, [6, 11], [2, 2], [1, 1], [1, 1, 0, 0]),
            geometry(2, [5, 40], [3, 1], [1, 3], [1, 0, 2, 0]),
            geometry(1, [1, 1], [3, 3], [1, 1], [2, 2, 0, 0]),
            geometry(2, [4, 3], [2, 3], [2, 2], [1, 2, 1, 2]),
        ];
        for (i, g) in shapes.iter().enumerate() {
            assert!(g.is_valid(), "{g:?}");
            let input = values(g.channels * g.height * g.width, 70 + i as u32);
            let (oh, ow) = g.output();
            for output in outputs {
                assert!(output.order_free(), "{output:?}");
                let shape = tvec![1, g.channels, oh, ow];
                let mut op = FloatMaxPool::new(g.clone(), output, shape, Simd::Baseline).unwrap();
                let mut run = |path| {
                    op.separable = path;
                    let mut out = vec![f32::NAN; g.channels * oh * ow];
                    op.convolve(&input, &mut out, Simd::Baseline);
                    out
                };
                let fold = run(None);
                for path in [Some(false), Some(true)] {
                    let got = run(path);
                    assert!(same_bits(&got, &fold), "{path:?} {output:?} on {g:?}");
                }
            }
        }
        // The loader's choice: the kernels on aarch64 where the output is order-free and the
        // row window and stride are theirs; the fold elsewhere.
        let arm = (SEPARABLE_BY_DEFAULT && cfg!(target_arch = "aarch64")).then_some(true);
        for (g, low, separable) in [
            (&shapes[0], Some(0.0), arm),
            (&shapes[0], Some(-1.0), None),
            (&shapes[0], None, None),
            (&shapes[5], Some(0.0), None),
        ] {
            let output = PoolOutput {
                low,
                requantize: None,
            };
            let (oh, ow) = g.output();
            let shape = tvec![1, g.channels, oh, ow];
            let op = FloatMaxPool::new(g.clone(), output, shape, Simd::Baseline).unwrap();
            assert_eq!(op.separable, separable, "{output:?} on {g:?}");
        }
    }

    #[test]
    fn shapes_it_does_not_take_are_refused() {
        let g = geometry(2, [4, 4], [3, 3], [2, 2], [1; 4]);
        let none = PoolOutput::default();
        assert!(FloatMaxPool::new(g.clone(), none, tvec![1, 2, 2, 2], Simd::Baseline).is_ok());
        assert!(FloatMaxPool::new(g.clone(), none, tvec![1, 2, 2, 3], Simd::Baseline).is_err());
        for bad in [
            geometry(2, [4, 4], [3, 3], [2, 2], [3, 1, 1, 1]),
            geometry(2, [4, 4], [17, 3], [2, 2], [0; 4]),
            geometry(2, [4, 4], [3, 3], [0, 2], [0; 4]),
            geometry(2, [2, 4], [3, 3], [1, 1], [0; 4]),
            geometry(0, [4, 4], [3, 3], [1, 1], [0; 4]),
            geometry(1 << 20, [1 << 8, 1 << 8], [1, 1], [1, 1], [0; 4]),
        ] {
            assert!(!bad.is_valid(), "{bad:?}");
            assert!(
                FloatMaxPool::new(bad.clone(), none, tvec![1], Simd::Baseline).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn same_padding_is_where_tract_puts_it() {
        // open_nsfw's pool after decluttering (its file's pads 0, 0, 1, 1 read as SAME_UPPER),
        // odd and even sizes, strides 1 to 3, and a window wider than the stride.
        assert_eq!(same_padding(112, 3, 2, true), (0, 1));
        assert_eq!(same_padding(112, 3, 2, false), (1, 0));
        assert_eq!(same_padding(5, 4, 1, true), (1, 2));
        assert_eq!(same_padding(7, 1, 3, true), (0, 0));
        for (size, kernel, stride) in [(112, 3, 2), (9, 3, 2), (10, 4, 3), (5, 4, 1), (6, 3, 3)] {
            for upper in [true, false] {
                let (before, after) = same_padding(size, kernel, stride, upper);
                let g = geometry(2, [size, size + 1], [kernel, kernel], [stride; 2], [0; 4]);
                let (left, right) = same_padding(size + 1, kernel, stride, upper);
                let g = PoolGeometry {
                    pad: [before, left, after, right],
                    ..g
                };
                assert!(g.is_valid(), "{g:?}");
                let padding = if upper {
                    PaddingSpec::SameUpper
                } else {
                    PaddingSpec::SameLower
                };
                let input = values(g.channels * g.height * g.width, size as u32);
                assert!(
                    same_bits(
                        &tract_pool_with(&g, padding, &input),
                        &reference(&g, &input)
                    ),
                    "{g:?} upper {upper}"
                );
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn any_valid_geometry_matches_tract_bit_for_bit(
            channels in 1usize..12,
            h in 1usize..20,
            w in 1usize..40,
            kh in 1usize..5,
            kw in 1usize..5,
            sy in 1usize..5,
            sx in 1usize..5,
            pad in proptest::array::uniform4(0usize..4),
            seed in any::<u32>(),
        ) {
            let pad = [pad[0] % kh, pad[1] % kw, pad[2] % kh, pad[3] % kw];
            let g = geometry(channels, [h, w], [kh, kw], [sy, sx], pad);
            prop_assume!(g.is_valid());
            check(&g, seed);
        }
    }
}
