//! The scalar reference implementation of the preprocessing contract.
//!
//! Slow and plain on purpose: every output pixel is computed on its own, in `f64`, by following its
//! centre back through mirror, rotation, crop and resize to a point in the stored frame, and
//! filtering the planes around that point with PIL's antialiased bilinear weights. It shares nothing
//! with the backends but the manifest's resize/crop arithmetic ([`super::geometry::upright_layout`]),
//! which the fidelity test checks against PIL itself. Tests hold every backend to it.
//!
//! Rounding follows the contract: packed 8-bit RGB is resampled as PIL does (a horizontal pass
//! rounded to 8 bits, then a vertical pass rounded to 8 bits); YUV planes are resampled without
//! rounding and converted in floating point.

use super::geometry::upright_layout;
use crate::frame::{ColorRange, Frame, PixelFormat, Rotation};
use crate::manifest::InputSpec;

/// The model input for `frame`, by the book.
pub fn preprocess(frame: &Frame<'_>, spec: &InputSpec) -> Vec<f32> {
    let mut out = vec![0f32; spec.len()];
    let (w, h) = (frame.width() as f64, frame.height() as f64);
    let (uw, uh) = frame.upright_size();
    let (b, dst) = upright_layout(spec, uw, uh);
    let (su, sv) = (b.width / dst.w as f64, b.height / dst.h as f64);
    let affine = spec.affine();
    let source = spec.rgb_source();
    let (tw, th) = (spec.width as usize, spec.height as usize);
    for y in 0..th {
        for x in 0..tw {
            let inside = x >= dst.x as usize
                && x < (dst.x + dst.w) as usize
                && y >= dst.y as usize
                && y < (dst.y + dst.h) as usize;
            let rgb = if !inside {
                [spec.resize.pad as f64; 3]
            } else {
                // Centre of this pixel in the (mirrored) upright picture, then in the stored frame.
                let um = b.left + ((x - dst.x as usize) as f64 + 0.5) * su;
                let v = b.top + ((y - dst.y as usize) as f64 + 0.5) * sv;
                let u = if frame.mirror() { uw as f64 - um } else { um };
                let (xs, ys, scale_x, scale_y) = match frame.rotation() {
                    Rotation::R0 => (u, v, su, sv),
                    Rotation::R90 => (v, h - u, sv, su),
                    Rotation::R180 => (w - u, h - v, su, sv),
                    Rotation::R270 => (w - v, u, sv, su),
                };
                if frame.format().is_yuv() {
                    sample_yuv(frame, xs, ys, scale_x, scale_y)
                } else {
                    sample_packed(frame, xs, ys, scale_x, scale_y)
                }
            };
            for k in 0..3 {
                let (scale, offset) = affine[k];
                let value = (rgb[source[k]] as f32) * scale + offset;
                let index = match spec.layout {
                    crate::manifest::Layout::Nhwc => (y * tw + x) * 3 + k,
                    crate::manifest::Layout::Nchw => k * tw * th + y * tw + x,
                };
                out[index] = value;
            }
        }
    }
    out
}

/// PIL's antialiased bilinear weights around `center` for a resize with `scale` source pixels per
/// output pixel, over a line of `len` samples: `(first sample, weights)`.
///
/// Like PIL, the normalised weights are held in 22-bit fixed point, so sums over 8-bit pixels are
/// exact in `f64` and ties (a value of exactly n + 0.5) round up as PIL's do.
pub fn pil_bilinear_weights(center: f64, scale: f64, len: usize) -> (usize, Vec<f64>) {
    let filter_scale = scale.max(1.0);
    let support = filter_scale; // the triangle's support is 1, widened when shrinking
    let first = ((center - support + 0.5) as i64).max(0) as usize; // C's (int) truncates
    let end = (((center + support + 0.5) as i64).max(0) as usize).min(len);
    let mut weights: Vec<f64> = (first..end)
        .map(|i| {
            let t = ((i as f64 - center + 0.5) / filter_scale).abs();
            if t < 1.0 {
                1.0 - t
            } else {
                0.0
            }
        })
        .collect();
    let total: f64 = weights.iter().sum();
    const ONE: f64 = (1u32 << 22) as f64;
    if total > 0.0 {
        weights
            .iter_mut()
            .for_each(|w| *w = (*w / total * ONE).round() / ONE);
    }
    (first, weights)
}

fn round_u8(v: f64) -> f64 {
    (v + 0.5).floor().clamp(0.0, 255.0)
}

fn sample_packed(frame: &Frame<'_>, xs: f64, ys: f64, scale_x: f64, scale_y: f64) -> [f64; 3] {
    let plane = frame.planes()[0];
    let (x0, wx) = pil_bilinear_weights(xs, scale_x, frame.width() as usize);
    let (y0, wy) = pil_bilinear_weights(ys, scale_y, frame.height() as usize);
    let channel = |c: usize| -> f64 {
        let byte = match (frame.format(), c) {
            (PixelFormat::Bgra8, 0) => 2,
            (PixelFormat::Bgra8, 2) => 0,
            _ => c,
        };
        let mut acc = 0.0;
        for (j, wj) in wy.iter().enumerate() {
            let mut row = 0.0;
            for (i, wi) in wx.iter().enumerate() {
                row += wi * plane.data[plane.offset(x0 + i, y0 + j) + byte] as f64;
            }
            acc += wj * round_u8(row);
        }
        round_u8(acc)
    };
    [channel(0), channel(1), channel(2)]
}

fn chroma_at(frame: &Frame<'_>, x: usize, y: usize) -> (f64, f64) {
    let p = frame.planes();
    let (u, v) = match frame.format() {
        PixelFormat::Nv12 => (
            p[1].data[y * p[1].row_stride + 2 * x],
            p[1].data[y * p[1].row_stride + 2 * x + 1],
        ),
        PixelFormat::Nv21 => (
            p[1].data[y * p[1].row_stride + 2 * x + 1],
            p[1].data[y * p[1].row_stride + 2 * x],
        ),
        _ => (p[1].data[p[1].offset(x, y)], p[2].data[p[2].offset(x, y)]),
    };
    (u as f64, v as f64)
}

fn sample_yuv(frame: &Frame<'_>, xs: f64, ys: f64, scale_x: f64, scale_y: f64) -> [f64; 3] {
    let luma = frame.planes()[0];
    let (x0, wx) = pil_bilinear_weights(xs, scale_x, frame.width() as usize);
    let (y0, wy) = pil_bilinear_weights(ys, scale_y, frame.height() as usize);
    let mut y = 0.0;
    for (j, wj) in wy.iter().enumerate() {
        for (i, wi) in wx.iter().enumerate() {
            y += wj * wi * luma.data[luma.offset(x0 + i, y0 + j)] as f64;
        }
    }
    // Chroma: the same point on the half-resolution grid (sample k covers luma 2k and 2k+1).
    let (cw, ch) = frame.chroma_size();
    let (cx0, cwx) = pil_bilinear_weights(xs / 2.0, scale_x / 2.0, cw as usize);
    let (cy0, cwy) = pil_bilinear_weights(ys / 2.0, scale_y / 2.0, ch as usize);
    let (mut u, mut v) = (0.0, 0.0);
    for (j, wj) in cwy.iter().enumerate() {
        for (i, wi) in cwx.iter().enumerate() {
            let (cu, cv) = chroma_at(frame, cx0 + i, cy0 + j);
            u += wj * wi * cu;
            v += wj * wi * cv;
        }
    }
    // Y'CbCr to R'G'B', straight from the definition: Y = Kr R + Kg G + Kb B.
    let (kr, kb) = frame.matrix().kr_kb();
    let kg = 1.0 - kr - kb;
    let (yv, cb, cr) = match frame.range() {
        ColorRange::Full => (y, u - 128.0, v - 128.0),
        ColorRange::Limited => (
            (y - 16.0) * 255.0 / 219.0,
            (u - 128.0) * 255.0 / 224.0,
            (v - 128.0) * 255.0 / 224.0,
        ),
    };
    let r = yv + 2.0 * (1.0 - kr) * cr;
    let b = yv + 2.0 * (1.0 - kb) * cb;
    let g = (yv - kr * r - kb * b) / kg;
    [r, g, b].map(|c| c.clamp(0.0, 255.0))
}
