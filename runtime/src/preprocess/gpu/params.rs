//! The uniform parameter blocks: the 60-word `Params` of the two preprocessing kernels, which
//! mirrors `Params` in `shaders/resample_rows.wgsl` and `shaders/to_tensor.wgsl`, and the size of
//! the signature kernel's `SignatureParams`.

use super::buffers::TapsLayout;
use crate::frame::{ColorMatrix, ColorRange, Frame, PixelFormat, Rotation};
use crate::manifest::{InputSpec, Layout};
use crate::preprocess::geometry::Plan;

/// Words in the `Params` uniform (see the shaders).
pub(super) const PARAM_WORDS: usize = 60;
/// Words in the `SignatureParams` uniform.
#[cfg(feature = "testing")]
pub(super) const SIGNATURE_PARAM_WORDS: usize = 8;
const KIND_PACKED: u32 = 0;
const KIND_YUV: u32 = 1;
/// Packed RGB kept exact between the passes (three `f32` per intermediate sample).
const KIND_PACKED_EXACT: u32 = 2;
/// Packed RGB rounded between the passes, the vertical pass first (`Plan::down_first`).
const KIND_PACKED_DOWN_FIRST: u32 = 3;

/// The `Params` uniform of the two preprocessing kernels (layout documented in the shaders).
pub(super) fn params(
    spec: &InputSpec,
    frame: &Frame<'_>,
    plan: &Plan,
    layout: &TapsLayout,
    bases: [u32; 3],
    inter_words: u64,
) -> [u32; PARAM_WORDS] {
    let planes = frame.planes();
    let yuv = frame.format().is_yuv();
    let mut p = [0u32; PARAM_WORDS];
    let f = f32::to_bits;
    p[0..4].copy_from_slice(&[plan.resized_w, plan.resized_h, plan.out_w, plan.out_h]);
    p[4..8].copy_from_slice(&[plan.dst.x, plan.dst.y, plan.dst.w, plan.dst.h]);
    let rotation = match frame.rotation() {
        Rotation::R0 => 0,
        Rotation::R90 => 1,
        Rotation::R180 => 2,
        Rotation::R270 => 3,
    };
    let layout_code = match spec.layout {
        Layout::Nhwc => 0,
        Layout::Nchw => 1,
    };
    let kind = match (yuv, spec.resize.filter.rounds_between_passes()) {
        (true, _) => KIND_YUV,
        (false, true) if plan.down_first => KIND_PACKED_DOWN_FIRST,
        (false, true) => KIND_PACKED,
        (false, false) => KIND_PACKED_EXACT,
    };
    p[8..12].copy_from_slice(&[rotation, frame.mirror() as u32, layout_code, kind]);
    let luma_rows = layout.luma_rows.len() as u32;
    let chroma_rows = if yuv {
        layout.chroma_rows.len() as u32
    } else {
        0
    };
    p[12..16].copy_from_slice(&[
        bases[0],
        planes[0].row_stride as u32,
        planes[0].pixel_stride as u32,
        luma_rows,
    ]);
    // Chroma planes: (base, row stride, pixel stride) of U and of V.
    let (u, v) = match frame.format() {
        PixelFormat::Nv12 => (
            (bases[1], planes[1].row_stride, 2),
            (bases[1] + 1, planes[1].row_stride, 2),
        ),
        PixelFormat::Nv21 => (
            (bases[1] + 1, planes[1].row_stride, 2),
            (bases[1], planes[1].row_stride, 2),
        ),
        PixelFormat::I420 | PixelFormat::Yuv420 => (
            (bases[1], planes[1].row_stride, planes[1].pixel_stride),
            (bases[2], planes[2].row_stride, planes[2].pixel_stride),
        ),
        _ => ((0, 0, 0), (0, 0, 0)),
    };
    // Byte offsets of R, G, B in a packed pixel.
    let order = match frame.format() {
        PixelFormat::Bgra8 => 2 | (1 << 8),
        _ => 1 << 8 | 2 << 16,
    };
    p[16..20].copy_from_slice(&[u.0, u.1 as u32, u.2 as u32, chroma_rows]);
    p[20..24].copy_from_slice(&[v.0, v.1 as u32, v.2 as u32, order]);
    let t = &layout.words;
    let luma_words = plan.resized_w * luma_rows;
    p[24..28].copy_from_slice(&[t[0], t[1], t[2], layout.luma_rows.start as u32]);
    p[28..32].copy_from_slice(&[t[3], t[4], t[5], layout.chroma_rows.start as u32]);
    p[32..36].copy_from_slice(&[t[6], t[7], t[8], luma_words]);
    p[36..40].copy_from_slice(&[t[9], t[10], t[11], f(spec.resize.pad as f32)]);
    let c = yuv_coefficients(frame.matrix(), frame.range());
    let columns = &layout.columns;
    p[40..48].copy_from_slice(&[
        f(c[0]),
        f(c[1]),
        f(c[2]),
        f(c[3]),
        f(c[4]),
        f(c[5]),
        columns.start as u32,
        columns.len() as u32,
    ]);
    let affine = spec.affine();
    let source = spec.rgb_source();
    for k in 0..3 {
        p[48 + k] = f(affine[k].0);
        p[52 + k] = f(affine[k].1);
        p[56 + k] = source[k] as u32;
    }
    debug_assert!(
        kind == KIND_PACKED_DOWN_FIRST
            && inter_words >= u64::from(plan.resized_h) * columns.len() as u64
            || inter_words >= luma_words as u64
    );
    p
}

/// `[y_offset, y_scale, r_v, g_u, g_v, b_u]`, computed exactly as [`crate::preprocess::YuvToRgb`].
fn yuv_coefficients(matrix: ColorMatrix, range: ColorRange) -> [f32; 6] {
    let (kr, kb) = matrix.kr_kb();
    let kg = 1.0 - kr - kb;
    let (y_offset, y_scale, c_scale) = match range {
        ColorRange::Full => (0.0, 1.0, 1.0),
        ColorRange::Limited => (16.0, 255.0 / 219.0, 255.0 / 224.0),
    };
    [
        y_offset as f32,
        y_scale as f32,
        (2.0 * (1.0 - kr) * c_scale) as f32,
        (-2.0 * kb * (1.0 - kb) / kg * c_scale) as f32,
        (-2.0 * kr * (1.0 - kr) / kg * c_scale) as f32,
        (2.0 * (1.0 - kb) * c_scale) as f32,
    ]
}
