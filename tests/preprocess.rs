//! The CPU backend against the scalar reference, over formats, sizes, strides, rotations, mirror,
//! colour spaces and manifest variants; plus semantic checks of rotation and mirror.

mod common;

use common::cases::{
    build, camera_cases, case_strategy, frame, tolerance, variant_spec, Case, VARIANTS,
};

use prescreen_runtime::frame::{ColorMatrix, ColorRange, Frame, PixelFormat, Rotation};
use prescreen_runtime::manifest::InputSpec;
use prescreen_runtime::preprocess::{reference, CpuPreprocessor};
use proptest::prelude::*;

fn check(c: &Case, spec: &InputSpec, pre: &mut CpuPreprocessor) -> Result<(), TestCaseError> {
    let b = build(c);
    let f = frame(c, &b);
    let mut out = vec![0f32; spec.len()];
    pre.run(&f, &mut out).expect("preprocess");
    let want = reference::preprocess(&f, spec);
    let (max, _) = common::diff(&out, &want);
    prop_assert!(
        max <= tolerance(spec),
        "max |cpu - reference| = {max} for {c:?}"
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// Random noise (the hardest content for rounding), any size from 1x1 (upscaling) to 600 px
    /// (shrinking), odd sizes, padded strides, every format, rotation, mirror and colour space.
    #[test]
    fn cpu_matches_reference(c in case_strategy(600)) {
        let spec = common::spec();
        let mut pre = CpuPreprocessor::new(&spec);
        check(&c, &spec, &mut pre)?;
    }

    /// The same for manifest variants: letterbox with padding, shorter side + crop, NCHW, RGB order,
    /// [0, 1] scaling with a per-channel std, and the `align_corners` filter (exact, unrounded).
    #[test]
    fn cpu_matches_reference_for_other_manifests(c in case_strategy(300), variant in 1..VARIANTS) {
        let spec = variant_spec(variant);
        let mut pre = CpuPreprocessor::new(&spec);
        check(&c, &spec, &mut pre)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Packed pixels upright and unmirrored are resampled with PIL's own integer arithmetic: the
    /// CPU path equals the reference exactly, ties included (the tolerance covers only the
    /// floating-point order of rotated and mirrored coordinates).
    #[test]
    fn packed_upright_is_exactly_the_reference(
        c in case_strategy(600),
        format in prop::sample::select(vec![PixelFormat::Rgb8, PixelFormat::Rgba8, PixelFormat::Bgra8]),
    ) {
        let c = Case { format, rotation: Rotation::R0, mirror: false, ..c };
        let spec = common::spec();
        let mut pre = CpuPreprocessor::new(&spec);
        let b = build(&c);
        let f = frame(&c, &b);
        let mut out = vec![0f32; spec.len()];
        pre.run(&f, &mut out).expect("preprocess");
        let want = reference::preprocess(&f, &spec);
        let (max, _) = common::diff(&out, &want);
        prop_assert!(max == 0.0, "max |cpu - reference| = {max} for {c:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// `align_corners` means what TensorFlow means: the four corner pixels of the upright picture
    /// land, unblended, on the four corners of the tensor, whatever the sizes (up or down) and
    /// the mirror.
    #[test]
    fn align_corners_puts_the_picture_corners_on_the_tensor_corners(
        w in 1usize..=400,
        h in 1usize..=400,
        mirror in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let spec = variant_spec(4);
        let (tw, th) = (spec.width as usize, spec.height as usize);
        let pixels = common::cases::noise(w * h * 3, seed);
        let f = Frame::packed(PixelFormat::Rgb8, w as u32, h as u32, &pixels, w * 3)
            .unwrap()
            .with_orientation(Rotation::R0, mirror);
        let mut out = vec![0f32; spec.len()];
        CpuPreprocessor::new(&spec).run(&f, &mut out).expect("preprocess");
        let [(scale, offset), ..] = spec.affine();
        for (ux, uy, tx, ty) in [(0, 0, 0, 0), (w - 1, 0, tw - 1, 0), (0, h - 1, 0, th - 1), (w - 1, h - 1, tw - 1, th - 1)] {
            let sx = if mirror { w - 1 - ux } else { ux };
            for c in 0..3 {
                let want = pixels[(uy * w + sx) * 3 + c] as f32 * scale + offset;
                let got = out[(ty * tw + tx) * 3 + c];
                prop_assert!((got - want).abs() <= 1e-6, "corner ({ux}, {uy}) channel {c}: {got} != {want}");
            }
        }
    }
}

/// Camera-sized frames of every format against the reference, with one reused preprocessor.
#[test]
fn camera_sizes_match_reference() {
    let spec = common::spec();
    let mut pre = CpuPreprocessor::new(&spec);
    for c in camera_cases() {
        check(&c, &spec, &mut pre).unwrap_or_else(|e| panic!("{}x{} {}: {e}", c.w, c.h, c.format));
    }
}

/// Rotation and mirror mean what the docs say: a picture stored rotated or mirrored, and tagged with
/// the rotation/mirror that undoes it, gives the same tensor as the upright picture.
#[test]
fn rotation_and_mirror_restore_the_upright_picture() {
    let spec = common::spec();
    let mut pre = CpuPreprocessor::new(&spec);
    let (w, h) = (320usize, 200usize);
    // A smooth, asymmetric picture (gradients plus a bright corner block).
    let mut upright = vec![0u8; w * h * 3];
    for y in 0..h {
        for x in 0..w {
            let i = (y * w + x) * 3;
            upright[i] = (x * 255 / w) as u8;
            upright[i + 1] = (y * 255 / h) as u8;
            upright[i + 2] = if x < 60 && y < 40 { 255 } else { 30 };
        }
    }
    let mut want = vec![0f32; spec.len()];
    pre.run(
        &Frame::packed(PixelFormat::Rgb8, w as u32, h as u32, &upright, w * 3).unwrap(),
        &mut want,
    )
    .unwrap();
    for rotation in Rotation::ALL {
        for mirror in [false, true] {
            // Store the picture so that rotating it by `rotation` clockwise, then mirroring, restores it.
            let (sw, sh) = if rotation.swaps_axes() {
                (h, w)
            } else {
                (w, h)
            };
            let mut stored = vec![0u8; w * h * 3];
            for uy in 0..h {
                for ux in 0..w {
                    let mx = if mirror { w - 1 - ux } else { ux };
                    let (sx, sy) = match rotation {
                        Rotation::R0 => (mx, uy),
                        Rotation::R90 => (uy, sh - 1 - mx),
                        Rotation::R180 => (sw - 1 - mx, sh - 1 - uy),
                        Rotation::R270 => (sw - 1 - uy, mx),
                    };
                    let (s, u) = ((sy * sw + sx) * 3, (uy * w + ux) * 3);
                    stored[s..s + 3].copy_from_slice(&upright[u..u + 3]);
                }
            }
            let f = Frame::packed(PixelFormat::Rgb8, sw as u32, sh as u32, &stored, sw * 3)
                .unwrap()
                .with_orientation(rotation, mirror);
            let mut got = vec![0f32; spec.len()];
            pre.run(&f, &mut got).unwrap();
            let (max, mean) = common::diff(&got, &want);
            // The same pixels; only the order of the two 8-bit resampling passes differs.
            assert!(
                max <= 1.0 && mean < 0.1,
                "{rotation:?} mirror={mirror}: max {max} mean {mean}"
            );
        }
    }
}

/// The preprocessor refuses an output buffer of the wrong size instead of writing past it.
#[test]
fn wrong_output_size_is_an_error() {
    let spec = common::spec();
    let mut pre = CpuPreprocessor::new(&spec);
    let px = vec![0u8; 12];
    let f = Frame::packed(PixelFormat::Rgb8, 2, 2, &px, 6).unwrap();
    let mut short = vec![0f32; spec.len() - 1];
    assert!(matches!(
        pre.run(&f, &mut short),
        Err(prescreen_runtime::Error::TensorSize { .. })
    ));
}

/// Found by `cpu_matches_reference` on 2026-11-23: a 13-row BGRA frame stretched to 256 rows. The
/// horizontal pass hit exact ties (x.5) in two rows; PIL's 22-bit weights round them down, the
/// 16-bit weights the CPU path then used rounded them up, and the vertical pass added a third
/// rounding: 2 levels off. The packed path now uses PIL's own fixed-point weights.
#[test]
fn bgra_extreme_vertical_upscale_matches_reference() {
    let c = Case {
        format: PixelFormat::Bgra8,
        w: 320,
        h: 13,
        rotation: Rotation::R0,
        mirror: false,
        matrix: ColorMatrix::Bt601,
        range: ColorRange::Limited,
        pad: 3,
        chroma_pixel_stride: 1,
        seed: 9356859906156176134,
    };
    let spec = common::spec();
    let mut pre = CpuPreprocessor::new(&spec);
    check(&c, &spec, &mut pre).unwrap();
}

/// YUV colour against independent values, not against our own reference: the 8-bit 100 % colour
/// bars of ITU-R BT.709 and BT.601 in limited range (the codes of the SMPTE colour-bar tables), and
/// BT.601 full range (JFIF's equations, rounded), decoded by the CPU backend and by the scalar
/// reference to within 2 of 0 or 255 per channel (the 8-bit codes themselves are off by up to
/// 1.2). A wrong matrix coefficient or range offset moves the backends and the reference together,
/// which the agreement tests cannot see; this test fails on it.
#[test]
fn yuv_colour_bars_decode_to_their_primaries() {
    // RGB tensor in 0..=255: no mean, RGB order (the layout stays NHWC).
    let text = common::manifest_variant(&[
        ("channel_order = \"BGR\"", "channel_order = \"RGB\""),
        ("mean = [104.0, 117.0, 123.0]", "mean = [0.0, 0.0, 0.0]"),
    ]);
    let spec = prescreen_runtime::manifest::Manifest::parse(&text)
        .expect("manifest")
        .input;
    let mut pre = CpuPreprocessor::new(&spec);
    const BARS_709: [([u8; 3], [u8; 3]); 8] = [
        ([63, 102, 240], [255, 0, 0]),
        ([173, 42, 26], [0, 255, 0]),
        ([32, 240, 118], [0, 0, 255]),
        ([219, 16, 138], [255, 255, 0]),
        ([188, 154, 16], [0, 255, 255]),
        ([78, 214, 230], [255, 0, 255]),
        ([235, 128, 128], [255, 255, 255]),
        ([16, 128, 128], [0, 0, 0]),
    ];
    const BARS_601: [([u8; 3], [u8; 3]); 8] = [
        ([81, 90, 240], [255, 0, 0]),
        ([145, 54, 34], [0, 255, 0]),
        ([41, 240, 110], [0, 0, 255]),
        ([210, 16, 146], [255, 255, 0]),
        ([170, 166, 16], [0, 255, 255]),
        ([106, 202, 222], [255, 0, 255]),
        ([235, 128, 128], [255, 255, 255]),
        ([16, 128, 128], [0, 0, 0]),
    ];
    const FULL_601: [([u8; 3], [u8; 3]); 5] = [
        ([76, 85, 255], [255, 0, 0]),
        ([150, 44, 21], [0, 255, 0]),
        ([29, 255, 107], [0, 0, 255]),
        ([255, 128, 128], [255, 255, 255]),
        ([0, 128, 128], [0, 0, 0]),
    ];
    // (Y', Cb, Cr) codes and the R'G'B' they stand for.
    type Bars<'a> = &'a [([u8; 3], [u8; 3])];
    let sets: [(ColorMatrix, ColorRange, Bars); 3] = [
        (ColorMatrix::Bt709, ColorRange::Limited, &BARS_709),
        (ColorMatrix::Bt601, ColorRange::Limited, &BARS_601),
        (ColorMatrix::Bt601, ColorRange::Full, &FULL_601),
    ];
    let (w, h) = (16u32, 16u32);
    for (matrix, range, bars) in sets {
        for &([y, cb, cr], rgb) in bars {
            let luma = vec![y; (w * h) as usize];
            let (u, v) = (vec![cb; 64], vec![cr; 64]);
            let frame = Frame::i420(
                w,
                h,
                prescreen_runtime::frame::Plane::new(&luma, w as usize),
                prescreen_runtime::frame::Plane::new(&u, 8),
                prescreen_runtime::frame::Plane::new(&v, 8),
            )
            .unwrap()
            .with_color(matrix, range);
            let mut cpu = vec![0f32; spec.len()];
            pre.run(&frame, &mut cpu).unwrap();
            let reference = reference::preprocess(&frame, &spec);
            for (what, out) in [("cpu", &cpu), ("reference", &reference)] {
                for (i, px) in out.chunks_exact(3).enumerate() {
                    for c in 0..3 {
                        let d = (px[c] - rgb[c] as f32).abs();
                        assert!(
                            d <= 2.0,
                            "{what} {matrix:?} {range:?} Y'CbCr {:?}: pixel {i} channel {c} is {}, \
                             want {}",
                            [y, cb, cr],
                            px[c],
                            rgb[c]
                        );
                    }
                }
            }
        }
    }
}
