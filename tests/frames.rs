//! Frame validation: every malformed frame is refused with the right typed error, never a panic.

use prescreen_runtime::frame::{
    Frame, FrameError, PixelFormat, Plane, PlaneKind, MAX_DIMENSION, MAX_PIXEL_STRIDE,
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
