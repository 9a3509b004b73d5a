//! Random test frames for the preprocessing backends (tests/preprocess.rs, tests/gpu.rs): every
//! format, odd sizes, padded strides, rotation, mirror and colour space, filled with noise.

use prescreen_runtime::frame::{ColorMatrix, ColorRange, Frame, PixelFormat, Plane, Rotation};
use prescreen_runtime::manifest::{InputSpec, Manifest};
use proptest::prelude::*;

/// Pixel bytes and plane layout of a test frame.
#[derive(Clone, Debug)]
pub struct Case {
    pub format: PixelFormat,
    pub w: u32,
    pub h: u32,
    pub rotation: Rotation,
    pub mirror: bool,
    pub matrix: ColorMatrix,
    pub range: ColorRange,
    pub pad: usize,
    pub chroma_pixel_stride: usize,
    pub seed: u64,
}

pub struct Built {
    pub bufs: Vec<Vec<u8>>,
    /// (buffer, offset, row stride, pixel stride) of each plane.
    pub planes: Vec<(usize, usize, usize, usize)>,
}

pub fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 24) as u8
        })
        .collect()
}

pub fn build(c: &Case) -> Built {
    let (w, h) = (c.w as usize, c.h as usize);
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let ys = w + c.pad;
    match c.format {
        PixelFormat::Nv12 | PixelFormat::Nv21 => {
            let cs = 2 * cw + c.pad;
            Built {
                bufs: vec![noise(ys * h, c.seed), noise(cs * ch, c.seed + 1)],
                planes: vec![(0, 0, ys, 1), (1, 0, cs, 2)],
            }
        }
        PixelFormat::Yuv420 if c.chroma_pixel_stride == 2 => {
            // Android's layout: one interleaved buffer, U and V planes one byte apart, the last
            // row not padded.
            let cs = 2 * cw + c.pad;
            let len = (ch - 1) * cs + 2 * cw;
            Built {
                bufs: vec![noise(ys * h, c.seed), noise(len, c.seed + 1)],
                planes: vec![(0, 0, ys, 1), (1, 0, cs, 2), (1, 1, cs, 2)],
            }
        }
        PixelFormat::I420 | PixelFormat::Yuv420 => {
            let cs = cw + c.pad;
            Built {
                bufs: vec![
                    noise(ys * h, c.seed),
                    noise(cs * ch, c.seed + 1),
                    noise(cs * ch, c.seed + 2),
                ],
                planes: vec![(0, 0, ys, 1), (1, 0, cs, 1), (2, 0, cs, 1)],
            }
        }
        packed => {
            let bpp = packed.packed_bytes_per_pixel().unwrap();
            let stride = w * bpp + c.pad;
            Built {
                bufs: vec![noise(stride * h, c.seed)],
                planes: vec![(0, 0, stride, bpp)],
            }
        }
    }
}

pub fn frame<'a>(c: &Case, b: &'a Built) -> Frame<'a> {
    let p: Vec<Plane<'a>> = b
        .planes
        .iter()
        .map(|&(buf, off, rs, ps)| Plane::with_pixel_stride(&b.bufs[buf][off..], rs, ps))
        .collect();
    let f = match c.format {
        PixelFormat::Nv12 => Frame::nv12(c.w, c.h, p[0], p[1]),
        PixelFormat::Nv21 => Frame::nv21(c.w, c.h, p[0], p[1]),
        PixelFormat::I420 => Frame::i420(c.w, c.h, p[0], p[1], p[2]),
        PixelFormat::Yuv420 => Frame::yuv420(c.w, c.h, p[0], p[1], p[2]),
        packed => Frame::packed(packed, c.w, c.h, p[0].data, p[0].row_stride),
    };
    f.expect("valid test frame")
        .with_color(c.matrix, c.range)
        .with_orientation(c.rotation, c.mirror)
}

/// 1/255 of each channel's value range, the contract's tolerance; 1/100 of that for a filter that
/// rounds nothing (`align_corners`: only the fixed-point weights and `f32` sums differ from the
/// reference's `f64`).
pub fn tolerance(spec: &InputSpec) -> f32 {
    let levels = if spec.resize.filter.rounds_between_passes() {
        1.0001
    } else {
        0.01
    };
    spec.affine()
        .iter()
        .map(|(scale, _)| scale.abs())
        .fold(0.0, f32::max)
        * levels
}

pub fn case_strategy(max_side: u32) -> impl Strategy<Value = Case> {
    (
        prop::sample::select(PixelFormat::ALL.to_vec()),
        1..=max_side,
        1..=max_side,
        prop::sample::select(Rotation::ALL.to_vec()),
        any::<bool>(),
        prop::sample::select(vec![ColorMatrix::Bt601, ColorMatrix::Bt709]),
        prop::sample::select(vec![ColorRange::Limited, ColorRange::Full]),
        0usize..9,
        prop::sample::select(vec![1usize, 2]),
        any::<u64>(),
    )
        .prop_map(
            |(format, w, h, rotation, mirror, matrix, range, pad, chroma_pixel_stride, seed)| {
                Case {
                    format,
                    w,
                    h,
                    rotation,
                    mirror,
                    matrix,
                    range,
                    pad,
                    chroma_pixel_stride,
                    seed,
                }
            },
        )
}

/// Manifest variants the backends are tested with: the default, letterbox + NCHW, shorter side +
/// RGB, [0, 1] scaling with per-channel std + NCHW, then with `align_corners`: nsfwjs's (the whole
/// frame squashed to 224, [0, 1], RGB, NHWC), and shorter side + crop + NCHW (a fractional box).
pub const VARIANTS: usize = 6;

/// Manifest variant `variant` (< [`VARIANTS`]); see there.
pub fn variant_spec(variant: usize) -> InputSpec {
    let text = match variant {
        0 => return super::spec(),
        1 => super::manifest_variant(&[
            ("mode = \"stretch\"", "mode = \"letterbox\"\npad = 114"),
            ("width = 256\nheight = 256", "width = 224\nheight = 224"),
            (
                "[input.crop]\n# centre crop after the resize\nwidth = 224\nheight = 224\n",
                "",
            ),
            ("layout = \"NHWC\"", "layout = \"NCHW\""),
        ]),
        2 => super::manifest_variant(&[
            ("mode = \"stretch\"", "mode = \"shorter_side\""),
            ("channel_order = \"BGR\"", "channel_order = \"RGB\""),
        ]),
        4 => super::manifest_variant(&[
            ("width = 256\nheight = 256", "width = 224\nheight = 224"),
            (
                "filter = \"bilinear\"",
                "filter = \"bilinear_align_corners\"",
            ),
            (
                "[input.crop]\n# centre crop after the resize\nwidth = 224\nheight = 224\n",
                "",
            ),
            ("channel_order = \"BGR\"", "channel_order = \"RGB\""),
            ("value_scale = 255.0", "value_scale = 1.0"),
            ("mean = [104.0, 117.0, 123.0]", "mean = [0.0, 0.0, 0.0]"),
        ]),
        5 => super::manifest_variant(&[
            ("mode = \"stretch\"", "mode = \"shorter_side\""),
            (
                "filter = \"bilinear\"",
                "filter = \"bilinear_align_corners\"",
            ),
            ("layout = \"NHWC\"", "layout = \"NCHW\""),
        ]),
        3 => super::manifest_variant(&[
            ("value_scale = 255.0", "value_scale = 1.0"),
            (
                "mean = [104.0, 117.0, 123.0]",
                "mean = [0.485, 0.456, 0.406]",
            ),
            ("std = [1.0, 1.0, 1.0]", "std = [0.229, 0.224, 0.225]"),
            ("layout = \"NHWC\"", "layout = \"NCHW\""),
        ]),
        _ => panic!("no manifest variant {variant}"),
    };
    Manifest::parse(&text).expect("variant manifest").input
}

/// Camera-sized frames of every format (1080p, 720p and an odd size), with padded strides and
/// every rotation, some mirrored.
pub fn camera_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for (w, h) in [(1920, 1080), (1280, 720), (641, 479)] {
        for (i, format) in PixelFormat::ALL.into_iter().enumerate() {
            cases.push(Case {
                format,
                w,
                h,
                rotation: Rotation::ALL[i % 4],
                mirror: i % 3 == 0,
                matrix: ColorMatrix::Bt709,
                range: ColorRange::Limited,
                pad: 32,
                chroma_pixel_stride: 2,
                seed: i as u64,
            });
        }
    }
    cases
}
