//! The scalar reference implementation of the preprocessing contract.
//!
//! Slow and plain on purpose: every output pixel is computed on its own, in `f64`, by following its
//! centre back through mirror, rotation, crop and resize to a point in the stored frame, and
//! filtering the planes around that point with PIL's antialiased bilinear weights. It shares nothing
//! with the backends but the manifest's resize/crop arithmetic (`geometry::upright_layout`),
//! which the fidelity test checks against PIL itself. Tests hold every backend to it.
//!
//! With [`Filter::BilinearAlignCorners`] the centre of output pixel `i` of `n` maps instead to the
//! centre of source pixel `left + i * (extent - 1) / (n - 1)` of the box, and the planes are read
//! by plain bilinear interpolation between the four pixels around that point (chroma at the same
//! point of the half-resolution grid), in `f64`, with nothing rounded.
//!
//! Rounding follows the contract: packed 8-bit RGB is resampled as PIL does (a horizontal pass
//! rounded to 8 bits, then a vertical pass rounded to 8 bits, or down first where Pillow 13 goes
//! down first on the upright picture, `geometry::pil_down_first`); YUV planes are resampled without
//! rounding and converted in floating point.

use super::geometry::{pil_down_first, upright_layout};
use crate::frame::{ColorRange, Frame, PixelFormat, Rotation};
use crate::manifest::{Filter, InputSpec};

/// The model input for `frame`, by the book.
pub fn preprocess(frame: &Frame<'_>, spec: &InputSpec) -> Vec<f32> {
    let mut out = vec![0f32; spec.len()];
    let (w, h) = (frame.width() as f64, frame.height() as f64);
    let (uw, uh) = frame.upright_size();
    let (b, dst, (fw, fh)) = upright_layout(spec, uw, uh);
    // PIL's pass order on the upright picture; its rows are stored columns at 90 and 270 degrees.
    let down_first = pil_down_first(uw, uh, fw, fh)
        != matches!(frame.rotation(), Rotation::R90 | Rotation::R270);
    let (su, sv) = (b.width / dst.w as f64, b.height / dst.h as f64);
    let filter = spec.resize.filter;
    // Centre of output sample `i` of `n` along a box side `[start, start + extent)`.
    let centre = |i: usize, start: f64, extent: f64, n: u32, scale: f64| match filter {
        Filter::Bilinear => start + (i as f64 + 0.5) * scale,
        Filter::BilinearAlignCorners if n > 1 => {
            start + 0.5 + i as f64 * (extent - 1.0) / (n - 1) as f64
        }
        Filter::BilinearAlignCorners => start + 0.5,
    };
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
                let um = centre(x - dst.x as usize, b.left, b.width, dst.w, su);
                let v = centre(y - dst.y as usize, b.top, b.height, dst.h, sv);
                let u = if frame.mirror() { uw as f64 - um } else { um };
                let (xs, ys, scale_x, scale_y) = match frame.rotation() {
                    Rotation::R0 => (u, v, su, sv),
                    Rotation::R90 => (v, h - u, sv, su),
                    Rotation::R180 => (w - u, h - v, su, sv),
                    Rotation::R270 => (w - v, u, sv, su),
                };
                match (filter, frame.format().is_yuv()) {
                    (Filter::Bilinear, true) => sample_yuv(frame, xs, ys, scale_x, scale_y),
                    (Filter::Bilinear, false) => {
                        sample_packed(frame, (xs, ys), (scale_x, scale_y), down_first)
                    }
                    (Filter::BilinearAlignCorners, true) => interpolate_yuv(frame, xs, ys),
                    (Filter::BilinearAlignCorners, false) => interpolate_packed(frame, xs, ys),
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

/// One pixel of a packed frame resampled around stored-frame point `(xs, ys)`: across then down,
/// each pass rounded to 8 bits, or down then across when `down_first`.
fn sample_packed(
    frame: &Frame<'_>,
    (xs, ys): (f64, f64),
    (scale_x, scale_y): (f64, f64),
    down_first: bool,
) -> [f64; 3] {
    let plane = frame.planes()[0];
    let (x0, wx) = pil_bilinear_weights(xs, scale_x, frame.width() as usize);
    let (y0, wy) = pil_bilinear_weights(ys, scale_y, frame.height() as usize);
    let channel = |c: usize| -> f64 {
        let byte = match (frame.format(), c) {
            (PixelFormat::Bgra8, 0) => 2,
            (PixelFormat::Bgra8, 2) => 0,
            _ => c,
        };
        let at = |i: usize, j: usize| plane.data[plane.offset(x0 + i, y0 + j) + byte] as f64;
        let mut acc = 0.0;
        if down_first {
            for (i, wi) in wx.iter().enumerate() {
                let column: f64 = wy.iter().enumerate().map(|(j, wj)| wj * at(i, j)).sum();
                acc += wi * round_u8(column);
            }
        } else {
            for (j, wj) in wy.iter().enumerate() {
                let row: f64 = wx.iter().enumerate().map(|(i, wi)| wi * at(i, j)).sum();
                acc += wj * round_u8(row);
            }
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
    yuv_to_rgb(frame, y, u, v)
}

/// Bilinear interpolation of `at(x, y)` over a `w` x `h` grid at index-space point `(x, y)`
/// (clamped to the grid): the four neighbours weighted by distance.
fn bilinear(w: usize, h: usize, x: f64, y: f64, at: impl Fn(usize, usize) -> f64) -> f64 {
    let x = x.clamp(0.0, (w - 1) as f64);
    let y = y.clamp(0.0, (h - 1) as f64);
    let (x0, y0) = (x.floor() as usize, y.floor() as usize);
    let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
    let (fx, fy) = (x - x0 as f64, y - y0 as f64);
    let top = at(x0, y0) * (1.0 - fx) + at(x1, y0) * fx;
    let bottom = at(x0, y1) * (1.0 - fx) + at(x1, y1) * fx;
    top * (1.0 - fy) + bottom * fy
}

/// R, G, B of a packed frame at the point centred on `(xs, ys)` (stored-frame pixel units).
fn interpolate_packed(frame: &Frame<'_>, xs: f64, ys: f64) -> [f64; 3] {
    let plane = frame.planes()[0];
    let (w, h) = (frame.width() as usize, frame.height() as usize);
    let channel = |c: usize| -> f64 {
        let byte = match (frame.format(), c) {
            (PixelFormat::Bgra8, 0) => 2,
            (PixelFormat::Bgra8, 2) => 0,
            _ => c,
        };
        bilinear(w, h, xs - 0.5, ys - 0.5, |x, y| {
            plane.data[plane.offset(x, y) + byte] as f64
        })
    };
    [channel(0), channel(1), channel(2)]
}

/// R, G, B of a YUV frame at the point centred on `(xs, ys)`: luma there, chroma at the same point
/// of the half-resolution grid.
fn interpolate_yuv(frame: &Frame<'_>, xs: f64, ys: f64) -> [f64; 3] {
    let luma = frame.planes()[0];
    let (w, h) = (frame.width() as usize, frame.height() as usize);
    let y = bilinear(w, h, xs - 0.5, ys - 0.5, |x, y| {
        luma.data[luma.offset(x, y)] as f64
    });
    let (cw, ch) = frame.chroma_size();
    let (cx, cy) = (xs / 2.0 - 0.5, ys / 2.0 - 0.5);
    let (cw, ch) = (cw as usize, ch as usize);
    let u = bilinear(cw, ch, cx, cy, |x, y| chroma_at(frame, x, y).0);
    let v = bilinear(cw, ch, cx, cy, |x, y| chroma_at(frame, x, y).1);
    yuv_to_rgb(frame, y, u, v)
}

/// Y'CbCr (0..=255 units, the frame's range) to R'G'B' with the frame's matrix, clamped.
fn yuv_to_rgb(frame: &Frame<'_>, y: f64, u: f64, v: f64) -> [f64; 3] {
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
