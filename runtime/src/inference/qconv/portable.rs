//! The portable kernel: the quantizer and the convolution in plain scalar Rust, one output at a
//! time. It runs on any CPU and is the reference every SIMD kernel must match bit for bit.

use super::*;

pub(super) fn quantize_one(v: f32, inv: f32, zero: u8) -> u32 {
    let z = f32::from(zero);
    ((v * inv).max(-z).min(255.0 - z).round_ties_even() + z) as u32
}

/// Fills the padded, channel-interleaved quantized image (the zero point outside the input).
pub(super) fn quantize_portable(op: &QConv, input: &[f32], image: &mut [u32]) {
    let g = &op.geometry;
    let (_, wp) = g.padded();
    let plane = g.plane();
    let hw = g.height * g.width;
    let fill = u32::from(op.in_zero) * 0x0101_0101;
    image.fill(fill);
    for group in 0..g.groups() {
        let dst = &mut image[group * plane..(group + 1) * plane];
        for y in 0..g.height {
            for x in 0..g.width {
                let mut px = 0u32;
                for i in 0..4 {
                    let c = group * 4 + i;
                    let q = if c < g.channels {
                        quantize_one(input[c * hw + y * g.width + x], op.in_inv_scale, op.in_zero)
                    } else {
                        u32::from(op.in_zero)
                    };
                    px |= q << (8 * i);
                }
                dst[(y + g.pad[0]) * wp + x + g.pad[1]] = px;
            }
        }
    }
}

/// The reference kernel: the same sums and epilogue, one output at a time.
pub(super) fn convolve_portable(op: &QConv, image: &[u32], output: &mut [f32]) {
    let g = &op.geometry;
    let (oh, ow) = g.output();
    let (_, wp) = g.padded();
    let plane = g.plane();
    let offsets = &op.offsets;
    let groups = g.groups();
    for o in 0..g.out_channels {
        for y in 0..oh {
            for x in 0..ow {
                let at = y * wp + x;
                let mut sum = 0i32;
                for (t, off) in offsets.iter().enumerate() {
                    for group in 0..groups {
                        let px = image[group * plane + at + off].to_le_bytes();
                        let w = (((o / BLOCK_O * offsets.len() + t) * groups + group) * BLOCK_O
                            + o % BLOCK_O)
                            * 4;
                        for (i, &x) in px.iter().enumerate() {
                            sum += i32::from(x) * i32::from(op.packed[w + i]);
                        }
                    }
                }
                output[(o * oh + y) * ow + x] = op.epilogue(o, sum);
            }
        }
    }
}
