//! Frame validation: every malformed frame is refused with the right typed error, never a panic.

use prescreen_runtime::frame::{
    ColorMatrix, ColorRange, Frame, FrameError, PixelFormat, Plane, PlaneKind, Rotation,
    MAX_DIMENSION, MAX_PIXEL_STRIDE,
};

fn buf(n: usize) -> Vec<u8> {
    vec![0u8; n]
}

#[test]
fn zero_sizes_are_refused() {
    let b = buf(16);
    for (w, h) in [(0, 4), (4, 0), (0, 0)] {
        let e = Frame::nv12(w, h, Plane::new(&b, 4), Plane::new(&b, 4)).unwrap_err();
        assert_eq!(
            e,
            FrameError::ZeroSize {
                width: w,
                height: h
            }
        );
        let e = Frame::packed(PixelFormat::Rgba8, w, h, &b, 16).unwrap_err();
        assert_eq!(
            e,
            FrameError::ZeroSize {
                width: w,
                height: h
            }
        );
    }
}

#[test]
fn absurd_sizes_are_refused_before_any_arithmetic() {
    let b = buf(16);
    for (w, h) in [
        (MAX_DIMENSION + 1, 2),
        (2, u32::MAX),
        (u32::MAX, u32::MAX),
        (MAX_DIMENSION, MAX_DIMENSION),
    ] {
        let e = Frame::i420(
            w,
            h,
            Plane::new(&b, 4),
            Plane::new(&b, 2),
            Plane::new(&b, 2),
        )
        .unwrap_err();
        assert_eq!(
            e,
            FrameError::TooLarge {
                width: w,
                height: h
            },
            "{w}x{h}"
        );
        let e = Frame::packed(PixelFormat::Bgra8, w, h, &b, usize::MAX).unwrap_err();
        assert_eq!(
            e,
            FrameError::TooLarge {
                width: w,
                height: h
            }
        );
    }
}

#[test]
fn short_planes_are_refused_per_plane() {
    let (w, h) = (6u32, 4u32);
    let y = buf(24);
    let uv = buf(12);
    assert!(Frame::nv21(w, h, Plane::new(&y, 6), Plane::new(&uv, 6)).is_ok());
    assert_eq!(
        Frame::nv21(w, h, Plane::new(&y[..23], 6), Plane::new(&uv, 6)).unwrap_err(),
        FrameError::PlaneTooShort {
            plane: PlaneKind::Y,
            len: 23,
            needed: 24
        }
    );
    assert_eq!(
        Frame::nv12(w, h, Plane::new(&y, 6), Plane::new(&uv[..11], 6)).unwrap_err(),
        FrameError::PlaneTooShort {
            plane: PlaneKind::Chroma,
            len: 11,
            needed: 12
        }
    );
    let c = buf(6);
    assert_eq!(
        Frame::i420(
            w,
            h,
            Plane::new(&y, 6),
            Plane::new(&c, 3),
            Plane::new(&c[..5], 3)
        )
        .unwrap_err(),
        FrameError::PlaneTooShort {
            plane: PlaneKind::V,
            len: 5,
            needed: 6
        }
    );
    assert_eq!(
        Frame::i420(
            w,
            h,
            Plane::new(&y, 6),
            Plane::new(&c[..2], 3),
            Plane::new(&c, 3)
        )
        .unwrap_err(),
        FrameError::PlaneTooShort {
            plane: PlaneKind::U,
            len: 2,
            needed: 6
        }
    );
    let px = buf(6 * 4 * 3);
    assert_eq!(
        Frame::packed(PixelFormat::Rgb8, w, h, &px[..71], 18).unwrap_err(),
        FrameError::PlaneTooShort {
            plane: PlaneKind::Packed,
            len: 71,
            needed: 72
        }
    );
    // An empty buffer, as a host passing a null or released buffer would.
    assert_eq!(
        Frame::packed(PixelFormat::Rgba8, w, h, &[], 24).unwrap_err(),
        FrameError::PlaneTooShort {
            plane: PlaneKind::Packed,
            len: 0,
            needed: 96
        }
    );
}

#[test]
fn strides_smaller_than_a_row_are_refused() {
    let b = buf(1 << 12);
    assert_eq!(
        Frame::nv12(8, 4, Plane::new(&b, 7), Plane::new(&b, 8)).unwrap_err(),
        FrameError::StrideTooSmall {
            plane: PlaneKind::Y,
            stride: 7,
            row_bytes: 8
        }
    );
    assert_eq!(
        Frame::nv12(8, 4, Plane::new(&b, 8), Plane::new(&b, 6)).unwrap_err(),
        FrameError::StrideTooSmall {
            plane: PlaneKind::Chroma,
            stride: 6,
            row_bytes: 8
        }
    );
    assert_eq!(
        Frame::packed(PixelFormat::Bgra8, 8, 4, &b, 31).unwrap_err(),
        FrameError::StrideTooSmall {
            plane: PlaneKind::Packed,
            stride: 31,
            row_bytes: 32
        }
    );
    assert_eq!(
        Frame::packed(PixelFormat::Rgb8, 8, 4, &b, 0).unwrap_err(),
        FrameError::StrideTooSmall {
            plane: PlaneKind::Packed,
            stride: 0,
            row_bytes: 24
        }
    );
    // YUV_420_888 chroma with pixel stride 2 needs 2 * (cw - 1) + 1 bytes per row.
    let u = Plane::with_pixel_stride(&b, 6, 2);
    assert_eq!(
        Frame::yuv420(8, 4, Plane::new(&b, 8), u, Plane::new(&b, 4)).unwrap_err(),
        FrameError::StrideTooSmall {
            plane: PlaneKind::U,
            stride: 6,
            row_bytes: 7
        }
    );
    // A one-row frame needs no stride at all beyond its row.
    assert!(Frame::packed(PixelFormat::Rgb8, 8, 1, &b[..24], 0).is_ok());
}

#[test]
fn bad_pixel_strides_are_refused() {
    let b = buf(1 << 12);
    let y = Plane::new(&b, 16);
    for ps in [0, MAX_PIXEL_STRIDE + 1, usize::MAX] {
        let u = Plane::with_pixel_stride(&b, 64, ps);
        let e = Frame::yuv420(16, 4, y, u, Plane::new(&b, 8)).unwrap_err();
        assert_eq!(
            e,
            FrameError::BadPixelStride {
                plane: PlaneKind::U,
                pixel_stride: ps
            }
        );
    }
    let e = Frame::yuv420(
        16,
        4,
        Plane::with_pixel_stride(&b, 32, 2),
        Plane::new(&b, 8),
        Plane::new(&b, 8),
    )
    .unwrap_err();
    assert_eq!(
        e,
        FrameError::BadPixelStride {
            plane: PlaneKind::Y,
            pixel_stride: 2
        }
    );
}

#[test]
fn huge_strides_do_not_overflow() {
    let b = buf(64);
    let e = Frame::nv12(4, 4, Plane::new(&b, usize::MAX / 2), Plane::new(&b, 4)).unwrap_err();
    assert_eq!(
        e,
        FrameError::PlaneTooShort {
            plane: PlaneKind::Y,
            len: 64,
            needed: usize::MAX
        }
    );
}

#[test]
fn odd_sizes_round_chroma_up_for_every_yuv_format() {
    // 5x3 luma has 3x2 chroma.
    let y = buf(15);
    let c = buf(6);
    let nv = buf(12);
    assert!(Frame::nv12(5, 3, Plane::new(&y, 5), Plane::new(&nv, 6)).is_ok());
    assert!(Frame::nv21(5, 3, Plane::new(&y, 5), Plane::new(&nv, 6)).is_ok());
    let f = Frame::i420(
        5,
        3,
        Plane::new(&y, 5),
        Plane::new(&c, 3),
        Plane::new(&c, 3),
    )
    .unwrap();
    assert_eq!(f.chroma_size(), (3, 2));
    // Sized for 2x1 chroma (rounding down) is too short.
    assert_eq!(
        Frame::i420(
            5,
            3,
            Plane::new(&y, 5),
            Plane::new(&c[..2], 2),
            Plane::new(&c, 3)
        )
        .unwrap_err(),
        FrameError::StrideTooSmall {
            plane: PlaneKind::U,
            stride: 2,
            row_bytes: 3
        }
    );
    assert_eq!(
        Frame::nv12(5, 3, Plane::new(&y, 5), Plane::new(&nv[..11], 6)).unwrap_err(),
        FrameError::PlaneTooShort {
            plane: PlaneKind::Chroma,
            len: 11,
            needed: 12
        }
    );
}

#[test]
fn a_packed_constructor_refuses_planar_formats() {
    let b = buf(64);
    for f in [
        PixelFormat::Nv12,
        PixelFormat::Nv21,
        PixelFormat::I420,
        PixelFormat::Yuv420,
    ] {
        assert!(matches!(
            Frame::packed(f, 2, 2, &b, 8),
            Err(FrameError::PlaneCount { .. })
        ));
    }
}

#[test]
fn errors_never_carry_pixels() {
    let b = vec![0xABu8; 10];
    let e = Frame::packed(PixelFormat::Rgb8, 4, 4, &b, 12).unwrap_err();
    let text = format!("{e} {e:?}");
    assert!(
        !text.contains("171") && !text.to_lowercase().contains("ab,"),
        "{text}"
    );
    let f = Frame::packed(PixelFormat::Rgb8, 2, 1, &b, 6).unwrap();
    assert!(!format!("{f:?}").contains("171"));
}

/// Kills `>` -> `>=` on the width and on the height limit, and `>` -> `==` on the height limit:
/// a side of exactly MAX_DIMENSION is accepted, one more is refused even far under MAX_PIXELS.
#[test]
fn a_side_of_exactly_max_dimension_is_accepted_and_one_more_refused() {
    let side = MAX_DIMENSION as usize;
    // One row (or column) of RGBA: 16_384 * 4 = 65_536 bytes.
    let b = buf(side * 4);
    assert!(Frame::packed(PixelFormat::Rgba8, MAX_DIMENSION, 1, &b, side * 4).is_ok());
    assert!(Frame::packed(PixelFormat::Rgba8, 1, MAX_DIMENSION, &b, 4).is_ok());
    for (w, h) in [(MAX_DIMENSION + 1, 1), (1, MAX_DIMENSION + 1)] {
        assert_eq!(
            Frame::packed(PixelFormat::Rgba8, w, h, &b, 4).unwrap_err(),
            FrameError::TooLarge {
                width: w,
                height: h
            },
            "{w}x{h}"
        );
    }
}

/// Kills `>` -> `>=` on the MAX_PIXEL_STRIDE bound and `*` -> `/` in `(cols - 1) * pixel_stride`:
/// YUV_420_888 chroma at pixel stride 8 is accepted with exactly the bytes it needs.
#[test]
fn chroma_at_the_largest_pixel_stride_needs_exactly_its_bytes() {
    // 16x4 luma, 8x2 chroma: a row is (8 - 1) * 8 + 1 = 57 bytes; 2 rows at stride 64 need
    // 64 + 57 = 121 bytes.
    let b = buf(1 << 12);
    let y = Plane::new(&b, 16);
    let v = Plane::new(&b, 8);
    let u = Plane::with_pixel_stride(&b[..121], 64, MAX_PIXEL_STRIDE);
    let f = Frame::yuv420(16, 4, y, u, v).unwrap();
    assert_eq!(f.planes()[1].pixel_stride, MAX_PIXEL_STRIDE);
    let short = Plane::with_pixel_stride(&b[..120], 64, MAX_PIXEL_STRIDE);
    assert_eq!(
        Frame::yuv420(16, 4, y, short, v).unwrap_err(),
        FrameError::PlaneTooShort {
            plane: PlaneKind::U,
            len: 120,
            needed: 121
        }
    );
}

/// Kills deleting `pixel_stride: 1` / `pixel_stride: 2` from the `Plane { .., ..plane }` literals
/// of NV12/NV21 and I420: those formats imply their pixel strides, whatever the caller passed.
#[test]
fn nv12_nv21_and_i420_imply_their_pixel_strides() {
    // 4x4 luma at row stride 4, 2x2 chroma: interleaved rows of 4 bytes, or planes of 2.
    let y = buf(16);
    let c = buf(8);
    // A luma pixel stride of 3 would make a row (4 - 1) * 3 + 1 = 10 bytes, over the stride of 4.
    for f in [
        Frame::nv12(
            4,
            4,
            Plane::with_pixel_stride(&y, 4, 3),
            Plane::with_pixel_stride(&c, 4, 1),
        ),
        Frame::nv21(
            4,
            4,
            Plane::with_pixel_stride(&y, 4, 3),
            Plane::with_pixel_stride(&c, 4, 1),
        ),
    ] {
        let f = f.unwrap();
        let strides: Vec<usize> = f.planes().iter().map(|p| p.pixel_stride).collect();
        assert_eq!(strides, [1, 2], "{}", f.format());
    }
    // A chroma pixel stride of 2 would make a row (2 - 1) * 2 + 1 = 3 bytes, over the stride of 2.
    let f = Frame::i420(
        4,
        4,
        Plane::with_pixel_stride(&y, 4, 2),
        Plane::with_pixel_stride(&c[..4], 2, 2),
        Plane::with_pixel_stride(&c[4..], 2, 2),
    )
    .unwrap();
    let strides: Vec<usize> = f.planes().iter().map(|p| p.pixel_stride).collect();
    assert_eq!(strides, [1, 1, 1]);
}

/// Kills `planes` returning nothing, and deleting its NV12/NV21 or I420/YUV420 arm (which would
/// fall through to the packed formats' single plane).
#[test]
fn planes_lists_the_planes_of_each_format_in_order() {
    let y = buf(16);
    let uv = buf(8);
    let (u, v) = (buf(4), buf(5));
    let lens = |f: Frame<'_>| f.planes().iter().map(|p| p.data.len()).collect::<Vec<_>>();
    let nv12 = Frame::nv12(4, 4, Plane::new(&y, 4), Plane::new(&uv, 4)).unwrap();
    assert_eq!(lens(nv12), [16, 8]);
    let nv21 = Frame::nv21(4, 4, Plane::new(&y, 4), Plane::new(&uv, 4)).unwrap();
    assert_eq!(lens(nv21), [16, 8]);
    let i420 = Frame::i420(
        4,
        4,
        Plane::new(&y, 4),
        Plane::new(&u, 2),
        Plane::new(&v, 2),
    )
    .unwrap();
    assert_eq!(lens(i420), [16, 4, 5]);
    let yuv = Frame::yuv420(
        4,
        4,
        Plane::new(&y, 4),
        Plane::new(&u, 2),
        Plane::new(&v, 2),
    )
    .unwrap();
    assert_eq!(lens(yuv), [16, 4, 5]);
    let px = buf(2 * 2 * 3);
    let rgb = Frame::packed(PixelFormat::Rgb8, 2, 2, &px, 6).unwrap();
    assert_eq!(lens(rgb), [12]);
    assert_eq!(rgb.planes()[0].pixel_stride, 3);
}

/// Kills the accessors returning a default (`0`, `1`, `-1`, `false`, `true`, `Bt601`, `Limited`,
/// `R0`) instead of what was set, and `is_yuv` constants through the default colour range.
#[test]
fn accessors_read_back_the_defaults_and_what_was_set() {
    let y = buf(24);
    let uv = buf(12);
    let f = Frame::nv21(6, 4, Plane::new(&y, 6), Plane::new(&uv, 6)).unwrap();
    assert_eq!((f.width(), f.height()), (6, 4));
    assert_eq!(f.format(), PixelFormat::Nv21);
    assert_eq!(
        (f.matrix(), f.range()),
        (ColorMatrix::Bt601, ColorRange::Limited)
    );
    assert_eq!(
        (f.rotation(), f.mirror(), f.timestamp_us()),
        (Rotation::R0, false, 0)
    );
    let f = f
        .with_color(ColorMatrix::Bt709, ColorRange::Full)
        .with_orientation(Rotation::R270, true)
        .with_timestamp_us(1_234_567);
    assert_eq!(
        (f.matrix(), f.range()),
        (ColorMatrix::Bt709, ColorRange::Full)
    );
    assert_eq!((f.rotation(), f.mirror()), (Rotation::R270, true));
    assert_eq!(f.timestamp_us(), 1_234_567);
    assert_eq!(f.with_timestamp_us(-5).timestamp_us(), -5);
    // Packed RGB is full range by default; a YUV frame limited (above).
    let px = buf(6 * 4 * 4);
    let f = Frame::packed(PixelFormat::Bgra8, 6, 4, &px, 24).unwrap();
    assert_eq!((f.width(), f.height()), (6, 4));
    assert_eq!(f.range(), ColorRange::Full);
}

/// Kills `upright_size` returning a constant and `swaps_axes` returning a constant: a quarter turn
/// swaps width and height, a half turn does not.
#[test]
fn upright_size_swaps_the_sides_for_quarter_turns_only() {
    let px = buf(6 * 4 * 3);
    let f = Frame::packed(PixelFormat::Rgb8, 6, 4, &px, 18).unwrap();
    for (rotation, size, swaps) in [
        (Rotation::R0, (6, 4), false),
        (Rotation::R90, (4, 6), true),
        (Rotation::R180, (6, 4), false),
        (Rotation::R270, (4, 6), true),
    ] {
        assert_eq!(rotation.swaps_axes(), swaps, "{rotation:?}");
        for mirror in [false, true] {
            let g = f.with_orientation(rotation, mirror);
            assert_eq!(g.upright_size(), size, "{rotation:?} mirror={mirror}");
            // The stored size is not rotated.
            assert_eq!((g.width(), g.height()), (6, 4));
        }
    }
    // Chroma rounds each side up on its own: 7x1 has 4x1 chroma, 6x4 has 3x2.
    let y = buf(7);
    let c = buf(4);
    let f = Frame::i420(
        7,
        1,
        Plane::new(&y, 7),
        Plane::new(&c, 4),
        Plane::new(&c, 4),
    )
    .unwrap();
    assert_eq!(f.chroma_size(), (4, 1));
}

/// Kills `Rotation::from_degrees` returning `None` or `Some(R0)`, deleting any of its arms, and
/// `degrees` returning `0` or `1`.
#[test]
fn rotations_parse_from_degrees_modulo_360_and_back() {
    for (degrees, rotation) in [
        (0, Rotation::R0),
        (90, Rotation::R90),
        (180, Rotation::R180),
        (270, Rotation::R270),
        (360, Rotation::R0),
        (-90, Rotation::R270),
        (-270, Rotation::R90),
        (450, Rotation::R90),
        (-180, Rotation::R180),
    ] {
        assert_eq!(Rotation::from_degrees(degrees), Some(rotation), "{degrees}");
    }
    for degrees in [1, 45, 89, 91, 359, -1, i32::MAX, i32::MIN] {
        assert_eq!(Rotation::from_degrees(degrees), None, "{degrees}");
    }
    let degrees: Vec<u32> = Rotation::ALL.iter().map(|r| r.degrees()).collect();
    assert_eq!(degrees, [0, 90, 180, 270]);
    for r in Rotation::ALL {
        assert_eq!(Rotation::from_degrees(r.degrees() as i32), Some(r));
    }
}

/// Kills `FrameError::rotation` returning `Ok(R0)` and `FrameError::non_negative` returning
/// `Ok(0)` or `Ok(1)`: binding values are converted, and out-of-range ones named.
#[test]
fn binding_numbers_convert_or_are_out_of_range() {
    assert_eq!(FrameError::rotation(90), Ok(Rotation::R90));
    assert_eq!(FrameError::rotation(-90), Ok(Rotation::R270));
    // 900 = 2 * 360 + 180.
    assert_eq!(FrameError::rotation(900), Ok(Rotation::R180));
    assert_eq!(FrameError::rotation(-360), Ok(Rotation::R0));
    for degrees in [45, -1, i64::MAX, i64::MIN] {
        assert_eq!(
            FrameError::rotation(degrees),
            Err(FrameError::OutOfRange {
                what: "rotation degrees",
                value: degrees
            })
        );
    }
    assert_eq!(FrameError::non_negative("stride", 7), Ok(7));
    assert_eq!(FrameError::non_negative("stride", 0), Ok(0));
    assert_eq!(
        FrameError::non_negative("width", -1),
        Err(FrameError::OutOfRange {
            what: "width",
            value: -1
        })
    );
}

/// Kills `name` returning `""` or `"xyzzy"`, `from_name` returning `None` or comparing with `!=`,
/// `Display` writing nothing, and `is_yuv` / `packed_bytes_per_pixel` returning a constant or
/// losing an arm.
#[test]
fn pixel_formats_have_names_kinds_and_pixel_sizes() {
    use PixelFormat::*;
    let table = [
        (Nv21, "nv21", true, None),
        (Nv12, "nv12", true, None),
        (I420, "i420", true, None),
        (Yuv420, "yuv420", true, None),
        (Bgra8, "bgra8", false, Some(4)),
        (Rgba8, "rgba8", false, Some(4)),
        (Rgb8, "rgb8", false, Some(3)),
    ];
    assert_eq!(table.len(), PixelFormat::ALL.len());
    for (format, name, yuv, bpp) in table {
        assert_eq!(format.name(), name);
        assert_eq!(format.to_string(), name);
        assert_eq!(PixelFormat::from_name(name), Some(format));
        assert_eq!(format.is_yuv(), yuv, "{name}");
        assert_eq!(format.packed_bytes_per_pixel(), bpp, "{name}");
    }
    for unknown in ["", "NV21", "rgb", "xyzzy"] {
        assert_eq!(PixelFormat::from_name(unknown), None, "{unknown}");
    }
}

/// Kills each arithmetic mutant of `Plane::offset` (`y * row_stride + x * pixel_stride`).
#[test]
fn plane_offset_is_rows_times_row_stride_plus_samples_times_pixel_stride() {
    let b = buf(64);
    let p = Plane::with_pixel_stride(&b, 10, 2);
    // 2 * 10 + 3 * 2 = 26.
    assert_eq!(p.offset(3, 2), 26);
    assert_eq!(p.offset(0, 0), 0);
    // 1 * 10 + 0 = 10; 0 + 4 * 2 = 8.
    assert_eq!(p.offset(0, 1), 10);
    assert_eq!(p.offset(4, 0), 8);
}

/// Kills the `Debug` of `Plane` and the `Display` of `PlaneKind` writing nothing: a plane prints
/// its sizes (never its bytes), an error names its plane.
#[test]
fn planes_and_plane_kinds_print_their_sizes_and_names() {
    let b = [0xABu8; 3];
    assert_eq!(
        format!("{:?}", Plane::with_pixel_stride(&b, 4, 2)),
        "Plane { len: 3, row_stride: 4, pixel_stride: 2 }"
    );
    for (kind, name) in [
        (PlaneKind::Y, "Y"),
        (PlaneKind::U, "U"),
        (PlaneKind::V, "V"),
        (PlaneKind::Chroma, "chroma"),
        (PlaneKind::Packed, "pixel"),
    ] {
        assert_eq!(kind.to_string(), name);
    }
    let e = FrameError::PlaneTooShort {
        plane: PlaneKind::Chroma,
        len: 11,
        needed: 12,
    };
    assert_eq!(
        e.to_string(),
        "chroma plane has 11 bytes, its size and strides need 12"
    );
}

/// Kills `kr_kb` returning any constant pair, or one matrix's weights for the other: the luma
/// weights are the published ones, and the Y'CbCr to R'G'B' coefficients derived from them are
/// those of the standards' own tables.
#[test]
fn color_matrices_have_the_published_luma_weights() {
    // ITU-R BT.601: Kr = 0.299, Kb = 0.114 (Kg = 0.587). ITU-R BT.709: Kr = 0.2126, Kb = 0.0722
    // (Kg = 0.7152).
    assert_eq!(ColorMatrix::Bt601.kr_kb(), (0.299, 0.114));
    assert_eq!(ColorMatrix::Bt709.kr_kb(), (0.2126, 0.0722));
    assert_eq!(ColorMatrix::default(), ColorMatrix::Bt601);
    assert_eq!(ColorRange::default(), ColorRange::Limited);
    // Full range: R = Y + 2(1 - Kr) Cr, B = Y + 2(1 - Kb) Cb,
    // G = Y - (2 Kb (1 - Kb) / Kg) Cb - (2 Kr (1 - Kr) / Kg) Cr.
    // BT.601 (JFIF): 2 * 0.701 = 1.402; 2 * 0.886 = 1.772;
    //   0.114 * 1.772 / 0.587 = 0.202008 / 0.587 = 0.344136; 0.299 * 1.402 / 0.587 = 0.714136.
    // BT.709: 2 * 0.7874 = 1.5748; 2 * 0.9278 = 1.8556;
    //   0.0722 * 1.8556 / 0.7152 = 0.187324; 0.2126 * 1.5748 / 0.7152 = 0.468124.
    for (matrix, [r_cr, b_cb, g_cb, g_cr]) in [
        (ColorMatrix::Bt601, [1.402, 1.772, 0.344136, 0.714136]),
        (ColorMatrix::Bt709, [1.5748, 1.8556, 0.187324, 0.468124]),
    ] {
        let (kr, kb) = matrix.kr_kb();
        let kg = 1.0 - kr - kb;
        let got = [
            2.0 * (1.0 - kr),
            2.0 * (1.0 - kb),
            2.0 * kb * (1.0 - kb) / kg,
            2.0 * kr * (1.0 - kr) / kg,
        ];
        for (g, w) in got.into_iter().zip([r_cr, b_cb, g_cb, g_cr]) {
            assert!((g - w).abs() < 1e-6, "{matrix:?}: {got:?}");
        }
    }
}
