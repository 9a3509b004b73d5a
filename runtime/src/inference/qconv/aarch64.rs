//! The aarch64 kernels. `sdot` and friends are still unstable as intrinsics in Rust, so the dot
//! products are single `asm!` instructions inside functions compiled for the extension; the
//! rest is NEON intrinsics (baseline on aarch64).

use super::*;
use std::arch::aarch64::*;
use std::arch::asm;

/// Pixels per NEON vector of the quantized image (one pixel's 4 channels per 32-bit lane).
const QUAD: usize = 4;
/// Quads per register block: 3 quads × 8 output channels = 24 accumulators, plus 3 vectors
/// of pixels and 2 of weights: 29 of the 32 vector registers.
const BLOCK_Q: usize = 3;

/// Quantizes 4 floats to `q − zero` in i32 lanes (`q` the u8 value): the same f32 operations as
/// [`quantize_one`] without its final integer addition of the zero point, which the caller adds to
/// the packed bytes. `fmaxnm`/`fminnm` return the number when the other operand is NaN, as
/// `f32::max`/`min` do; `fcvtns` rounds to nearest, ties to even, as `round_ties_even`.
#[inline]
#[target_feature(enable = "neon")]
fn quantize4(v: float32x4_t, inv: float32x4_t, lo: float32x4_t, hi: float32x4_t) -> uint32x4_t {
    let v = vminnmq_f32(vmaxnmq_f32(vmulq_f32(v, inv), lo), hi);
    vreinterpretq_u32_s32(vcvtnq_s32_f32(v))
}

/// How [`quantize`] lays the image out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Layout {
    /// One plane per channel group, every byte stored as `q − 128` (`q ^ 0x80`): the signed
    /// operand `sdot` (and the NEON kernel) multiplies.
    Signed,
    /// The planes of channel groups 2k and 2k + 1 interleaved: pixel i's two words side by side,
    /// its 8 channels in 8 bytes, so that two pixels are one 16-byte load, the operand `usmmla`
    /// multiplies. Bytes are `q`; the planes are even in number, the last one of an odd count
    /// holding the zero point.
    Pairs,
}

/// The constants [`quantize`] applies to every value.
struct Quantizer {
    inv: float32x4_t,
    lo: float32x4_t,
    hi: float32x4_t,
    /// What each byte of `q − zero` gets added: the zero point (plus 128 for [`Layout::Signed`]).
    add: uint8x16_t,
    /// The byte order that turns 4 channels' runs of 4 pixels into 4 pixels of 4 channels
    /// ([`Quantizer::whole`] with a zero point of 0).
    pixels: uint8x16_t,
}

/// Byte `i` of the packed 4 pixels: channel `i % 4` of pixel `i / 4`, from 4 channels' runs of
/// 4 pixels (channel `c`'s pixel `p` at `4c + p`).
const PIXEL_MAJOR: [u8; 16] = [0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15];

impl Quantizer {
    /// Packs 4 pixels' `q − zero` of 4 channels (one per byte, `sli` keeping the lower bytes),
    /// then adds the zero point (and the offset) to every byte at once.
    #[inline]
    #[target_feature(enable = "neon")]
    fn pack(&self, q: [uint32x4_t; 4]) -> uint32x4_t {
        let px = vsliq_n_u32::<24>(vsliq_n_u32::<16>(vsliq_n_u32::<8>(q[0], q[1]), q[2]), q[3]);
        vreinterpretq_u32_u8(vaddq_u8(vreinterpretq_u8_u32(px), self.add))
    }

    /// Pixels `at..at + 4` (`at` = y·W + x) of the 4 channels `c`, all present. With a zero
    /// point of 0 (`ZERO`: every input after a ReLU) the clamp is the conversion's own
    /// saturation: `fcvtnu` rounds to nearest, ties to even, and gives 0 below 0 and for NaN, and
    /// the two narrowing steps (`uqxtn`) give 255 above it, so `q = clamp(round(v · inv), 0,
    /// 255)`, the bytes of the clamp then the rounding; `tbl` puts them in pixel order. 20
    /// instructions per 16 values where the clamp, conversion and `sli` packing take 24.
    ///
    /// # Safety
    /// Each `c[i] · hw + at + 4` is at most the length of the image `src` points to.
    #[inline]
    #[target_feature(enable = "neon")]
    unsafe fn whole<const ZERO: bool>(
        &self,
        src: *const f32,
        c: [usize; 4],
        hw: usize,
        at: usize,
    ) -> uint32x4_t {
        // SAFETY: as the caller's.
        let v: [float32x4_t; 4] =
            std::array::from_fn(|i| unsafe { vld1q_f32(src.add(c[i] * hw + at)) });
        if !ZERO {
            return self.pack(v.map(|v| quantize4(v, self.inv, self.lo, self.hi)));
        }
        let q = v.map(|v| vcvtnq_u32_f32(vmulq_f32(v, self.inv)));
        let low = vqmovn_high_u32(vqmovn_u32(q[0]), q[1]);
        let high = vqmovn_high_u32(vqmovn_u32(q[2]), q[3]);
        let runs = vqmovn_high_u16(vqmovn_u16(low), high);
        let px = vqtbl1q_u8(runs, self.pixels);
        vreinterpretq_u32_u8(vaddq_u8(px, self.add))
    }

    /// The same where some channels are missing (the last group of a ragged count): a missing
    /// channel is the zero point, 0 before the addition.
    ///
    /// # Safety
    /// As [`Quantizer::whole`]'s, for the channels present.
    #[inline]
    #[target_feature(enable = "neon")]
    unsafe fn ragged(
        &self,
        src: *const f32,
        c: [Option<usize>; 4],
        hw: usize,
        at: usize,
    ) -> uint32x4_t {
        self.pack(c.map(|c| match c {
            // SAFETY: as the caller's.
            Some(c) => quantize4(
                unsafe { vld1q_f32(src.add(c * hw + at)) },
                self.inv,
                self.lo,
                self.hi,
            ),
            None => vdupq_n_u32(0),
        }))
    }
}

/// The NEON twin of [`quantize_portable`], in the `layout` its kernel reads.
///
/// # Safety
/// `input` holds the C×H×W image and `image` is `groups × plane` pixels (the groups rounded up
/// to even for [`Layout::Pairs`]).
#[target_feature(enable = "neon")]
pub(super) unsafe fn quantize(op: &QConv, input: &[f32], image: &mut [u32], layout: Layout) {
    let signed = layout == Layout::Signed;
    let zero = f32::from(op.in_zero);
    let k = Quantizer {
        inv: vdupq_n_f32(op.in_inv_scale),
        lo: vdupq_n_f32(-zero),
        hi: vdupq_n_f32(255.0 - zero),
        add: vdupq_n_u8(op.in_zero.wrapping_add(if signed { 0x80 } else { 0 })),
        // SAFETY: 16 bytes.
        pixels: unsafe { vld1q_u8(PIXEL_MAJOR.as_ptr()) },
    };
    match (layout, op.in_zero == 0) {
        (Layout::Signed, false) => quantize_units::<1, false>(op, input, image, &k, 0x8080_8080),
        (Layout::Signed, true) => quantize_units::<1, true>(op, input, image, &k, 0x8080_8080),
        (Layout::Pairs, false) => quantize_units::<2, false>(op, input, image, &k, 0),
        (Layout::Pairs, true) => quantize_units::<2, true>(op, input, image, &k, 0),
    }
}

/// [`quantize`] in units of `PER` channel groups whose planes are stored interleaved (one
/// group: plain planes), every word `^ flip`, the units shared over the pool like the output's
/// blocks; `ZERO` where the zero point is 0 ([`Quantizer::whole`]).
fn quantize_units<const PER: usize, const ZERO: bool>(
    op: &QConv,
    input: &[f32],
    image: &mut [u32],
    k: &Quantizer,
    flip: u32,
) {
    let g = &op.geometry;
    let plane = g.plane();
    let units = g.groups().div_ceil(PER);
    assert!(input.len() >= g.channels * g.height * g.width && image.len() >= units * PER * plane);
    in_chunks(
        &mut image[..units * PER * plane],
        PER * plane,
        |unit, dst| {
            // SAFETY: NEON is baseline on aarch64.
            unsafe { quantize_unit::<PER, ZERO>(op, input, unit, dst, k, flip) }
        },
    );
}

/// [`quantize_units`] for unit `unit`, whose `PER` planes are `dst`.
#[inline]
#[target_feature(enable = "neon")]
fn quantize_unit<const PER: usize, const ZERO: bool>(
    op: &QConv,
    input: &[f32],
    unit: usize,
    dst: &mut [u32],
    k: &Quantizer,
    flip: u32,
) {
    let g = &op.geometry;
    let (_, wp) = g.padded();
    let hw = g.height * g.width;
    assert!(input.len() >= g.channels * hw && dst.len() == PER * g.plane());
    dst.fill((u32::from(op.in_zero) * 0x0101_0101) ^ flip);
    let src = input.as_ptr();
    // Group (unit·PER + j)'s i-th channel is `channels[j][i]`, if it exists.
    let channels: [[Option<usize>; 4]; PER] = std::array::from_fn(|j| {
        std::array::from_fn(|i| Some((unit * PER + j) * 4 + i).filter(|&c| c < g.channels))
    });
    // All channels present (every unit but the last of a ragged count): a loop with no test
    // per channel inside (testing each channel on every iteration took 43 instructions per
    // 16 values against 27, `profile.py --blocks`).
    let whole = channels
        .iter()
        .flatten()
        .all(Option::is_some)
        .then(|| channels.map(|c| c.map(|c| c.unwrap_or(0))));
    let (runs, len) = g.runs();
    for y in 0..runs {
        let row = (y + g.pad[0]) * wp + g.pad[1];
        let mut x = 0;
        // In both loops, the loads read pixels x..x+4 of run y of channels below
        // `g.channels`, which `input` holds (the assertion above), and the stores write
        // pixels row+x..row+x+4 of the unit's `PER` planes, which `dst` holds.
        if let Some(c) = whole {
            while x + QUAD <= len {
                let at = y * len + x;
                // SAFETY: the loads, as above.
                let px = std::array::from_fn(|j| unsafe { k.whole::<ZERO>(src, c[j], hw, at) });
                // SAFETY: the store, as above.
                unsafe { store::<PER>(dst.as_mut_ptr().add(PER * (row + x)), px) };
                x += QUAD;
            }
        }
        while x + QUAD <= len {
            let at = y * len + x;
            // SAFETY: the loads, as above.
            let px = std::array::from_fn(|j| unsafe { k.ragged(src, channels[j], hw, at) });
            // SAFETY: the store, as above.
            unsafe { store::<PER>(dst.as_mut_ptr().add(PER * (row + x)), px) };
            x += QUAD;
        }
        for x in x..len {
            for (j, channels) in channels.iter().enumerate() {
                let mut px = 0u32;
                for (i, c) in channels.iter().enumerate() {
                    let q = match c {
                        Some(c) => {
                            quantize_one(input[c * hw + y * len + x], op.in_inv_scale, op.in_zero)
                        }
                        None => u32::from(op.in_zero),
                    };
                    px |= q << (8 * i);
                }
                dst[PER * (row + x) + j] = px ^ flip;
            }
        }
    }
}

/// Stores 4 pixels of `PER` planes, interleaved: `to[PER·i + j]` = lane i of `px[j]`.
///
/// # Safety
/// `to` is valid for `4 · PER` words.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn store<const PER: usize>(to: *mut u32, px: [uint32x4_t; PER]) {
    // SAFETY: as the caller's.
    unsafe {
        match PER {
            1 => vst1q_u32(to, px[0]),
            _ => vst2q_u32(to, uint32x4x2_t(px[0], px[PER - 1])),
        }
    }
}

/// One indexed dot product: `acc.4s += x.16b · w.4b[lane]`.
macro_rules! dot {
    ($ins:literal, $acc:expr, $x:expr, $w:expr, $lane:literal) => {
        // SAFETY: register-only arithmetic; the caller's target features include the
        // instruction's extension.
        unsafe {
            asm!(
                concat!($ins, " {a:v}.4s, {x:v}.16b, {w:v}.4b[", $lane, "]"),
                a = inout(vreg) $acc,
                x = in(vreg) $x,
                w = in(vreg) $w,
                options(pure, nomem, nostack, preserves_flags)
            )
        }
    };
}

/// The `sdot` twin of [`convolve_portable`] for output channels `block·8 .. block·8 + 8`,
/// written to `out` (those channels of the output).
///
/// # Safety
/// The CPU must have dotprod; `image` was filled by [`quantize`] with `offset`.
#[target_feature(enable = "neon,dotprod")]
pub(super) unsafe fn convolve_block_dotprod(
    op: &QConv,
    image: &[u32],
    block: usize,
    out: &mut [f32],
) {
    let g = &op.geometry;
    // Up to the last quad that holds an output pixel: the rest of the last vector of 16 would
    // only be discarded (its lanes are not stored), e.g. 3 of 4 quads of it at 7×7 pixels.
    let quads = g.flat().div_ceil(QUAD);
    let chunk = op.offsets.len() * g.groups() * BLOCK_O * 4;
    let weights = &op.packed[block * chunk..(block + 1) * chunk];
    let mut q = 0;
    while q < quads {
        let n = (quads - q).min(BLOCK_Q);
        // SAFETY: quads q..q+n and their furthest taps lie inside each plane
        // (`Geometry::plane` covers every vector's reach), the weights chunk is whole, and
        // `store` writes only the valid lanes of the channels `out` holds.
        unsafe {
            match n {
                3 => tile_dotprod::<3>(op, image, weights, block, q, out),
                2 => tile_dotprod::<2>(op, image, weights, block, q, out),
                _ => tile_dotprod::<1>(op, image, weights, block, q, out),
            }
        }
        q += n;
    }
}

/// One register block: `P` quads of 4 pixels × 8 output channels, summed over every tap and
/// channel group, then finished and stored.
// Indexing the accumulators by (quad, channel) reads as the block it is.
#[allow(clippy::needless_range_loop)]
#[inline]
#[target_feature(enable = "neon,dotprod")]
unsafe fn tile_dotprod<const P: usize>(
    op: &QConv,
    image: &[u32],
    weights: &[i8],
    block: usize,
    first: usize,
    out: &mut [f32],
) {
    let g = &op.geometry;
    let plane = g.plane();
    let groups = g.groups();
    // Accumulators for up to BLOCK_Q quads, the unused ones never touched. They are indexed
    // with constants only (the `quad!` copies below), so they stay in registers; the
    // epilogue reads a copy. Each starts at its channel's zero-point term, negated
    // (`dot_zero`), so the epilogue takes nothing off.
    let zero = &op.dot_zero[block * BLOCK_O..(block + 1) * BLOCK_O];
    // SAFETY: 8 i32s, the length of the slice.
    let zero = unsafe { vld1q_s32_x2(zero.as_ptr()) };
    let start = [
        vdupq_laneq_s32::<0>(zero.0),
        vdupq_laneq_s32::<1>(zero.0),
        vdupq_laneq_s32::<2>(zero.0),
        vdupq_laneq_s32::<3>(zero.0),
        vdupq_laneq_s32::<0>(zero.1),
        vdupq_laneq_s32::<1>(zero.1),
        vdupq_laneq_s32::<2>(zero.1),
        vdupq_laneq_s32::<3>(zero.1),
    ];
    let mut acc = [start; BLOCK_Q];
    let base = image.as_ptr();
    let mut w = weights.as_ptr();
    // Written out per quad: a loop around `asm!` is not unrolled, and its accumulators would go
    // through the stack.
    macro_rules! quad {
        ($p:literal, $x:expr, $w0:ident, $w1:ident) => {
            if P > $p {
                let x = $x;
                dot!("sdot", acc[$p][0], x, $w0, 0);
                dot!("sdot", acc[$p][1], x, $w0, 1);
                dot!("sdot", acc[$p][2], x, $w0, 2);
                dot!("sdot", acc[$p][3], x, $w0, 3);
                dot!("sdot", acc[$p][4], x, $w1, 0);
                dot!("sdot", acc[$p][5], x, $w1, 1);
                dot!("sdot", acc[$p][6], x, $w1, 2);
                dot!("sdot", acc[$p][7], x, $w1, 3);
            }
        };
    }
    for &off in &op.offsets {
        // One channel group of this tap: its quads by its 8 channels' weights.
        macro_rules! group {
            ($group:expr) => {
                // SAFETY: see `convolve_block_dotprod`; the pointer is formed for each group, so
                // it never leaves the image.
                let src = unsafe { base.add(first * QUAD + off + $group * plane) }.cast::<i8>();
                // SAFETY: the packed weights hold 32 bytes (8 output channels x 4) for each tap
                // and group, from `w` on; one two-register load.
                let weights = unsafe { vld1q_s8_x2(w) };
                let (w0, w1) = (weights.0, weights.1);
                // The block's `P` quads (16 bytes each, contiguous, inside the image): one
                // multi-register load, which counts as one instruction where three single
                // loads counted three.
                // SAFETY: as said.
                let x = unsafe {
                    match P {
                        1 => [vld1q_s8(src), vdupq_n_s8(0), vdupq_n_s8(0)],
                        2 => {
                            let x = vld1q_s8_x2(src);
                            [x.0, x.1, vdupq_n_s8(0)]
                        }
                        _ => {
                            let x = vld1q_s8_x3(src);
                            [x.0, x.1, x.2]
                        }
                    }
                };
                quad!(0, x[0], w0, w1);
                quad!(1, x[1], w0, w1);
                quad!(2, x[2], w0, w1);
                // SAFETY: at most one past the block's weights after the last group, which
                // `add` allows.
                w = unsafe { w.add(4 * BLOCK_O) };
            };
        }
        // Two groups per iteration, so the loop's counting and pointer updates are paid once
        // for both.
        let mut group = 0;
        while group + 2 <= groups {
            group!(group);
            group!(group + 1);
            group += 2;
        }
        if group < groups {
            group!(group);
        }
    }
    let sums = acc;
    // SAFETY: as the caller's.
    unsafe { finish_block::<P>(op, None, block, first, out, |p, o| sums[p][o]) };
}

/// One `usmmla`: `acc.4s += [x row 0, x row 1] · [w row 0, w row 1]ᵀ` (u8 × s8, 2×8 by 8×2).
macro_rules! mmla {
    ($acc:expr, $x:expr, $w:expr) => {
        // SAFETY: register-only arithmetic; the caller's target features include i8mm.
        unsafe {
            asm!(
                "usmmla {a:v}.4s, {x:v}.16b, {w:v}.16b",
                a = inout(vreg) $acc,
                x = in(vreg) $x,
                w = in(vreg) $w,
                options(pure, nomem, nostack, preserves_flags)
            )
        }
    };
}

/// Quads per `usmmla` register block: 3 quads × 2 pixel pairs × 4 channel pairs = 24
/// accumulators, 2 pixel vectors and 4 weight vectors. With the planes zipped in the kernel
/// (4 more vectors) it took 2; with the image interleaved beforehand ([`Layout::Pairs`]), 3
/// measured 174.4 → 168.3 M instructions per open_nsfw int8 inference (`instructions.py`,
/// `max,sve=off`).
const BLOCK_Q_MMLA: usize = 3;

/// The `usmmla` twin of [`convolve_portable`] for output channels `block·8 .. block·8 + 8`.
///
/// # Safety
/// The CPU must have i8mm; `image` was filled by [`quantize`] in [`Layout::Pairs`];
/// `op.packed_mmla` is set.
#[target_feature(enable = "neon,i8mm")]
pub(super) unsafe fn convolve_block_mmla(op: &QConv, image: &[u32], block: usize, out: &mut [f32]) {
    let g = &op.geometry;
    // Up to the last quad that holds an output pixel: the rest of the last vector of 16 would
    // only be discarded (its lanes are not stored), e.g. 3 of 4 quads of it at 7×7 pixels.
    let quads = g.flat().div_ceil(QUAD);
    let packed = op.packed_mmla.as_deref().expect("usmmla weights");
    let chunk = op.offsets.len() * g.groups().div_ceil(2) * BLOCK_O * 8;
    let weights = &packed[block * chunk..(block + 1) * chunk];
    assert!(image.len() >= g.groups().next_multiple_of(2) * g.plane());
    let mut q = 0;
    while q < quads {
        let n = (quads - q).min(BLOCK_Q_MMLA);
        // SAFETY: as in `convolve_block_dotprod`, over the even number of planes.
        unsafe {
            match n {
                3 => tile_mmla::<3>(op, image, weights, block, q, out),
                2 => tile_mmla::<2>(op, image, weights, block, q, out),
                _ => tile_mmla::<1>(op, image, weights, block, q, out),
            }
        }
        q += n;
    }
}

/// One register block: `P` quads × 8 output channels. Each `usmmla` multiplies two pixels'
/// 8 channels (a pair of channel groups, interleaved) by two output channels' weights: its 4
/// lanes are (pixel 0, channel 0), (0, 1), (1, 0), (1, 1).
#[allow(clippy::needless_range_loop)]
#[inline]
#[target_feature(enable = "neon,i8mm")]
unsafe fn tile_mmla<const P: usize>(
    op: &QConv,
    image: &[u32],
    weights: &[i8],
    block: usize,
    first: usize,
    out: &mut [f32],
) {
    let g = &op.geometry;
    let plane = g.plane();
    let pairs = g.groups().div_ceil(2);
    // [quad][pixel pair][output channel pair], indexed with constants only (see
    // `tile_dotprod`). Each starts at its channels' zero-point terms, negated (`mmla_zero`), so
    // the epilogue takes nothing off: 24 subtractions and 8 broadcasts fewer per tile.
    let zero = &op.mmla_zero[block * BLOCK_O * 2..(block + 1) * BLOCK_O * 2];
    // SAFETY: 16 i32s, the length of the slice.
    let zero = unsafe { vld1q_s32_x4(zero.as_ptr()) };
    let mut acc = [[[zero.0, zero.1, zero.2, zero.3]; 2]; BLOCK_Q_MMLA];
    let base = image.as_ptr();
    let mut w = weights.as_ptr();
    macro_rules! quad {
        ($p:literal, $a:ident, $w0:ident, $w1:ident, $w2:ident, $w3:ident) => {
            if P > $p {
                // SAFETY: quad `$p`'s 4 pixels (8 words) lie inside the pair's interleaved
                // planes; one two-register load.
                let x = unsafe { vld1q_u32_x2($a.add(2 * $p * QUAD)) };
                let (low, high) = (vreinterpretq_u8_u32(x.0), vreinterpretq_u8_u32(x.1));
                mmla!(acc[$p][0][0], low, $w0);
                mmla!(acc[$p][0][1], low, $w1);
                mmla!(acc[$p][0][2], low, $w2);
                mmla!(acc[$p][0][3], low, $w3);
                mmla!(acc[$p][1][0], high, $w0);
                mmla!(acc[$p][1][1], high, $w1);
                mmla!(acc[$p][1][2], high, $w2);
                mmla!(acc[$p][1][3], high, $w3);
            }
        };
    }
    for &off in &op.offsets {
        // One pair of channel groups of this tap: its quads by its 8 channels' weights.
        macro_rules! pair {
            ($pair:expr) => {
                // SAFETY: the pair's interleaved planes (2 · plane words) lie inside the image
                // (an even number of planes), each quad's reach inside them.
                let a = unsafe { base.add(2 * ($pair * plane + first * QUAD + off)) };
                // SAFETY: the packed weights hold 64 bytes (8 output channels x 8) for each tap
                // and pair, from `w` on; one four-register load, which counts as one
                // instruction where four single loads counted four.
                let weights = unsafe { vld1q_s8_x4(w) };
                let (w0, w1, w2, w3) = (weights.0, weights.1, weights.2, weights.3);
                quad!(0, a, w0, w1, w2, w3);
                quad!(1, a, w0, w1, w2, w3);
                quad!(2, a, w0, w1, w2, w3);
                // SAFETY: at most one past the block's weights after the last pair, which `add`
                // allows.
                w = unsafe { w.add(8 * BLOCK_O) };
            };
        }
        // One pair per iteration: unrolling two, as `tile_dotprod` does, cost 0.8 M more
        // instructions per open_nsfw int8 inference here (`profile.py`, `max,sve=off`).
        for pair in 0..pairs {
            pair!(pair);
        }
    }
    let sums = acc;
    // Lanes (pixel 0, channel 0), (0, 1), (1, 0), (1, 1): the even lanes of two pixel pairs
    // are an even channel's 4 pixels, the odd lanes the odd channel's.
    // SAFETY: as the caller's.
    unsafe {
        finish_block::<P>(op, None, block, first, out, |p, o| {
            let (pixels01, pixels23) = (sums[p][0][o / 2], sums[p][1][o / 2]);
            if o % 2 == 0 {
                vuzp1q_s32(pixels01, pixels23)
            } else {
                vuzp2q_s32(pixels01, pixels23)
            }
        })
    };
}

/// The shared epilogue of a register block: for each output channel `o` of the block and
/// quad `p`, the sums `sum_of(p, o)` less the channel's zero-point term (from `zero_sums`, or
/// none where the sums started from it), finished and stored.
/// Where each quad's lanes go is worked out once for the block's 8 channels, and each channel's
/// constants once for its quads.
///
/// The channels are written out one by one (`channel!`), so `sum_of` is called with constant
/// indices and the accumulators stay in registers: with a loop over the channels they went
/// through the stack, and the `usmmla` kernel chose each channel's lanes with a run-time mask,
/// the epilogue costing as many instructions as the multiply-adds (`profile.py --blocks`).
#[inline]
#[target_feature(enable = "neon")]
unsafe fn finish_block<const P: usize>(
    op: &QConv,
    zero_sums: Option<&[i32]>,
    block: usize,
    first: usize,
    out: &mut [f32],
    sum_of: impl Fn(usize, usize) -> int32x4_t,
) {
    let g = &op.geometry;
    let len = g.output_len();
    let stores: [Store; P] = std::array::from_fn(|p| Store::of(op, first + p));
    let channels = (g.out_channels - block * BLOCK_O).min(BLOCK_O);
    assert!(out.len() >= channels * len);
    let requantize = op.requantize;
    // `channel!` below is written out for 8 channels.
    const _: () = assert!(BLOCK_O == 8);
    macro_rules! channel {
        ($o:literal) => {
            if $o < channels {
                let oc = block * BLOCK_O + $o;
                let zero = zero_sums.map(|z| vdupq_n_s32(z[oc]));
                let (scale, bias) = (op.scales[oc], op.bias[oc]);
                let out = &mut out[$o * len..($o + 1) * len];
                for (p, store) in stores.iter().enumerate() {
                    let sum = match zero {
                        Some(zero) => vsubq_s32(sum_of(p, $o), zero),
                        None => sum_of(p, $o),
                    };
                    let v = finish4(sum, scale, bias, requantize);
                    store.put(v, out);
                }
            }
        };
    }
    channel!(0);
    channel!(1);
    channel!(2);
    channel!(3);
    channel!(4);
    channel!(5);
    channel!(6);
    channel!(7);
}

/// Where a quad's valid lanes go in each channel's output: its lane mask (4 bits) and the index
/// of the first.
#[derive(Clone, Copy)]
struct Store {
    lanes: u32,
    at: usize,
}

impl Store {
    /// Quad `quad`'s place, from the operator's store plan (per vector of 16 pixels).
    #[inline]
    fn of(op: &QConv, quad: usize) -> Store {
        let (mask, at) = op.plan[quad / (LANES / QUAD)];
        let shift = QUAD * (quad % (LANES / QUAD));
        let lanes = u32::from(mask >> shift) & 0xF;
        let at = at + (mask & ((1u16 << shift) - 1)).count_ones() as usize;
        Store { lanes, at }
    }

    /// Stores the valid lanes of `v` into one channel's output (bounds checked).
    #[inline]
    #[target_feature(enable = "neon")]
    fn put(self, v: float32x4_t, out: &mut [f32]) {
        if self.lanes == 0xF {
            assert!(self.at + QUAD <= out.len());
            // SAFETY: checked just above.
            unsafe { vst1q_f32(out.as_mut_ptr().add(self.at), v) };
        } else if self.lanes != 0 {
            let mut values = [0f32; QUAD];
            // SAFETY: 4 floats into a 4-float array.
            unsafe { vst1q_f32(values.as_mut_ptr(), v) };
            let mut k = self.at;
            for (l, value) in values.iter().enumerate() {
                if self.lanes & (1 << l) != 0 {
                    out[k] = *value;
                    k += 1;
                }
            }
        }
    }
}

/// [`finish`] on 4 sums (their zero-point term already taken off): the same f32 operations
/// in the same order. `fmaxnm`/`fminnm` treat NaN as `f32::max`/`min` do; `frintn` rounds
/// to nearest, ties to even.
#[inline]
#[target_feature(enable = "neon")]
pub(super) fn finish4(
    sum: int32x4_t,
    scale: f32,
    bias: f32,
    requantize: Option<Requantize>,
) -> float32x4_t {
    let v = vaddq_f32(
        vmulq_f32(vcvtq_f32_s32(sum), vdupq_n_f32(scale)),
        vdupq_n_f32(bias),
    );
    match requantize {
        None => v,
        Some(r) => {
            let z = f32::from(r.zero_point);
            let clamped = vminnmq_f32(
                vmaxnmq_f32(vmulq_f32(v, vdupq_n_f32(r.inv_scale)), vdupq_n_f32(-z)),
                vdupq_n_f32(255.0 - z),
            );
            vmulq_f32(vrndnq_f32(clamped), vdupq_n_f32(r.scale))
        }
    }
}

/// The NEON twin of [`convolve_portable`] for output channels `block·8 .. block·8 + 8`, for cores
/// without dotprod: each quad of 4 pixels at a time (see [`tile_neon`]).
///
/// # Safety
/// `image` was filled by [`quantize`] with `offset`; `op.neon_safe` holds.
#[target_feature(enable = "neon")]
pub(super) unsafe fn convolve_block_neon(op: &QConv, image: &[u32], block: usize, out: &mut [f32]) {
    let g = &op.geometry;
    assert!(op.neon_safe);
    assert!(image.len() >= g.groups() * g.plane());
    let quads = g.flat().div_ceil(QUAD);
    let chunk = op.offsets.len() * g.groups() * BLOCK_O * 4;
    let weights = &op.packed[block * chunk..(block + 1) * chunk];
    for q in 0..quads {
        // SAFETY: as in `convolve_block_dotprod`.
        unsafe { tile_neon(op, image, weights, block, q, out) };
    }
}

/// One register block of the NEON kernel: 4 pixels × 8 output channels. Each pixel's 4 bytes of
/// a channel group are repeated across a vector (`dup`), and `smull` multiplies them by 2
/// output channels' 4 weights at once (8 products of 16 bits); `smlal` adds the next group's
/// products at the same places (two products per 16-bit lane: exact, `neon_safe`), and `sadalp`
/// adds neighbouring lanes into 32 bits: 16 multiply-adds per 3 instructions. So each pixel has
/// 4 accumulators of 2 output channels × 2 partial sums, 16 in all, added in pairs (`addp`) and
/// transposed to 8 channels × 4 pixels once at the end.
///
/// Repeating the weights instead (4 times their bytes, loaded rather than `dup`ed) measured 1.5 %
/// fewer instructions for open_nsfw int8 at `cortex-a72` (404.2 against 410.4 M per inference):
/// not worth 4 times the weights' memory.
#[allow(clippy::needless_range_loop)]
#[inline]
#[target_feature(enable = "neon")]
unsafe fn tile_neon(
    op: &QConv,
    image: &[u32],
    weights: &[i8],
    block: usize,
    first: usize,
    out: &mut [f32],
) {
    let g = &op.geometry;
    let plane = g.plane();
    let groups = g.groups();
    // [pixel][output channels 0-1, 2-3, 4-5, 6-7], indexed with constants only (see
    // `tile_dotprod`).
    let mut acc = [[vdupq_n_s32(0); 4]; QUAD];
    let base = image.as_ptr();
    let mut w = weights.as_ptr();
    // Pixel `$p` of the quad: `$xa` holds the quad's bytes of the first group, `$xb` of the
    // second (absent for a lone last group), `$wa` and `$wb` their weights (output channels
    // 0-3 and 4-7).
    macro_rules! pixel {
        ($p:literal, $xa:ident, $xb:ident, $wa:ident, $wb:ident) => {
            let a = vreinterpretq_s8_u32(vdupq_laneq_u32::<$p>($xa));
            let b = vreinterpretq_s8_u32(vdupq_laneq_u32::<$p>($xb));
            for k in 0..2 {
                let lo = vmlal_s8(
                    vmull_s8(vget_low_s8(a), vget_low_s8($wa[k])),
                    vget_low_s8(b),
                    vget_low_s8($wb[k]),
                );
                acc[$p][2 * k] = vpadalq_s16(acc[$p][2 * k], lo);
                let hi = vmlal_high_s8(vmull_high_s8(a, $wa[k]), b, $wb[k]);
                acc[$p][2 * k + 1] = vpadalq_s16(acc[$p][2 * k + 1], hi);
            }
        };
        ($p:literal, $xa:ident, $wa:ident) => {
            let a = vreinterpretq_s8_u32(vdupq_laneq_u32::<$p>($xa));
            for k in 0..2 {
                let lo = vmull_s8(vget_low_s8(a), vget_low_s8($wa[k]));
                acc[$p][2 * k] = vpadalq_s16(acc[$p][2 * k], lo);
                let hi = vmull_high_s8(a, $wa[k]);
                acc[$p][2 * k + 1] = vpadalq_s16(acc[$p][2 * k + 1], hi);
            }
        };
    }
    for &off in &op.offsets {
        // SAFETY: see `convolve_block_dotprod`; formed per group, so never past the image.
        let src = |group: usize| unsafe { base.add(first * QUAD + off + group * plane) };
        let mut group = 0;
        while group + 2 <= groups {
            // SAFETY: quad `first` of both planes lies inside the image, and the packed
            // weights hold 64 bytes (two groups × 8 output channels × 4) from `w` on.
            let (xa, xb, wa, wb) = unsafe {
                let w4 = vld1q_s8_x4(w);
                (
                    vld1q_u32(src(group)),
                    vld1q_u32(src(group + 1)),
                    [w4.0, w4.1],
                    [w4.2, w4.3],
                )
            };
            pixel!(0, xa, xb, wa, wb);
            pixel!(1, xa, xb, wa, wb);
            pixel!(2, xa, xb, wa, wb);
            pixel!(3, xa, xb, wa, wb);
            // SAFETY: at most one past the block's weights, which `add` allows.
            w = unsafe { w.add(8 * BLOCK_O) };
            group += 2;
        }
        if group < groups {
            // SAFETY: as above, for one group's 32 bytes.
            let (xa, wa) = unsafe { (vld1q_u32(src(group)), [vld1q_s8(w), vld1q_s8(w.add(16))]) };
            pixel!(0, xa, wa);
            pixel!(1, xa, wa);
            pixel!(2, xa, wa);
            pixel!(3, xa, wa);
            // SAFETY: as above.
            w = unsafe { w.add(4 * BLOCK_O) };
        }
    }
    // Each pixel's channels 0-3 and 4-7: lanes (o, partial), (o, partial), (o + 1, …),
    // (o + 1, …) added in pairs.
    let lo: [int32x4_t; QUAD] = std::array::from_fn(|p| vpaddq_s32(acc[p][0], acc[p][1]));
    let hi: [int32x4_t; QUAD] = std::array::from_fn(|p| vpaddq_s32(acc[p][2], acc[p][3]));
    let (lo, hi) = (transpose(lo), transpose(hi));
    // SAFETY: as the caller's.
    unsafe {
        finish_block::<1>(op, Some(&op.signed_zero_sums), block, first, out, |_, o| {
            if o < 4 {
                lo[o]
            } else {
                hi[o - 4]
            }
        })
    };
}

/// A 4×4 transpose of 32-bit lanes: rows of pixels' channels to rows of channels' pixels.
#[inline]
#[target_feature(enable = "neon")]
fn transpose(rows: [int32x4_t; 4]) -> [int32x4_t; 4] {
    let t0 = vreinterpretq_s64_s32(vtrn1q_s32(rows[0], rows[1]));
    let t1 = vreinterpretq_s64_s32(vtrn2q_s32(rows[0], rows[1]));
    let t2 = vreinterpretq_s64_s32(vtrn1q_s32(rows[2], rows[3]));
    let t3 = vreinterpretq_s64_s32(vtrn2q_s32(rows[2], rows[3]));
    [
        vreinterpretq_s32_s64(vtrn1q_s64(t0, t2)),
        vreinterpretq_s32_s64(vtrn1q_s64(t1, t3)),
        vreinterpretq_s32_s64(vtrn2q_s64(t0, t2)),
        vreinterpretq_s32_s64(vtrn2q_s64(t1, t3)),
    ]
}
