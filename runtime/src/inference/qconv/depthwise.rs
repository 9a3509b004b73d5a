//! The depthwise twin of [`QConv`]: each channel convolved with its own small kernel (ONNX `Conv`
//! with `group` = channels, one output channel per input channel), as MobileNet's inverted
//! residual blocks do, with strides of 1 or 2. It computes what the quantized chain means, exactly
//! as [`QConv`] does (see the parent module): the input quantized again with `1/sx`, the integer
//! sum `Σ (qx − zx) · qw` exact in i32, then one scale, the bias and the output's Q/DQ pair.
//!
//! # Layout
//!
//! A depthwise convolution sums over taps only, never over channels, so the dot product
//! instructions get their 4 bytes from the taps instead: each row of the kernel (at most 4 wide)
//! is one 32-bit word of weights, and the quantized image stores, for each output column `x` and
//! padded input row, the 4 input bytes that row of taps meets, starting at `x · stride`
//! (`[C][Hp][W']`, `W'` the output width rounded up to 16, the bytes beyond the kernel's width
//! multiplied by zero weights). An output vector of 16 pixels is then one `vpdpbusd` per kernel
//! row (or 4 `sdot`/`usdot`), for either stride, on contiguous loads.

use super::*;
use crate::inference::rewrite::ROUNDING_BIAS;
/// Output channels per task when the convolution is shared among threads.
const CHANNELS_PER_TASK: usize = 16;

/// The shape of one depthwise convolution: one kernel per channel, no dilation.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct DepthwiseGeometry {
    /// Channels, in and out.
    pub channels: usize,
    /// Input height.
    pub height: usize,
    /// Input width.
    pub width: usize,
    /// Kernel height and width (at most 4 wide).
    pub kernel: [usize; 2],
    /// Vertical and horizontal stride.
    pub stride: [usize; 2],
    /// Zero padding: top, left, bottom, right.
    pub pad: [usize; 4],
}

impl DepthwiseGeometry {
    /// One 32-bit word of weights per kernel row.
    const MAX_KERNEL_WIDTH: usize = 4;
    const MAX_KERNEL_HEIGHT: usize = 16;
    pub(crate) const MAX_STRIDE: usize = 4;
    /// Taps of the largest kernel.
    pub(crate) const MAX_TAPS: usize = Self::MAX_KERNEL_HEIGHT * Self::MAX_KERNEL_WIDTH;

    /// The shape in the operators' lines of tract's graph dumps.
    pub(crate) fn describe(&self) -> String {
        format!(
            "{}x{} depthwise, {} channels on {}x{}, stride {:?}, pad {:?}",
            self.kernel[0],
            self.kernel[1],
            self.channels,
            self.height,
            self.width,
            self.stride,
            self.pad
        )
    }

    /// Padded input height and width.
    pub(crate) fn padded(&self) -> (usize, usize) {
        (
            self.height + self.pad[0] + self.pad[2],
            self.width + self.pad[1] + self.pad[3],
        )
    }

    /// Output height and width (ONNX's: the last window that fits).
    pub fn output(&self) -> (usize, usize) {
        let (hp, wp) = self.padded();
        (
            (hp - self.kernel[0]) / self.stride[0] + 1,
            (wp - self.kernel[1]) / self.stride[1] + 1,
        )
    }

    /// Words in one row of the quantized image: the output width rounded up to whole vectors.
    fn row(&self) -> usize {
        self.output().1.next_multiple_of(LANES)
    }

    /// Words in one channel of the quantized image.
    fn plane(&self) -> usize {
        self.padded().0 * self.row()
    }

    /// Bytes of the quantizer's row buffer: one padded input row with the slack the last output
    /// column reads, and what the AVX-512 quantizer writes (whole vectors of 16) and its packer
    /// reads (16 bytes from each 4th word's start) beyond it. `None` where that overflows.
    fn line_bytes(&self) -> Option<usize> {
        let (_, wp) = self.padded();
        let row = self.output().1.checked_next_multiple_of(LANES)?;
        let quantized = self.pad[1].checked_add(self.width.checked_next_multiple_of(LANES)?)?;
        let packed = self.stride[1].checked_mul(row)?.checked_add(LANES)?;
        Some(
            wp.checked_add(Self::MAX_KERNEL_WIDTH)?
                .max(quantized)
                .max(packed),
        )
    }

    /// Words of scratch the quantizer needs for `channels` channels: their image, then the row
    /// buffer ([`Self::line_bytes`]).
    fn scratch(&self, channels: usize) -> usize {
        let line = self.line_bytes().expect("a valid geometry").div_ceil(4);
        channels * self.plane() + line
    }

    /// Whether the shapes are ones this operator computes exactly and in bounds.
    pub fn is_valid(&self) -> bool {
        let [kh, kw] = self.kernel;
        let small = |v: usize, max: usize| (1..=max).contains(&v);
        if !(self.channels > 0
            && self.height > 0
            && self.width > 0
            && small(kh, Self::MAX_KERNEL_HEIGHT)
            && small(kw, Self::MAX_KERNEL_WIDTH)
            && self.stride.iter().all(|&s| small(s, Self::MAX_STRIDE))
            && self.pad[0] < kh
            && self.pad[2] < kh
            && self.pad[1] < kw
            && self.pad[3] < kw)
        {
            return false;
        }
        // Sizes that overflow nothing: |Σ| ≤ 16 · 4 · 255 · 128 always fits an i32.
        let Some((hp, wp)) = self
            .height
            .checked_add(self.pad[0] + self.pad[2])
            .zip(self.width.checked_add(self.pad[1] + self.pad[3]))
        else {
            return false;
        };
        hp >= kh
            && wp >= kw
            && wp.checked_add(LANES + Self::MAX_KERNEL_WIDTH).is_some()
            // The scratch (`scratch()`) in bytes.
            && hp
                .checked_mul(self.output().1.next_multiple_of(LANES))
                .and_then(|plane| plane.checked_mul(self.channels))
                .zip(self.line_bytes())
                .and_then(|(words, line)| words.checked_add(line.div_ceil(4)))
                .and_then(|words| words.checked_mul(4))
                .is_some()
            && self
                .height
                .checked_mul(self.width)
                .and_then(|hw| hw.checked_mul(self.channels))
                .is_some()
    }
}

/// The integer depthwise convolution operator (see the module documentation).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct QDepthwise {
    geometry: DepthwiseGeometry,
    /// Multiplier that quantizes the input (`1/sx`) and the input's zero point.
    in_inv_scale: f32,
    in_zero: u8,
    /// Per channel and kernel row, the row's s8 weights as one little-endian word, zero beyond
    /// the kernel's width: `[C][kh]`.
    packed: Vec<u32>,
    /// `zx · Σ qw[c]`, what the input's zero point adds to each channel's sum.
    zero_sums: Vec<i32>,
    /// `(zx − 128) · Σ qw[c]`: the same for the `sdot` kernel, whose activations are `q − 128`.
    #[cfg_attr(not(target_arch = "aarch64"), allow(dead_code))]
    signed_zero_sums: Vec<i32>,
    /// `sx · sw[c]`.
    scales: Vec<f32>,
    bias: Vec<f32>,
    requantize: Option<Requantize>,
    out_shape: TVec<usize>,
    /// The kernel `eval` runs on, chosen when the model is loaded (`with_kernel`).
    kernel: Kernel,
}

impl Eq for QDepthwise {}

impl QDepthwise {
    /// Builds the operator from s8 weights in `[C][1][kh][kw]` order (ONNX's for a depthwise
    /// convolution), one scale per channel.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        geometry: DepthwiseGeometry,
        in_scale: f32,
        in_zero: u8,
        weights: &[i8],
        weight_scales: &[f32],
        bias: Option<&[f32]>,
        requantize: Option<Requantize>,
        out_shape: TVec<usize>,
    ) -> TractResult<QDepthwise> {
        let g = &geometry;
        ensure!(g.is_valid(), "depthwise geometry out of range: {g:?}");
        check_output_shape(&out_shape, g.channels, g.output())?;
        let [kh, kw] = g.kernel;
        ensure!(weights.len() == g.channels * kh * kw);
        check_quantization(in_scale, weight_scales, requantize, g.channels)?;
        let bias = channel_bias(bias, g.channels)?;
        let packed = weights
            .chunks(kw)
            .map(|row| {
                let mut word = [0u8; 4];
                for (b, &w) in word.iter_mut().zip(row) {
                    *b = w as u8;
                }
                u32::from_le_bytes(word)
            })
            .collect();
        let weight_sums: Vec<i32> = weights
            .chunks(kh * kw)
            .map(|w| w.iter().map(|&w| i32::from(w)).sum())
            .collect();
        Ok(QDepthwise {
            zero_sums: weight_sums.iter().map(|s| s * i32::from(in_zero)).collect(),
            signed_zero_sums: weight_sums
                .iter()
                .map(|s| s * (i32::from(in_zero) - 128))
                .collect(),
            scales: weight_scales.iter().map(|&s| in_scale * s).collect(),
            geometry,
            in_inv_scale: in_scale.recip(),
            in_zero,
            packed,
            bias,
            requantize,
            out_shape,
            kernel: Kernel::Portable,
        })
    }

    /// The operator running on `kernel` (the portable one where this CPU cannot run it).
    pub fn with_kernel(self, kernel: Kernel) -> QDepthwise {
        QDepthwise { kernel, ..self }
    }

    /// Runs the convolution on one CHW image with `kernel` (the portable one where this CPU
    /// cannot run it). Each task of [`CHANNELS_PER_TASK`] channels quantizes its own channels'
    /// planes into its thread's scratch and convolves them, so with threads the quantizer is
    /// shared as the sums are, and each plane is read back while it is still in the cache.
    pub(super) fn convolve(&self, input: &[f32], output: &mut [f32], kernel: Kernel) {
        let g = &self.geometry;
        let kernel = if kernel.available() {
            kernel
        } else {
            Kernel::Portable
        };
        let (oh, ow) = g.output();
        let output = &mut output[..g.channels * oh * ow];
        in_chunks(output, CHANNELS_PER_TASK * oh * ow, |task, out| {
            let first = task * CHANNELS_PER_TASK;
            let channels = first..first + out.len() / (oh * ow);
            with_scratch(&SCRATCH, g.scratch(channels.len()), |scratch| {
                let (image, line) = scratch.split_at_mut(channels.len() * g.plane());
                match kernel {
                    #[cfg(target_arch = "x86_64")]
                    Kernel::Vnni => {
                        // SAFETY: `available()` said the CPU has the kernel's features; `image`
                        // holds the planes of `channels`, whose outputs `out` holds.
                        unsafe {
                            x86::quantize(self, input, channels.clone(), image, line);
                            x86::convolve(self, image, first, out);
                        }
                    }
                    #[cfg(target_arch = "aarch64")]
                    Kernel::I8mm => {
                        quantize(self, input, channels, image, line, 0, true);
                        // SAFETY: `available()` said the CPU has i8mm; as above.
                        unsafe { arm::convolve_usdot(self, image, first, out) }
                    }
                    #[cfg(target_arch = "aarch64")]
                    Kernel::Dotprod => {
                        quantize(self, input, channels, image, line, 0x8080_8080, true);
                        // SAFETY: `available()` said the CPU has dotprod; as above.
                        unsafe { arm::convolve_sdot(self, image, first, out) }
                    }
                    _ => {
                        quantize(self, input, channels, image, line, 0, false);
                        convolve_portable(self, image, first, out);
                    }
                }
            })
        });
    }
}

/// The input quantized as [`quantize_one`] does, in plain f32 arithmetic (clamp, then the
/// rounding bias) that needs no rounding instruction. The value is a whole number in 0..=255 by
/// then; converting through i32 lets the compiler vectorize the conversion where it can.
#[inline(always)]
fn quantize_byte(v: f32, inv: f32, zero: f32) -> u8 {
    ((v * inv).max(-zero).min(255.0 - zero) + ROUNDING_BIAS - ROUNDING_BIAS + zero) as i32 as u8
}

/// Fills the quantized image of `channels` (see the module documentation; the first of them at
/// the start of `image`), every word XORed with `flip`
/// (`0x8080_8080` stores each byte as `q − 128`, the signed operand of `sdot`), using `line`
/// ([`DepthwiseGeometry::scratch`]) as the bytes of each padded input row: each word is one
/// unaligned 4-byte read of that row. The portable and aarch64 kernels' quantizer (on x86-64 the
/// AVX-512 one, [`x86::quantize`], gives the same image). The two walk the image alike but keep
/// their own loops: one walk taking the row packing as a closure cost 5.1 M more guest
/// instructions per nsfwjs int8 inference on aarch64 (282.5 M against 277.4 M, test profile at
/// `max`, 2026-12-04). With `neon` (the aarch64 SIMD kernels; the portable kernel keeps the
/// scalar loop, so the kernels' bit-exactness tests compare the two) the words are gathered 4 at
/// a time ([`arm::gather`]).
#[inline(always)]
fn quantize(
    op: &QDepthwise,
    input: &[f32],
    channels: std::ops::Range<usize>,
    image: &mut [u32],
    line: &mut [u32],
    flip: u32,
    neon: bool,
) {
    let g = &op.geometry;
    let (hp, wp) = g.padded();
    let (_, ow) = g.output();
    let (row, plane) = (g.row(), g.plane());
    let hw = g.height * g.width;
    assert!(channels.end <= g.channels && input.len() >= g.channels * hw);
    assert!(image.len() >= channels.len() * plane);
    let (inv, zero) = (op.in_inv_scale, f32::from(op.in_zero));
    let fill = (u32::from(op.in_zero) * 0x0101_0101) ^ flip;
    // One padded input row as bytes, plus the slack the last word reads (and the NEON gather's
    // 16-byte loads, `line_bytes`): the zero point outside the input.
    let line_bytes = g.line_bytes().expect("a valid geometry");
    let line = &mut as_bytes(line)[..line_bytes];
    assert!(line_bytes >= wp + DepthwiseGeometry::MAX_KERNEL_WIDTH);
    line.fill(op.in_zero);
    let step = g.stride[1];
    for (dst, c) in image.chunks_exact_mut(plane).zip(channels) {
        for (r, words) in dst.chunks_exact_mut(row).enumerate().take(hp) {
            let Some(y) = r.checked_sub(g.pad[0]).filter(|&y| y < g.height) else {
                words.fill(fill);
                continue;
            };
            let src = &input[c * hw + y * g.width..][..g.width];
            for (q, &v) in line[g.pad[1]..g.pad[1] + g.width].iter_mut().zip(src) {
                *q = quantize_byte(v, inv, zero);
            }
            #[cfg(target_arch = "aarch64")]
            let from = if neon {
                // SAFETY: NEON is part of the aarch64 base ISA; `gather` checks its bounds.
                unsafe { arm::gather(line, &mut words[..ow], step, flip) }
            } else {
                0
            };
            #[cfg(not(target_arch = "aarch64"))]
            let from = {
                let _ = neon;
                0
            };
            for (x, word) in words[..ow].iter_mut().enumerate().skip(from) {
                let at = x * step;
                let bytes: [u8; 4] = line[at..at + 4].try_into().expect("4 bytes");
                *word = u32::from_le_bytes(bytes) ^ flip;
            }
            words[ow..].fill(fill);
        }
    }
}

/// The bytes of `words` (u8 has no alignment, and every byte is a valid u8).
fn as_bytes(words: &mut [u32]) -> &mut [u8] {
    // SAFETY: the same memory, 4 bytes per word, borrowed for no longer than `words`.
    unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), words.len() * 4) }
}

/// u8 × s8 products of one word's 4 bytes, summed.
fn dot(x: u32, w: u32) -> i32 {
    x.to_le_bytes()
        .iter()
        .zip(w.to_le_bytes())
        .map(|(&x, w)| i32::from(x) * i32::from(w as i8))
        .sum()
}

/// The reference kernel: the same sums and epilogue, one output at a time, for channels
/// `first ..` (as many as `out` holds), their planes from the start of `image`.
fn convolve_portable(op: &QDepthwise, image: &[u32], first: usize, out: &mut [f32]) {
    let g = &op.geometry;
    let (oh, ow) = g.output();
    let (row, plane, kh) = (g.row(), g.plane(), g.kernel[0]);
    let channels = out.len() / (oh * ow);
    assert!(first + channels <= g.channels && image.len() >= channels * plane);
    for i in 0..channels {
        let c = first + i;
        let weights = &op.packed[c * kh..(c + 1) * kh];
        for y in 0..oh {
            for x in 0..ow {
                let sum: i32 = weights
                    .iter()
                    .enumerate()
                    .map(|(dy, &w)| dot(image[i * plane + (y * g.stride[0] + dy) * row + x], w))
                    .sum();
                out[(i * oh + y) * ow + x] = finish(
                    sum - op.zero_sums[c],
                    op.scales[c],
                    op.bias[c],
                    op.requantize,
                );
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::super::x86_64::{finish16, quantize16, Requant};
    use super::*;
    use std::arch::x86_64::*;

    /// [`super::quantize`] with AVX-512: 16 floats at a time quantized (as the dense kernel's
    /// quantizer does: the same values as [`quantize_byte`]) into the row buffer, then 16 words at
    /// a time gathered from it with one byte shuffle (`vpshufb`: the 4 bytes at `x · stride`
    /// from 16-byte loads at every 4th word's start).
    ///
    /// # Safety
    /// The CPU must have AVX-512F/BW.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn quantize(
        op: &QDepthwise,
        input: &[f32],
        channels: std::ops::Range<usize>,
        image: &mut [u32],
        line: &mut [u32],
    ) {
        let g = &op.geometry;
        let (hp, _) = g.padded();
        let (_, ow) = g.output();
        let (row, plane) = (g.row(), g.plane());
        let hw = g.height * g.width;
        let line = as_bytes(line);
        let step = g.stride[1];
        assert!(channels.end <= g.channels && input.len() >= g.channels * hw);
        assert!(image.len() >= channels.len() * plane);
        assert!(line.len() >= g.line_bytes().expect("a valid geometry"));
        line.fill(op.in_zero);
        let fill = u32::from(op.in_zero) * 0x0101_0101;
        let z = f32::from(op.in_zero);
        let inv = _mm512_set1_ps(op.in_inv_scale);
        let (lo, hi) = (_mm512_set1_ps(-z), _mm512_set1_ps(255.0 - z));
        let zi = _mm512_set1_epi32(i32::from(op.in_zero));
        // Byte 4i + j of each 128-bit lane: byte j of the lane's word i, at i · stride + j.
        let pattern: [u8; 16] = std::array::from_fn(|b| ((b / 4) * step + b % 4) as u8);
        // SAFETY: 16 bytes.
        let pattern = unsafe { _mm_loadu_si128(pattern.as_ptr().cast()) };
        let shuffle = _mm512_broadcast_i32x4(pattern);
        for (dst, c) in image.chunks_exact_mut(plane).zip(channels) {
            for (r, words) in dst.chunks_exact_mut(row).enumerate().take(hp) {
                let Some(y) = r.checked_sub(g.pad[0]).filter(|&y| y < g.height) else {
                    words.fill(fill);
                    continue;
                };
                let src = &input[c * hw + y * g.width..][..g.width];
                for x in (0..g.width).step_by(LANES) {
                    let n = (g.width - x).min(LANES);
                    let mask = ((1u32 << n) - 1) as __mmask16;
                    // The lanes past the row quantize to the zero point: the padding's value.
                    let out = &mut line[g.pad[1] + x..g.pad[1] + x + LANES];
                    // SAFETY: `mask` covers the n floats left in `src`; `out` holds 16 bytes.
                    unsafe {
                        let q = quantize16(src.as_ptr().add(x), mask, inv, lo, hi, zi);
                        _mm_storeu_si128(out.as_mut_ptr().cast(), _mm512_cvtepi32_epi8(q));
                    }
                }
                for x in (0..ow).step_by(LANES) {
                    let at = x * step;
                    let quad = |k: usize| {
                        let bytes = &line[at + 4 * step * k..at + 4 * step * k + 16];
                        // SAFETY: 16 bytes.
                        unsafe { _mm_loadu_si128(bytes.as_ptr().cast()) }
                    };
                    let v = _mm512_castsi128_si512(quad(0));
                    let v = _mm512_inserti32x4::<1>(v, quad(1));
                    let v = _mm512_inserti32x4::<2>(v, quad(2));
                    let v = _mm512_inserti32x4::<3>(v, quad(3));
                    let out = &mut words[x..x + LANES];
                    // SAFETY: 16 words (the row is a whole number of vectors).
                    unsafe {
                        _mm512_storeu_si512(
                            out.as_mut_ptr().cast(),
                            _mm512_shuffle_epi8(v, shuffle),
                        )
                    };
                }
                words[ow..].fill(fill);
            }
        }
    }

    /// The `vpdpbusd` twin of [`convolve_portable`] for channels `first ..`, as many as `out`
    /// holds, their planes from the start of `image`.
    ///
    /// # Safety
    /// The CPU must have AVX-512F/BW/VNNI; `image` was filled by [`quantize`].
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn convolve(op: &QDepthwise, image: &[u32], first: usize, out: &mut [f32]) {
        let g = &op.geometry;
        let (oh, ow) = g.output();
        let (row, plane, kh) = (g.row(), g.plane(), g.kernel[0]);
        let requant = Requant::new(op.requantize);
        let channels = out.len() / (oh * ow);
        assert!(first + channels <= g.channels && image.len() >= channels * plane);
        for i in 0..channels {
            let c = first + i;
            let weights = &op.packed[c * kh..(c + 1) * kh];
            let zero = _mm512_set1_epi32(op.zero_sums[c]);
            let base = &image[i * plane..(i + 1) * plane];
            for y in 0..oh {
                let top = y * g.stride[0] * row;
                let dst = &mut out[(i * oh + y) * ow..(i * oh + y + 1) * ow];
                for x in (0..ow).step_by(LANES) {
                    let mut acc = _mm512_setzero_si512();
                    for (dy, &w) in weights.iter().enumerate() {
                        let at = top + dy * row + x;
                        // The row is a whole number of vectors: `at + 16` stays in the plane.
                        let words = &base[at..at + LANES];
                        // SAFETY: 16 words, just bounds-checked.
                        let v = unsafe { _mm512_loadu_si512(words.as_ptr().cast()) };
                        acc = _mm512_dpbusd_epi32(acc, v, _mm512_set1_epi32(w as i32));
                    }
                    let sum = _mm512_sub_epi32(acc, zero);
                    let v = finish16(sum, op.scales[c], op.bias[c], requant);
                    let n = (ow - x).min(LANES);
                    let dst = &mut dst[x..x + n];
                    // SAFETY: the mask covers the n floats of `dst`.
                    unsafe {
                        _mm512_mask_storeu_ps(dst.as_mut_ptr(), ((1u32 << n) - 1) as __mmask16, v)
                    };
                }
            }
        }
    }
}

/// The aarch64 kernels: the vector forms of `sdot` (s8 × s8, on activations offset by −128) and
/// `usdot` (u8 × s8, i8mm), each lane one output pixel, as single `asm!` instructions (see the
/// parent module's `aarch64`).
#[cfg(target_arch = "aarch64")]
mod arm {
    use super::super::aarch64::finish4;
    use super::*;
    use std::arch::aarch64::*;
    use std::arch::asm;

    /// The packing loop of [`super::quantize`], 4 words at a time: word `x` is the 4 bytes of
    /// `line` from `x · step`, XORed with `flip`, and 4 words are one table lookup (`tbl`) in
    /// the 16 bytes from the first one's start (`step` is at most 4, so they reach byte 15).
    /// Returns how many words it wrote, from the first; the caller packs the rest.
    #[target_feature(enable = "neon")]
    pub(super) fn gather(line: &[u8], words: &mut [u32], step: usize, flip: u32) -> usize {
        assert!((1..=DepthwiseGeometry::MAX_STRIDE).contains(&step));
        let pattern: [u8; 16] = std::array::from_fn(|b| ((b / 4) * step + b % 4) as u8);
        // SAFETY: 16 bytes.
        let pattern = unsafe { vld1q_u8(pattern.as_ptr()) };
        let flip = vreinterpretq_u8_u32(vdupq_n_u32(flip));
        let mut x = 0;
        while x + 4 <= words.len() && x * step + 16 <= line.len() {
            // SAFETY: bytes x·step .. x·step + 16 of `line` and words x .. x + 4 of `words`, both
            // checked by the loop's condition.
            unsafe {
                let bytes = vld1q_u8(line.as_ptr().add(x * step));
                let packed = veorq_u8(vqtbl1q_u8(bytes, pattern), flip);
                vst1q_u8(words.as_mut_ptr().add(x).cast(), packed);
            }
            x += 4;
        }
        x
    }

    /// The convolution for channels `first ..` (as many as `out` holds, their planes from the start
    /// of `image`), each lane's dot product `dot(acc, pixels, weights)`.
    #[inline]
    #[target_feature(enable = "neon")]
    fn convolve(
        op: &QDepthwise,
        image: &[u32],
        first: usize,
        out: &mut [f32],
        zero_sums: &[i32],
        dot: impl Fn(int32x4_t, uint32x4_t, uint32x4_t) -> int32x4_t,
    ) {
        let g = &op.geometry;
        let (oh, ow) = g.output();
        let (row, plane, kh) = (g.row(), g.plane(), g.kernel[0]);
        let channels = out.len() / (oh * ow);
        assert!(first + channels <= g.channels && image.len() >= channels * plane);
        for i in 0..channels {
            let c = first + i;
            let weights = &op.packed[c * kh..(c + 1) * kh];
            let zero = vdupq_n_s32(zero_sums[c]);
            let base = &image[i * plane..(i + 1) * plane];
            for y in 0..oh {
                let top = y * g.stride[0] * row;
                let dst = &mut out[(i * oh + y) * ow..(i * oh + y + 1) * ow];
                for x in (0..ow).step_by(4) {
                    let mut acc = vdupq_n_s32(0);
                    for (dy, &w) in weights.iter().enumerate() {
                        let at = top + dy * row + x;
                        let words = &base[at..at + 4];
                        // SAFETY: 4 words, just bounds-checked.
                        let v = unsafe { vld1q_u32(words.as_ptr()) };
                        acc = dot(acc, v, vdupq_n_u32(w));
                    }
                    let v = finish4(
                        vsubq_s32(acc, zero),
                        op.scales[c],
                        op.bias[c],
                        op.requantize,
                    );
                    let n = (ow - x).min(4);
                    if n == 4 {
                        // SAFETY: `dst[x..x + 4]` exists.
                        unsafe { vst1q_f32(dst[x..x + 4].as_mut_ptr(), v) };
                    } else {
                        let mut lanes = [0f32; 4];
                        // SAFETY: 4 floats into a 4-float array.
                        unsafe { vst1q_f32(lanes.as_mut_ptr(), v) };
                        dst[x..x + n].copy_from_slice(&lanes[..n]);
                    }
                }
            }
        }
    }

    /// With `sdot`, on an image whose bytes are `q − 128`.
    ///
    /// # Safety
    /// The CPU must have dotprod; `image` was filled with the `0x8080_8080` flip.
    #[target_feature(enable = "neon,dotprod")]
    pub(super) unsafe fn convolve_sdot(
        op: &QDepthwise,
        image: &[u32],
        first: usize,
        out: &mut [f32],
    ) {
        convolve(
            op,
            image,
            first,
            out,
            &op.signed_zero_sums,
            |mut acc, x, w| {
                // SAFETY: register-only arithmetic; this function is compiled for dotprod.
                unsafe {
                    asm!(
                        "sdot {a:v}.4s, {x:v}.16b, {w:v}.16b",
                        a = inout(vreg) acc,
                        x = in(vreg) x,
                        w = in(vreg) w,
                        options(pure, nomem, nostack, preserves_flags)
                    )
                };
                acc
            },
        )
    }

    /// With `usdot` (u8 × s8), on the plain image.
    ///
    /// # Safety
    /// The CPU must have i8mm; `image` was filled without a flip.
    #[target_feature(enable = "neon,i8mm")]
    pub(super) unsafe fn convolve_usdot(
        op: &QDepthwise,
        image: &[u32],
        first: usize,
        out: &mut [f32],
    ) {
        convolve(op, image, first, out, &op.zero_sums, |mut acc, x, w| {
            // SAFETY: register-only arithmetic; this function is compiled for i8mm.
            unsafe {
                asm!(
                    "usdot {a:v}.4s, {x:v}.16b, {w:v}.16b",
                    a = inout(vreg) acc,
                    x = in(vreg) x,
                    w = in(vreg) w,
                    options(pure, nomem, nostack, preserves_flags)
                )
            };
            acc
        })
    }
}

f32_operator!(QDepthwise, "QDepthwise", kernel);

impl QDepthwise {
    /// The operator's line in tract's graph dumps.
    fn describe(&self) -> String {
        let g = &self.geometry;
        format!(
            "{}, input zero point {}, requantized: {}",
            g.describe(),
            self.in_zero,
            self.requantize.is_some()
        )
    }
}

#[cfg(test)]
mod tests;
