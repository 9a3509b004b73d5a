//! Depthwise convolutions in f32 (ONNX `Conv` with `group` = channels), for the layers of a model
//! that stay in float: every one of a float file's, and the ones a QDQ file keeps unquantized
//! (nsfwjs keeps its first three blocks). tract runs them in its generic depthwise kernel, which
//! was half of nsfwjs's float inference time on x86-64; [`FloatDepthwise`] runs them on whole
//! vectors of output pixels.
//!
//! # Layout
//!
//! Each channel is copied into a zero-padded scratch image split into `stride` column phases
//! (phase `p` holds the padded columns `p, p + s, p + 2s, …`), so every kernel tap reads its output
//! row's inputs from one contiguous run: tap `(dy, dx)` of output row `y` reads phase `dx mod s` of
//! padded row `y · sy + dy` from column `dx div s` on. A tap is then, per 16 output pixels, one load,
//! one multiply and one add, for 4 output rows at once (independent sums in registers).
//!
//! # Arithmetic
//!
//! `y = (Σ_dy Σ_dx x · w) + bias`, the taps summed kernel row by kernel row from zero, each product rounded
//! then added (no fused multiply-add), then clipped where the operator absorbed a clip (`max` with
//! the low bound, then `min` with the high one, each as x86's `maxps`/`minps` define it: the bound
//! unless the value is above it, below it): the same operations in the same order in every lane. So the
//! one source compiled for AVX2, SSE2 or NEON gives the same bits as the scalar definition
//! ([`reference`], tests below), and so do the AVX-512 row sums, the same operations written in
//! intrinsics. tract and onnxruntime sum in other orders; the results differ
//! from theirs by rounding only (tests/fidelity.rs bounds the whole model against its reference).

use super::*;

/// Channels per task when the convolution is shared among threads.
const CHANNELS_PER_TASK: usize = 16;
/// Output rows summed at once (independent sums, in registers: 4 vectors of 16 on AVX-512).
const ROWS: usize = 4;

/// The instruction set [`FloatDepthwise`] runs its (single) source on: wider vectors, same values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Simd {
    /// The target's baseline: SSE2 on x86-64, NEON on aarch64 (both vectorize the lanes), scalar
    /// elsewhere.
    Baseline,
    /// x86-64 with AVX2.
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// x86-64 with AVX-512F.
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

impl Simd {
    /// Every instruction set this build knows, widest first.
    pub const ALL: &[Simd] = &[
        #[cfg(target_arch = "x86_64")]
        Simd::Avx512,
        #[cfg(target_arch = "x86_64")]
        Simd::Avx2,
        Simd::Baseline,
    ];

    /// Whether this CPU runs it.
    pub fn available(self) -> bool {
        match self {
            Simd::Baseline => true,
            #[cfg(target_arch = "x86_64")]
            Simd::Avx2 => std::arch::is_x86_feature_detected!("avx2"),
            #[cfg(target_arch = "x86_64")]
            Simd::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
        }
    }

    /// Its name (in logs, and in `PRESCREEN_WAIVE_KERNELS` for the tests).
    pub fn name(self) -> &'static str {
        match self {
            Simd::Baseline => "baseline",
            #[cfg(target_arch = "x86_64")]
            Simd::Avx2 => "avx2",
            #[cfg(target_arch = "x86_64")]
            Simd::Avx512 => "avx512f",
        }
    }

    /// The widest this CPU runs.
    pub fn detect() -> Simd {
        Simd::ALL
            .iter()
            .copied()
            .find(|s| s.available())
            .unwrap_or(Simd::Baseline)
    }
}

/// The f32 depthwise convolution operator (see the module documentation).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct FloatDepthwise {
    geometry: DepthwiseGeometry,
    /// `[C][kh][kw]`.
    weights: Vec<f32>,
    /// One per channel.
    bias: Vec<f32>,
    /// The low and high bounds of a clip applied after the bias (ReLU6's 0 and 6), absorbed from
    /// the graph (`with_clip`).
    clip: Option<[f32; 2]>,
    /// The bounds of a clip applied to the input's values as they are read (the ReLU6 of the
    /// convolution before), absorbed from the graph (`with_input_clip`).
    input_clip: Option<[f32; 2]>,
    out_shape: TVec<usize>,
    /// Chosen when the model is loaded.
    simd: Simd,
}

impl Eq for FloatDepthwise {}

impl FloatDepthwise {
    /// Builds the operator from weights in ONNX's `[C][1][kh][kw]` order.
    pub fn new(
        geometry: DepthwiseGeometry,
        weights: &[f32],
        bias: Option<&[f32]>,
        out_shape: TVec<usize>,
        simd: Simd,
    ) -> TractResult<FloatDepthwise> {
        let g = &geometry;
        ensure!(g.is_valid(), "depthwise geometry out of range: {g:?}");
        check_output_shape(&out_shape, g.channels, g.output())?;
        ensure!(weights.len() == g.channels * g.kernel[0] * g.kernel[1]);
        let bias = channel_bias(bias, g.channels)?;
        Ok(FloatDepthwise {
            geometry,
            weights: weights.to_vec(),
            bias,
            clip: None,
            input_clip: None,
            out_shape,
            simd,
        })
    }

    /// The operator followed by a clip to `[low, high]` (see the module documentation), both
    /// bounds numbers: what a `Max` with `low` and then a `Min` with `high` computes on its output.
    pub fn with_clip(self, low: f32, high: f32) -> TractResult<FloatDepthwise> {
        ensure!(!low.is_nan() && !high.is_nan(), "a clip bound is NaN");
        Ok(FloatDepthwise {
            clip: Some([low, high]),
            ..self
        })
    }

    /// The operator with its input clipped to `[low, high]` first, as [`with_clip`] clips the
    /// output: what a `Max` with `low` then a `Min` with `high` before the convolution compute,
    /// done while each channel is copied into the scratch image (the zero padding around it is
    /// the convolution's, after the clip, and stays zero).
    ///
    /// [`with_clip`]: FloatDepthwise::with_clip
    pub fn with_input_clip(self, low: f32, high: f32) -> TractResult<FloatDepthwise> {
        ensure!(!low.is_nan() && !high.is_nan(), "a clip bound is NaN");
        Ok(FloatDepthwise {
            input_clip: Some([low, high]),
            ..self
        })
    }

    /// Floats in one phase row of the scratch image: the widest read of the last block of 16
    /// output pixels, and every padded column.
    fn span(&self) -> usize {
        let g = &self.geometry;
        let sx = g.stride[1];
        let reads = g.output().1.next_multiple_of(LANES) + (g.kernel[1] - 1) / sx + 1;
        reads.max(g.padded().1.div_ceil(sx))
    }

    /// Runs the convolution on one CHW image on `simd` (the baseline where this CPU lacks it).
    pub(super) fn convolve(&self, input: &[f32], output: &mut [f32], simd: Simd) {
        let g = &self.geometry;
        let simd = if simd.available() {
            simd
        } else {
            Simd::Baseline
        };
        let (oh, ow) = g.output();
        assert!(input.len() >= g.channels * g.height * g.width);
        let output = &mut output[..g.channels * oh * ow];
        let scratch_len = g.padded().0 * g.stride[1] * self.span();
        in_chunks(output, CHANNELS_PER_TASK * oh * ow, |task, out| {
            with_scratch(&SCRATCH, scratch_len, |scratch| {
                scratch.fill(0.0);
                let first = task * CHANNELS_PER_TASK;
                match simd {
                    #[cfg(target_arch = "x86_64")]
                    // SAFETY: `available()` said the CPU has AVX-512F.
                    Simd::Avx512 => unsafe { x86::avx512(self, input, first, out, scratch) },
                    #[cfg(target_arch = "x86_64")]
                    // SAFETY: `available()` said the CPU has AVX2.
                    Simd::Avx2 => unsafe { x86::avx2(self, input, first, out, scratch) },
                    Simd::Baseline => channels(self, input, first, out, scratch, Plain),
                }
            })
        });
    }
}

thread_local! {
    /// Each thread's scratch image (see the module documentation).
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// The convolution of channels `first ..`, as many as `out` holds, using `scratch` (zeroed, the
/// phases' image), its output rows summed by `sum`. Inlined into each instruction set's function.
#[inline(always)]
fn channels(
    op: &FloatDepthwise,
    input: &[f32],
    first: usize,
    out: &mut [f32],
    scratch: &mut [f32],
    sum: impl RowSum,
) {
    let g = &op.geometry;
    let (oh, ow) = g.output();
    let [kh, kw] = g.kernel;
    let [sy, sx] = g.stride;
    let (top, left) = (g.pad[0], g.pad[1]);
    let span = op.span();
    let hw = g.height * g.width;
    let count = out.len() / (oh * ow);
    let image = &mut scratch[..g.padded().0 * sx * span];
    assert!(first + count <= g.channels);
    // Where each tap reads, from its output row's first phase row and its block's column (no
    // division in the loops: each would cost more than the tap's arithmetic).
    let taps = kh * kw;
    let mut offsets = [0usize; DepthwiseGeometry::MAX_TAPS];
    for (t, offset) in offsets[..taps].iter_mut().enumerate() {
        let (dy, dx) = (t / kw, t % kw);
        *offset = (dy * sx + dx % sx) * span + dx / sx;
    }
    let offsets = &offsets[..taps];
    let reach = offsets.iter().max().copied().unwrap_or(0) + LANES;
    for i in 0..count {
        let c = first + i;
        // The channel into the phases, clipped if the input is; the padding around it stays
        // zero from the start.
        let plane = &input[c * hw..(c + 1) * hw];
        match op.input_clip {
            Some([low, high]) => split_phases(plane, g.width, [top, left], sx, span, image, |v| {
                clip(v, low, high)
            }),
            None => split_phases(plane, g.width, [top, left], sx, span, image, |v| v),
        }
        let weights = &op.weights[c * taps..(c + 1) * taps];
        let bias = op.bias[c];
        let clip = op.clip;
        // Blocks of 16 pixels in ROWS output rows at once: each tap is one load, one multiply
        // and one add per row, into ROWS independent sums (one row's 16 pixels summed tap after
        // tap were bound by the add's latency). The last rows one at a time.
        let rows = Rows {
            image: &image[..],
            offsets,
            weights,
            bias,
            clip,
            step: sy * sx * span,
            ow,
            reach,
        };
        let out = &mut out[i * oh * ow..(i + 1) * oh * ow];
        let mut y = 0;
        while y + ROWS <= oh {
            sum.rows::<ROWS>(&rows, y, out);
            y += ROWS;
        }
        for y in y..oh {
            sum.rows::<1>(&rows, y, out);
        }
    }
}

/// Copies one channel (`plane`, rows of `width`) into a phases' image: padded row `r` of the
/// channel is `stride` rows of `span` floats, phase `p` holding padded columns `p, p + stride, …`,
/// with the image's top-left corner at `pad` (top, left), each value through `map` (a clip, or
/// none). Cells of padding are left as they are. Shared with the f32 max pool; inlined into each
/// instruction set's function.
#[inline(always)]
pub(super) fn split_phases(
    plane: &[f32],
    width: usize,
    [top, left]: [usize; 2],
    stride: usize,
    span: usize,
    image: &mut [f32],
    map: impl Fn(f32) -> f32,
) {
    let sx = stride;
    // The first padded column of each phase that holds an input column, and its index there.
    // The largest stride of both callers (the max pool's; the depthwise convolution's is 4).
    let mut phases = [(0usize, 0usize); 16];
    for (p, phase) in phases[..sx].iter_mut().enumerate() {
        let col = left + (p + sx - left % sx) % sx;
        *phase = (col - left, col / sx);
    }
    for (y, src) in plane.chunks_exact(width).enumerate() {
        let r = y + top;
        if sx == 1 {
            for (d, &v) in image[r * span + left..][..width].iter_mut().zip(src) {
                *d = map(v);
            }
            continue;
        }
        if sx == 2 {
            // Even and odd input columns, as a loop the compiler vectorizes (the general one
            // below stays scalar: a third of the depthwise kernel's time when it ran stride 2).
            let (p0, p1) = image[r * 2 * span..(r + 1) * 2 * span].split_at_mut(span);
            let (p0, p1) = (&mut p0[phases[0].1..], &mut p1[phases[1].1..]);
            let (even, odd) = if phases[0].0 == 0 { (p0, p1) } else { (p1, p0) };
            for (pair, (e, o)) in src.chunks_exact(2).zip(even.iter_mut().zip(odd)) {
                *e = map(pair[0]);
                *o = map(pair[1]);
            }
            if width % 2 == 1 {
                even[width / 2] = map(src[width - 1]);
            }
            continue;
        }
        for (p, &(x0, j0)) in phases[..sx].iter().enumerate() {
            let dst = &mut image[(r * sx + p) * span + j0..(r * sx + p + 1) * span];
            for (d, &v) in dst.iter_mut().zip(src.iter().skip(x0).step_by(sx)) {
                *d = map(v);
            }
        }
    }
}

/// One channel's output rows, from its phases' image.
struct Rows<'a> {
    image: &'a [f32],
    /// Each tap's read offset, and weight.
    offsets: &'a [usize],
    weights: &'a [f32],
    bias: f32,
    /// The clip's bounds, if any.
    clip: Option<[f32; 2]>,
    /// Image floats from one output row's reads to the next's.
    step: usize,
    ow: usize,
    /// One past the farthest float a block's taps read, from the block's first read (the AVX-512
    /// sum's bounds check).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    reach: usize,
}

/// How [`channels`] sums a block of output rows: the same operations in the same order whichever
/// way, so the same bits.
trait RowSum: Copy {
    /// Output rows `y .. y + R` of `rows`' channel into `out`.
    fn rows<const R: usize>(self, rows: &Rows, y: usize, out: &mut [f32]);
}

/// [`Rows::sum`], vectorized by the compiler for the function it is inlined into.
#[derive(Clone, Copy)]
struct Plain;

impl RowSum for Plain {
    #[inline(always)]
    fn rows<const R: usize>(self, rows: &Rows, y: usize, out: &mut [f32]) {
        rows.sum::<R>(y, out)
    }
}

impl Rows<'_> {
    /// Output rows `y .. y + R` of the channel (`out`, `oh × ow`), 16 pixels at a time: R sums
    /// the compiler keeps in registers, each tap one load, one multiply and one add per row.
    #[inline(always)]
    fn sum<const R: usize>(&self, y: usize, out: &mut [f32]) {
        let ow = self.ow;
        for x in (0..ow).step_by(LANES) {
            let mut acc = [[0f32; LANES]; R];
            for (&offset, &w) in self.offsets.iter().zip(self.weights) {
                for (j, acc) in acc.iter_mut().enumerate() {
                    let at = (y + j) * self.step + x + offset;
                    let src = &self.image[at..at + LANES];
                    for (a, &v) in acc.iter_mut().zip(src) {
                        *a += v * w;
                    }
                }
            }
            let n = (ow - x).min(LANES);
            for (j, acc) in acc.iter_mut().enumerate() {
                for a in acc.iter_mut() {
                    *a += self.bias;
                }
                if let Some([low, high]) = self.clip {
                    for a in acc.iter_mut() {
                        *a = clip(*a, low, high);
                    }
                }
                let at = (y + j) * ow + x;
                out[at..at + n].copy_from_slice(&acc[..n]);
            }
        }
    }
}

/// `v` clipped to `[low, high]` as `maxps` then `minps` compute it: the bound unless `v` is above
/// (below) it, so a NaN becomes the low bound and ties keep the bound.
#[inline(always)]
fn clip(v: f32, low: f32, high: f32) -> f32 {
    let v = if v > low { v } else { low };
    if v < high {
        v
    } else {
        high
    }
}

/// The definition, one output at a time, in the kernel's order of operations: what every
/// instruction set must give bit for bit.
#[cfg(test)]
pub(crate) fn reference(op: &FloatDepthwise, input: &[f32]) -> Vec<f32> {
    let g = &op.geometry;
    let (oh, ow) = g.output();
    let [kh, kw] = g.kernel;
    let mut out = vec![0.0; g.channels * oh * ow];
    for c in 0..g.channels {
        for y in 0..oh {
            for x in 0..ow {
                let mut sum = 0f32;
                for dy in 0..kh {
                    for dx in 0..kw {
                        let (py, px) = (y * g.stride[0] + dy, x * g.stride[1] + dx);
                        let v = match (py.checked_sub(g.pad[0]), px.checked_sub(g.pad[1])) {
                            (Some(iy), Some(ix)) if iy < g.height && ix < g.width => {
                                let v = input[(c * g.height + iy) * g.width + ix];
                                match op.input_clip {
                                    Some([low, high]) => clip(v, low, high),
                                    None => v,
                                }
                            }
                            _ => 0.0,
                        };
                        sum += v * op.weights[(c * kh + dy) * kw + dx];
                    }
                }
                let v = sum + op.bias[c];
                out[(c * oh + y) * ow + x] = match op.clip {
                    Some([low, high]) => clip(v, low, high),
                    None => v,
                };
            }
        }
    }
    out
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::*;
    use std::arch::x86_64::*;

    /// [`channels`] compiled for AVX-512F, its rows summed by [`Rows::avx512`] (the same
    /// operations in the same order, so the same values).
    ///
    /// # Safety
    /// The CPU must have AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn avx512(
        op: &FloatDepthwise,
        input: &[f32],
        first: usize,
        out: &mut [f32],
        scratch: &mut [f32],
    ) {
        channels(op, input, first, out, scratch, Avx512(()))
    }

    /// [`RowSum`] in AVX-512 intrinsics; made only by [`avx512`], whose caller vouched for the CPU.
    #[derive(Clone, Copy)]
    struct Avx512(());

    impl RowSum for Avx512 {
        #[inline(always)]
        fn rows<const R: usize>(self, rows: &Rows, y: usize, out: &mut [f32]) {
            // SAFETY: an `Avx512` exists only inside `avx512`, which needs AVX-512F.
            unsafe { rows.avx512::<R>(y, out) }
        }
    }

    impl Rows<'_> {
        /// [`Rows::sum`] written in intrinsics: the compiler's own vectorization of it once kept
        /// the fourth row's sums in 128- and 256-bit pieces reassembled at every tap (a build
        /// where nothing in this file had changed: nsfwjs's three float depthwise layers 1.5 ->
        /// 1.9 ms), and it checked each tap's bounds; here the bounds are checked once per block
        /// of rows and the sums stay in four zmm registers. Products and sums are separate
        /// instructions, as there.
        ///
        /// # Safety
        /// The CPU must have AVX-512F.
        #[target_feature(enable = "avx512f")]
        unsafe fn avx512<const R: usize>(&self, y: usize, out: &mut [f32]) {
            // R is 1 or 4 and a valid geometry's output is at least one value wide.
            let ow = self.ow;
            // The farthest read: the last row's last block, from its farthest tap; and the last
            // row's last output.
            let last = (y + R - 1) * self.step + (ow - 1) / LANES * LANES;
            assert!(last + self.reach <= self.image.len() && (y + R) * ow <= out.len());
            let bias = _mm512_set1_ps(self.bias);
            let clip = self
                .clip
                .map(|[low, high]| (_mm512_set1_ps(low), _mm512_set1_ps(high)));
            for x in (0..ow).step_by(LANES) {
                let mut acc = [_mm512_setzero_ps(); R];
                for (&offset, &w) in self.offsets.iter().zip(self.weights) {
                    let w = _mm512_set1_ps(w);
                    for (j, acc) in acc.iter_mut().enumerate() {
                        let at = (y + j) * self.step + x + offset;
                        // SAFETY: `at + 16 <= last + reach`, checked above.
                        let v = unsafe { _mm512_loadu_ps(self.image.as_ptr().add(at)) };
                        *acc = _mm512_add_ps(*acc, _mm512_mul_ps(v, w));
                    }
                }
                let mask = ((1u32 << (ow - x).min(LANES)) - 1) as __mmask16;
                for (j, acc) in acc.iter().enumerate() {
                    let at = (y + j) * ow + x;
                    let mut v = _mm512_add_ps(*acc, bias);
                    if let Some((low, high)) = clip {
                        // `clip`: maxps and minps return their second operand unless the first
                        // is above (below) it.
                        v = _mm512_min_ps(_mm512_max_ps(v, low), high);
                    }
                    // SAFETY: the mask's lanes end at row y + j's end, within `out` (above).
                    unsafe { _mm512_mask_storeu_ps(out.as_mut_ptr().add(at), mask, v) };
                }
            }
        }
    }

    /// [`channels`] compiled for AVX2.
    ///
    /// # Safety
    /// The CPU must have AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn avx2(
        op: &FloatDepthwise,
        input: &[f32],
        first: usize,
        out: &mut [f32],
        scratch: &mut [f32],
    ) {
        channels(op, input, first, out, scratch, Plain)
    }
}

f32_operator!(FloatDepthwise, "FloatDepthwise", simd);

impl FloatDepthwise {
    /// The operator's line in tract's graph dumps.
    fn describe(&self) -> String {
        let g = &self.geometry;
        format!(
            "{}, input clip {:?}, clip {:?}, {:?}",
            g.describe(),
            self.input_clip,
            self.clip,
            self.simd
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn geometry(
        channels: usize,
        size: [usize; 2],
        kernel: [usize; 2],
        stride: [usize; 2],
        pad: [usize; 4],
    ) -> DepthwiseGeometry {
        DepthwiseGeometry {
            channels,
            height: size[0],
            width: size[1],
            kernel,
            stride,
            pad,
        }
    }

    /// Values with many mantissa bits, so that any other order of operations shows.
    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n as u32)
            .map(|i| {
                let h = (i ^ seed).wrapping_mul(0x9E37_79B9).rotate_left(13) ^ seed;
                (h % 20_001) as f32 / 1_733.0 - 5.77
            })
            .collect()
    }

    fn op(g: &DepthwiseGeometry, seed: u32) -> FloatDepthwise {
        let (oh, ow) = g.output();
        let w = values(g.channels * g.kernel[0] * g.kernel[1], seed);
        let b = values(g.channels, seed ^ 0xABCD);
        FloatDepthwise::new(
            g.clone(),
            &w,
            Some(&b),
            tvec![1, g.channels, oh, ow],
            Simd::Baseline,
        )
        .unwrap()
    }

    fn run(op: &FloatDepthwise, input: &[f32], simd: Simd) -> Vec<f32> {
        let (oh, ow) = op.geometry.output();
        let mut out = vec![f32::NAN; op.geometry.channels * oh * ow];
        op.convolve(input, &mut out, simd);
        out
    }

    /// Every instruction set against the definition, bit for bit, without a clip, with one that
    /// cuts both ends of the outputs' range (checked below for one shape), with one of the inputs
    /// (they lie in [-5.77, 5.77]) and with both. Fails on any change of the order of operations
    /// (a fused multiply-add, a tap summed out of turn, the bias added first, the clip before the
    /// bias or its bounds swapped, the input clip left out of a path).
    fn check(g: &DepthwiseGeometry, seed: u32) {
        let input = values(g.channels * g.height * g.width, seed.rotate_left(7));
        let clipped = |op: FloatDepthwise| op.with_input_clip(-2.0, 3.25).unwrap();
        for op in [
            op(g, seed),
            op(g, seed).with_clip(-3.5, 6.0).unwrap(),
            clipped(op(g, seed)),
            clipped(op(g, seed).with_clip(-3.5, 6.0).unwrap()),
        ] {
            let want = reference(&op, &input);
            for &simd in Simd::ALL {
                if !simd.available() {
                    super::super::tests::missing_named(simd.name());
                    continue;
                }
                let got = run(&op, &input, simd);
                let same = got
                    .iter()
                    .zip(&want)
                    .all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(
                    same,
                    "{simd:?} differs from the definition on {g:?}, clip {:?}, input clip {:?}",
                    op.clip, op.input_clip
                );
            }
        }
    }

    #[test]
    fn mobilenet_shapes_match_the_definition_bit_for_bit() {
        // MobileNetV2's 3x3 at stride 1 and 2, with the odd and tiny sizes its later blocks have,
        // and more channels than one task takes.
        for (i, g) in [
            geometry(3, [112, 112], [3, 3], [1, 1], [1, 1, 1, 1]),
            geometry(20, [17, 17], [3, 3], [2, 2], [0, 0, 1, 1]),
            geometry(33, [7, 7], [3, 3], [1, 1], [1, 1, 1, 1]),
            geometry(5, [14, 13], [3, 3], [2, 2], [1, 1, 1, 1]),
            geometry(2, [1, 1], [1, 1], [1, 1], [0; 4]),
        ]
        .iter()
        .enumerate()
        {
            check(g, i as u32 + 1);
        }
        // The clip `check` applies cuts both ends and keeps values between.
        let g = geometry(3, [112, 112], [3, 3], [1, 1], [1, 1, 1, 1]);
        let op = op(&g, 1).with_clip(-3.5, 6.0).unwrap();
        let want = reference(&op, &values(3 * 112 * 112, 1u32.rotate_left(7)));
        for keep in [
            |v: f32| v == -3.5,
            |v: f32| v == 6.0,
            |v: f32| v.abs() < 3.0,
        ] {
            assert!(want.iter().any(|&v| keep(v)));
        }
    }

    /// One channel, 3x3 input, 2x2 kernel of 1 2 3 4, bias 0.5, no padding.
    fn by_hand() -> FloatDepthwise {
        let g = geometry(1, [3, 3], [2, 2], [1, 1], [0; 4]);
        FloatDepthwise::new(
            g,
            &[1.0, 2.0, 3.0, 4.0],
            Some(&[0.5]),
            tvec![1, 1, 2, 2],
            Simd::Baseline,
        )
        .unwrap()
    }

    #[test]
    fn a_known_convolution_by_hand() {
        // One channel, 3x3 input, 2x2 kernel, no padding: each output is the sum of its window
        // times the weights, plus the bias (small integers, exact in f32).
        let op = by_hand();
        let input = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];
        for &simd in Simd::ALL.iter().filter(|s| s.available()) {
            // 1+4+12+20 = 37, 2+6+15+24 = 47, 4+10+21+32 = 67, 5+12+24+36 = 77
            assert_eq!(run(&op, &input, simd), [37.5, 47.5, 67.5, 77.5], "{simd:?}");
        }
    }

    #[test]
    fn a_clip_bounds_every_output_the_way_max_then_min_does() {
        // Outputs 37.5, 47.5, 67.5, 77.5 (above) clipped to [40, 70]; a NaN input (the first
        // window only) gives the low bound, as `maxps` does; bounds given the wrong way round
        // give the high one everywhere, as Max then Min do.
        let op = by_hand();
        assert!(op.clone().with_clip(f32::NAN, 1.0).is_err());
        let clipped = op.clone().with_clip(40.0, 70.0).unwrap();
        let swapped = op.with_clip(70.0, 40.0).unwrap();
        let input = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];
        let mut with_nan = input;
        with_nan[0] = f32::NAN;
        for &simd in Simd::ALL.iter().filter(|s| s.available()) {
            assert_eq!(
                run(&clipped, &input, simd),
                [40.0, 47.5, 67.5, 70.0],
                "{simd:?}"
            );
            assert_eq!(
                run(&clipped, &with_nan, simd),
                [40.0, 47.5, 67.5, 70.0],
                "{simd:?}"
            );
            assert_eq!(run(&swapped, &input, simd), [40.0; 4], "{simd:?}");
        }
    }

    #[test]
    fn an_input_clip_bounds_every_input_value_but_not_the_padding() {
        // The 3x3 input 1..9 clipped to [2, 8] is 2 2 3 / 4 5 6 / 7 8 8 under the 2x2 kernel 1 2
        // 3 4: 2+4+12+20, 2+6+15+24, 4+10+21+32, 5+12+24+32, plus 0.5; a NaN input (the first)
        // gives the low bound, as `maxps` does. NaN bounds are refused.
        let op = by_hand();
        assert!(op.clone().with_input_clip(0.0, f32::NAN).is_err());
        let clipped = op.with_input_clip(2.0, 8.0).unwrap();
        let input = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];
        let mut with_nan = input;
        with_nan[0] = f32::NAN;
        // Stride 2 with a zero column each side (the padding stays zero, below the clip's low
        // bound): 1 2 3 4 5 clipped to [2.5, 4.5] is 2.5 2.5 3 4 4.5, windows [0, 2.5, 2.5],
        // [2.5, 3, 4], [4, 4.5, 0] of ones.
        let g = geometry(1, [1, 5], [1, 3], [1, 2], [0, 1, 0, 1]);
        let padded = FloatDepthwise::new(g, &[1.0; 3], None, tvec![1, 1, 1, 3], Simd::Baseline)
            .unwrap()
            .with_input_clip(2.5, 4.5)
            .unwrap();
        for &simd in Simd::ALL.iter().filter(|s| s.available()) {
            let want = [38.5, 47.5, 67.5, 73.5];
            assert_eq!(run(&clipped, &input, simd), want, "{simd:?}");
            assert_eq!(run(&clipped, &with_nan, simd), want, "{simd:?}");
            assert_eq!(
                run(&padded, &[1.0, 2.0, 3.0, 4.0, 5.0], simd),
                [5.0, 9.5, 8.5],
                "{simd:?}"
            );
        }
    }

    #[test]
    fn a_stride_two_convolution_reads_every_second_column_with_its_padding() {
        // 1 channel, 1x5 input, 1x3 kernel of ones, stride 2, one zero column on each side:
        // windows [0,1,2], [2,3,4], [4,5,0] of the padded row 0 1 2 3 4 5 0.
        let g = geometry(1, [1, 5], [1, 3], [1, 2], [0, 1, 0, 1]);
        let op =
            FloatDepthwise::new(g, &[1.0; 3], None, tvec![1, 1, 1, 3], Simd::Baseline).unwrap();
        for &simd in Simd::ALL.iter().filter(|s| s.available()) {
            assert_eq!(
                run(&op, &[1.0, 2.0, 3.0, 4.0, 5.0], simd),
                [3.0, 9.0, 9.0],
                "{simd:?}"
            );
        }
    }

    #[test]
    fn shapes_that_do_not_fit_are_refused() {
        let g = geometry(2, [4, 4], [3, 3], [1, 1], [1; 4]);
        let w = vec![0.0; 18];
        assert!(
            FloatDepthwise::new(g.clone(), &w[..17], None, tvec![1, 2, 4, 4], Simd::Baseline)
                .is_err()
        );
        assert!(FloatDepthwise::new(
            g.clone(),
            &w,
            Some(&[0.0]),
            tvec![1, 2, 4, 4],
            Simd::Baseline
        )
        .is_err());
        assert!(
            FloatDepthwise::new(g.clone(), &w, None, tvec![1, 2, 4, 5], Simd::Baseline).is_err()
        );
        let wide = geometry(2, [4, 8], [3, 5], [1, 1], [0; 4]);
        assert!(
            FloatDepthwise::new(wide, &[0.0; 30], None, tvec![1, 2, 2, 4], Simd::Baseline).is_err()
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn any_valid_geometry_matches_the_definition_bit_for_bit(
            channels in 1usize..20,
            h in 1usize..24,
            w in 1usize..40,
            kh in 1usize..5,
            kw in 1usize..5,
            sy in 1usize..5,
            sx in 1usize..5,
            pad in proptest::array::uniform4(0usize..4),
            seed in any::<u32>(),
        ) {
            // Padding below the kernel's size, as ONNX models have it.
            let pad = [pad[0] % kh, pad[1] % kw, pad[2] % kh, pad[3] % kw];
            let g = geometry(channels, [h, w], [kh, kw], [sy, sx], pad);
            prop_assume!(g.is_valid());
            check(&g, seed);
        }
    }
}
