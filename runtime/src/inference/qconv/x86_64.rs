//! The x86-64 kernels of [`QConv`]: AVX-512 F and BW quantize the input and finish the sums,
//! VNNI (`vpdpbusd`) computes them. The depthwise kernel reuses the 16-lane quantizer and epilogue.

use super::*;
use std::arch::x86_64::*;

/// Quantizes 16 floats (`mask` of them loaded; the others quantize as 0.0, i.e. to the zero
/// point) to u8 values in i32 lanes.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn quantize16(
    src: *const f32,
    mask: __mmask16,
    inv: __m512,
    lo: __m512,
    hi: __m512,
    z: __m512i,
) -> __m512i {
    // SAFETY: the caller guarantees `mask` covers only readable floats.
    let v = unsafe { _mm512_maskz_loadu_ps(mask, src) };
    let v = _mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(v, inv), lo), hi);
    // MXCSR's default rounding: nearest, ties to even, as `round_ties_even`.
    _mm512_add_epi32(_mm512_cvtps_epi32(v), z)
}

/// The output's quantize/dequantize pair as vectors: `1/scale`, the clamp bounds, `scale`.
#[derive(Clone, Copy)]
pub(super) struct Requant(Option<(__m512, __m512, __m512, __m512)>);

impl Requant {
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(super) fn new(r: Option<Requantize>) -> Requant {
        Requant(r.map(|r| {
            let z = f32::from(r.zero_point);
            (
                _mm512_set1_ps(r.inv_scale),
                _mm512_set1_ps(-z),
                _mm512_set1_ps(255.0 - z),
                _mm512_set1_ps(r.scale),
            )
        }))
    }
}

/// [`finish`] on 16 sums (their zero-point term already taken off): the same f32
/// operations in the same order.
#[inline]
#[target_feature(enable = "avx512f")]
pub(super) fn finish16(sum: __m512i, scale: f32, bias: f32, requant: Requant) -> __m512 {
    let v = _mm512_add_ps(
        _mm512_mul_ps(_mm512_cvtepi32_ps(sum), _mm512_set1_ps(scale)),
        _mm512_set1_ps(bias),
    );
    match requant.0 {
        None => v,
        Some((inv, lo, hi, s)) => {
            let r = _mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(v, inv), lo), hi);
            // MXCSR-independent: nearest, ties to even, as `round_ties_even`.
            let r = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(r);
            _mm512_mul_ps(r, s)
        }
    }
}

/// The SIMD twin of [`quantize_portable`].
///
/// # Safety
/// The CPU must have AVX-512F/BW/VNNI; `input` holds the C×H×W image and `image` is
/// `groups × plane` pixels.
pub(super) unsafe fn quantize(op: &QConv, input: &[f32], image: &mut [u32]) {
    let g = &op.geometry;
    let plane = g.plane();
    assert!(input.len() >= g.channels * g.height * g.width && image.len() >= g.groups() * plane);
    // One channel group's plane at a time, shared over the pool like the output's blocks.
    in_chunks(&mut image[..g.groups() * plane], plane, |group, dst| {
        // SAFETY: as the caller's; `dst` is group `group`'s plane.
        unsafe { quantize_group(op, input, group, dst) }
    });
}

/// [`quantize`] for channel group `group`, whose plane is `dst`.
///
/// # Safety
/// As [`quantize`]'s.
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn quantize_group(op: &QConv, input: &[f32], group: usize, dst: &mut [u32]) {
    let g = &op.geometry;
    let (_, wp) = g.padded();
    let plane = g.plane();
    let hw = g.height * g.width;
    debug_assert!(dst.len() == plane);
    let fill = u32::from(op.in_zero) * 0x0101_0101;
    let z = f32::from(op.in_zero);
    let inv = _mm512_set1_ps(op.in_inv_scale);
    let lo = _mm512_set1_ps(-z);
    let hi = _mm512_set1_ps(255.0 - z);
    let zi = _mm512_set1_epi32(i32::from(op.in_zero));
    {
        // The padding and the slack: the zero point.
        let top = g.pad[0] * wp;
        dst[..top + g.pad[1]].fill(fill);
        for y in 0..g.height {
            let row = (y + g.pad[0]) * wp + g.pad[1];
            let next = if y + 1 < g.height { row + wp } else { plane };
            dst[row + g.width..next].fill(fill);
        }
        let channels: [Option<usize>; 4] =
            std::array::from_fn(|i| Some(group * 4 + i).filter(|&c| c < g.channels));
        let (runs, len) = g.runs();
        for y in 0..runs {
            let row = (y + g.pad[0]) * wp + g.pad[1];
            let mut x = 0;
            while x < len {
                let n = (len - x).min(LANES);
                let mask: __mmask16 = if n == LANES { 0xFFFF } else { (1 << n) - 1 };
                let mut px = _mm512_setzero_si512();
                for (i, c) in channels.iter().enumerate() {
                    let q = match c {
                        // SAFETY: run y, pixels x..x+n of channel c are inside `input`.
                        Some(c) => unsafe {
                            quantize16(
                                input.as_ptr().add(c * hw + y * len + x),
                                mask,
                                inv,
                                lo,
                                hi,
                                zi,
                            )
                        },
                        None => zi,
                    };
                    px = _mm512_or_si512(px, _mm512_sllv_epi32(q, _mm512_set1_epi32(8 * i as i32)));
                }
                // SAFETY: pixels row+x..row+x+n are inside this group's plane.
                unsafe { _mm512_mask_storeu_epi32(dst.as_mut_ptr().add(row + x).cast(), mask, px) };
                x += n;
            }
        }
    }
}

/// The SIMD twin of [`convolve_portable`] for output channels `block·8 .. block·8 + 8`,
/// written to `out` (those channels of the output).
///
/// # Safety
/// As [`quantize`]; `image` was filled by it.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub(super) unsafe fn convolve_block(op: &QConv, image: &[u32], block: usize, out: &mut [f32]) {
    let g = &op.geometry;
    let (offsets, plan) = (&op.offsets[..], &op.plan[..]);
    let vectors = g.vectors();
    let chunk = offsets.len() * g.groups() * BLOCK_O * 4;
    let weights = &op.packed[block * chunk..(block + 1) * chunk];
    let mut v = 0;
    while v < vectors {
        let n = (vectors - v).min(BLOCK_P);
        // SAFETY: vectors v..v+n and their furthest taps lie inside each plane
        // (`Geometry::plane`), the weights chunk is whole, and the plan only stores the
        // outputs' valid lanes, for the channels `out` holds.
        unsafe {
            match n {
                3 => tile::<3>(op, image, weights, offsets, block, v, plan, out),
                2 => tile::<2>(op, image, weights, offsets, block, v, plan, out),
                _ => tile::<1>(op, image, weights, offsets, block, v, plan, out),
            }
        }
        v += n;
    }
}

/// One register block: `P` vectors of 16 pixels × 8 output channels, summed over every tap
/// and channel group, then scaled, biased, requantized and stored.
// Indexing the accumulators by (pixel vector, channel) reads as the block it is.
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn tile<const P: usize>(
    op: &QConv,
    image: &[u32],
    weights: &[i8],
    offsets: &[usize],
    block: usize,
    first: usize,
    plan: &[(u16, usize)],
    output: &mut [f32],
) {
    let g = &op.geometry;
    let plane = g.plane();
    let groups = g.groups();
    let mut acc = [[_mm512_setzero_si512(); BLOCK_O]; P];
    let mut w = weights.as_ptr();
    let base = image.as_ptr();
    for &off in offsets {
        for group in 0..groups {
            // SAFETY: the image holds the block's pixels for every tap offset and channel group
            // (see `convolve`). The pointer is formed for each group rather than advanced past
            // the last one: `add` must stay inside the image even when the result is never read.
            let src = unsafe { base.add(first * LANES + off + group * plane) };
            let mut xs = [_mm512_setzero_si512(); P];
            for (p, x) in xs.iter_mut().enumerate() {
                // SAFETY: `P` vectors of 16 pixels from `src` lie inside the image (see `convolve`);
                // the load is unaligned.
                *x = unsafe { _mm512_loadu_si512(src.add(p * LANES).cast()) };
            }
            for o in 0..BLOCK_O {
                // SAFETY: the packed weights hold 4 bytes per output channel of the block for each
                // tap and group, read unaligned from `w`, which stays inside them (see `convolve`).
                let wb = _mm512_set1_epi32(unsafe { w.add(4 * o).cast::<i32>().read_unaligned() });
                for p in 0..P {
                    acc[p][o] = _mm512_dpbusd_epi32(acc[p][o], xs[p], wb);
                }
            }
            // SAFETY: at most one past the block's weights after the last group, which `add`
            // allows.
            unsafe {
                w = w.add(4 * BLOCK_O);
            }
        }
    }
    let (oh, ow) = g.output();
    let per_channel = oh * ow;
    let requant = Requant::new(op.requantize);
    for o in 0..BLOCK_O {
        let oc = block * BLOCK_O + o;
        if oc >= g.out_channels {
            break;
        }
        let zero = _mm512_set1_epi32(op.zero_sums[oc]);
        for p in 0..P {
            // A zero point of 0 (every input after a ReLU) adds nothing to the sums.
            let sum = if op.in_zero == 0 {
                acc[p][o]
            } else {
                _mm512_sub_epi32(acc[p][o], zero)
            };
            let v = finish16(sum, op.scales[oc], op.bias[oc], requant);
            let (mask, at) = plan[first + p];
            debug_assert!((o + 1) * per_channel <= output.len());
            // SAFETY: `at` + the valid lane count stays inside channel o of the block.
            unsafe {
                let dst = output.as_mut_ptr().add(o * per_channel + at);
                if mask == 0xFFFF {
                    _mm512_storeu_ps(dst, v);
                } else {
                    let packed = _mm512_maskz_compress_ps(mask, v);
                    let n = mask.count_ones();
                    _mm512_mask_storeu_ps(dst, ((1u32 << n) - 1) as __mmask16, packed);
                }
            }
        }
    }
}
