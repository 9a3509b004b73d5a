//! Camera frames: borrowed planes, pixel format, colour space, orientation and time.
//!
//! A [`Frame`] is only ever built through a constructor that validates it, so every other part of the
//! runtime may index its planes without further checks: each plane is long enough for its rows and
//! strides, sizes are non-zero and bounded, and the arithmetic on them cannot overflow.

use std::fmt;

/// Largest accepted width or height, in pixels.
pub const MAX_DIMENSION: u32 = 16_384;
/// Largest accepted number of pixels in a frame (width x height).
pub const MAX_PIXELS: u64 = 8192 * 8192;
/// Largest accepted pixel stride of a chroma plane, in bytes.
pub const MAX_PIXEL_STRIDE: usize = 8;

/// How the pixels of a frame are laid out in its planes.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PixelFormat {
    /// 4:2:0, a Y plane then one interleaved plane of V,U pairs (Android's camera default).
    Nv21,
    /// 4:2:0, a Y plane then one interleaved plane of U,V pairs (iOS bi-planar).
    Nv12,
    /// 4:2:0, three planes Y, U, V, each with pixel stride 1.
    I420,
    /// Android's `YUV_420_888`: three planes Y, U, V, chroma with any row and pixel stride.
    Yuv420,
    /// Packed 8-bit B,G,R,A (iOS `kCVPixelFormatType_32BGRA`).
    Bgra8,
    /// Packed 8-bit R,G,B,A.
    Rgba8,
    /// Packed 8-bit R,G,B.
    Rgb8,
}

impl PixelFormat {
    /// Every format, for tests and tools.
    pub const ALL: [PixelFormat; 7] = [
        PixelFormat::Nv21,
        PixelFormat::Nv12,
        PixelFormat::I420,
        PixelFormat::Yuv420,
        PixelFormat::Bgra8,
        PixelFormat::Rgba8,
        PixelFormat::Rgb8,
    ];

    /// True for the 4:2:0 formats, whose colour is carried as Y'CbCr.
    pub fn is_yuv(self) -> bool {
        matches!(self, Self::Nv21 | Self::Nv12 | Self::I420 | Self::Yuv420)
    }

    /// Bytes per pixel of a packed format, `None` for the planar ones.
    pub fn packed_bytes_per_pixel(self) -> Option<usize> {
        match self {
            Self::Bgra8 | Self::Rgba8 => Some(4),
            Self::Rgb8 => Some(3),
            _ => None,
        }
    }

    /// Short lowercase name, as used on the command line (`nv21`, `bgra8`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::Nv21 => "nv21",
            Self::Nv12 => "nv12",
            Self::I420 => "i420",
            Self::Yuv420 => "yuv420",
            Self::Bgra8 => "bgra8",
            Self::Rgba8 => "rgba8",
            Self::Rgb8 => "rgb8",
        }
    }

    /// Parses [`PixelFormat::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }
}

impl fmt::Display for PixelFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The Y'CbCr to R'G'B' matrix of a YUV frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ColorMatrix {
    /// ITU-R BT.601 (SD video, JPEG, most Android camera output).
    #[default]
    Bt601,
    /// ITU-R BT.709 (HD video, iOS camera output).
    Bt709,
}

impl ColorMatrix {
    /// The luma weights (Kr, Kb) of the matrix.
    pub fn kr_kb(self) -> (f64, f64) {
        match self {
            Self::Bt601 => (0.299, 0.114),
            Self::Bt709 => (0.2126, 0.0722),
        }
    }
}

/// Whether YUV samples use the full 0..=255 range or the video ("limited") 16..=235/240 range.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ColorRange {
    /// Y in 16..=235, Cb and Cr in 16..=240 (video range).
    #[default]
    Limited,
    /// Y, Cb and Cr in 0..=255 (JPEG / full range).
    Full,
}

/// Clockwise rotation that turns the frame as stored into the upright picture.
///
/// This is Android's `ImageInfo.rotationDegrees`: a sensor mounted sideways delivers frames that
/// must be rotated by 90 degrees clockwise to be seen upright.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Rotation {
    /// Already upright.
    #[default]
    R0,
    /// Rotate 90 degrees clockwise.
    R90,
    /// Rotate 180 degrees.
    R180,
    /// Rotate 270 degrees clockwise (90 counter-clockwise).
    R270,
}

impl Rotation {
    /// All four rotations.
    pub const ALL: [Rotation; 4] = [Rotation::R0, Rotation::R90, Rotation::R180, Rotation::R270];

    /// From degrees: 0, 90, 180 or 270 (also -90, 360, ... normalised); `None` otherwise.
    pub fn from_degrees(degrees: i32) -> Option<Self> {
        match degrees.rem_euclid(360) {
            0 => Some(Self::R0),
            90 => Some(Self::R90),
            180 => Some(Self::R180),
            270 => Some(Self::R270),
            _ => None,
        }
    }

    /// The rotation in degrees clockwise.
    pub fn degrees(self) -> u32 {
        match self {
            Self::R0 => 0,
            Self::R90 => 90,
            Self::R180 => 180,
            Self::R270 => 270,
        }
    }

    /// True when the rotation swaps width and height.
    pub fn swaps_axes(self) -> bool {
        matches!(self, Self::R90 | Self::R270)
    }
}

/// Which plane of a frame an error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PlaneKind {
    /// The luma plane.
    Y,
    /// The Cb plane.
    U,
    /// The Cr plane.
    V,
    /// An interleaved chroma plane (NV12/NV21).
    Chroma,
    /// The single plane of a packed RGB format.
    Packed,
}

impl fmt::Display for PlaneKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Y => "Y",
            Self::U => "U",
            Self::V => "V",
            Self::Chroma => "chroma",
            Self::Packed => "pixel",
        })
    }
}

/// Why a frame was rejected. Small and `Copy`; its text names sizes and planes, never pixel data.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Width or height is zero.
    #[error("frame size {width}x{height} has a zero dimension")]
    ZeroSize {
        /// Width given.
        width: u32,
        /// Height given.
        height: u32,
    },
    /// Width, height or pixel count beyond [`MAX_DIMENSION`] / [`MAX_PIXELS`].
    #[error("frame size {width}x{height} exceeds the limit ({MAX_DIMENSION} per side, {MAX_PIXELS} pixels)")]
    TooLarge {
        /// Width given.
        width: u32,
        /// Height given.
        height: u32,
    },
    /// The format needs a different number of planes.
    #[error("{format} frames have {expected} plane(s), got {got}")]
    PlaneCount {
        /// Format of the frame.
        format: PixelFormat,
        /// Planes the format has.
        expected: usize,
        /// Planes given.
        got: usize,
    },
    /// A row stride is shorter than the row it must hold.
    #[error("{plane} plane row stride {stride} is smaller than its row of {row_bytes} bytes")]
    StrideTooSmall {
        /// The plane.
        plane: PlaneKind,
        /// Row stride given, in bytes.
        stride: usize,
        /// Bytes one row needs.
        row_bytes: usize,
    },
    /// A pixel stride is zero or larger than [`MAX_PIXEL_STRIDE`], or wrong for the format.
    #[error("{plane} plane pixel stride {pixel_stride} is not supported here")]
    BadPixelStride {
        /// The plane.
        plane: PlaneKind,
        /// Pixel stride given, in bytes.
        pixel_stride: usize,
    },
    /// A plane is shorter than its rows and strides need.
    #[error("{plane} plane has {len} bytes, its size and strides need {needed}")]
    PlaneTooShort {
        /// The plane.
        plane: PlaneKind,
        /// Bytes given.
        len: usize,
        /// Bytes needed.
        needed: usize,
    },
    /// A binding could not reach a plane's memory (a null buffer, or a Java heap `ByteBuffer`
    /// where a direct one is needed).
    #[error("{plane} plane: {reason}")]
    PlaneUnavailable {
        /// The plane.
        plane: PlaneKind,
        /// Why (a fixed description, never buffer contents).
        reason: &'static str,
    },
    /// A number describing the frame is out of range (a negative size or stride, a rotation that
    /// is not a multiple of 90 degrees, an unknown colour code), as passed through a binding.
    #[error("{what} {value} is out of range")]
    OutOfRange {
        /// What the number describes.
        what: &'static str,
        /// The number given.
        value: i64,
    },
}

impl FrameError {
    /// A size, stride or count given as a signed integer by a binding, as a `usize`; a negative
    /// value is [`FrameError::OutOfRange`].
    pub fn non_negative(what: &'static str, value: i64) -> Result<usize, FrameError> {
        usize::try_from(value).map_err(|_| FrameError::OutOfRange { what, value })
    }

    /// A rotation in degrees as a binding passes it (0, 90, 180, 270; also -90 and 360 style
    /// values, taken modulo 360); anything else is [`FrameError::OutOfRange`].
    pub fn rotation(degrees: i64) -> Result<Rotation, FrameError> {
        i32::try_from(degrees.rem_euclid(360))
            .ok()
            .and_then(Rotation::from_degrees)
            .ok_or(FrameError::OutOfRange {
                what: "rotation degrees",
                value: degrees,
            })
    }
}

/// One borrowed plane of a frame: bytes, the distance between rows, the distance between samples.
#[derive(Clone, Copy)]
pub struct Plane<'a> {
    /// The bytes of the plane, starting at its first sample.
    pub data: &'a [u8],
    /// Bytes from the start of one row to the start of the next.
    pub row_stride: usize,
    /// Bytes from one sample (or pixel, for packed formats) to the next within a row.
    pub pixel_stride: usize,
}

impl<'a> Plane<'a> {
    /// A plane whose samples are adjacent (pixel stride 1).
    pub fn new(data: &'a [u8], row_stride: usize) -> Self {
        Self {
            data,
            row_stride,
            pixel_stride: 1,
        }
    }

    /// A plane with an explicit pixel stride (Android's `Image.Plane.getPixelStride()`).
    pub fn with_pixel_stride(data: &'a [u8], row_stride: usize, pixel_stride: usize) -> Self {
        Self {
            data,
            row_stride,
            pixel_stride,
        }
    }

    /// Byte offset of sample `(x, y)`. Valid for any sample inside a validated frame.
    #[inline(always)]
    pub fn offset(&self, x: usize, y: usize) -> usize {
        y * self.row_stride + x * self.pixel_stride
    }
}

impl fmt::Debug for Plane<'_> {
    // Never print the bytes: they are pixels of a user's camera.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plane")
            .field("len", &self.data.len())
            .field("row_stride", &self.row_stride)
            .field("pixel_stride", &self.pixel_stride)
            .finish()
    }
}

/// A validated camera frame with borrowed planes.
///
/// Build one with [`Frame::nv21`], [`Frame::nv12`], [`Frame::i420`], [`Frame::yuv420`] or
/// [`Frame::packed`]; then set colour, orientation and time with the `with_*` methods.
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    width: u32,
    height: u32,
    format: PixelFormat,
    planes: [Plane<'a>; 3],
    matrix: ColorMatrix,
    range: ColorRange,
    rotation: Rotation,
    mirror: bool,
    timestamp_us: i64,
}

const EMPTY: Plane<'static> = Plane {
    data: &[],
    row_stride: 0,
    pixel_stride: 0,
};

impl<'a> Frame<'a> {
    /// An NV21 frame: a Y plane and an interleaved V,U plane (pixel stride 2 implied).
    pub fn nv21(width: u32, height: u32, y: Plane<'a>, vu: Plane<'a>) -> Result<Self, FrameError> {
        Self::semi_planar(PixelFormat::Nv21, width, height, y, vu)
    }

    /// An NV12 frame: a Y plane and an interleaved U,V plane (pixel stride 2 implied).
    pub fn nv12(width: u32, height: u32, y: Plane<'a>, uv: Plane<'a>) -> Result<Self, FrameError> {
        Self::semi_planar(PixelFormat::Nv12, width, height, y, uv)
    }

    fn semi_planar(
        format: PixelFormat,
        width: u32,
        height: u32,
        y: Plane<'a>,
        chroma: Plane<'a>,
    ) -> Result<Self, FrameError> {
        let (w, h) = check_size(width, height)?;
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let y = Plane {
            pixel_stride: 1,
            ..y
        };
        let chroma = Plane {
            pixel_stride: 2,
            ..chroma
        };
        check_plane(PlaneKind::Y, &y, w, h, 1)?;
        check_plane(PlaneKind::Chroma, &chroma, cw, ch, 2)?;
        Ok(Self::assemble(width, height, format, [y, chroma, EMPTY]))
    }

    /// An I420 frame: Y, U and V planes, each with pixel stride 1.
    pub fn i420(
        width: u32,
        height: u32,
        y: Plane<'a>,
        u: Plane<'a>,
        v: Plane<'a>,
    ) -> Result<Self, FrameError> {
        let (w, h) = check_size(width, height)?;
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let [y, u, v] = [y, u, v].map(|p| Plane {
            pixel_stride: 1,
            ..p
        });
        check_plane(PlaneKind::Y, &y, w, h, 1)?;
        check_plane(PlaneKind::U, &u, cw, ch, 1)?;
        check_plane(PlaneKind::V, &v, cw, ch, 1)?;
        Ok(Self::assemble(width, height, PixelFormat::I420, [y, u, v]))
    }

    /// Android's `YUV_420_888`: three planes with their own row strides; the chroma planes may
    /// have any pixel stride from 1 to [`MAX_PIXEL_STRIDE`] (Android reports 1 or 2). The planes may
    /// be views into one shared buffer (interleaved chroma), which is fine: they are only read.
    pub fn yuv420(
        width: u32,
        height: u32,
        y: Plane<'a>,
        u: Plane<'a>,
        v: Plane<'a>,
    ) -> Result<Self, FrameError> {
        let (w, h) = check_size(width, height)?;
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        if y.pixel_stride != 1 {
            return Err(FrameError::BadPixelStride {
                plane: PlaneKind::Y,
                pixel_stride: y.pixel_stride,
            });
        }
        check_plane(PlaneKind::Y, &y, w, h, 1)?;
        check_plane(PlaneKind::U, &u, cw, ch, 1)?;
        check_plane(PlaneKind::V, &v, cw, ch, 1)?;
        Ok(Self::assemble(
            width,
            height,
            PixelFormat::Yuv420,
            [y, u, v],
        ))
    }

    /// A packed RGB-family frame ([`PixelFormat::Bgra8`], [`PixelFormat::Rgba8`],
    /// [`PixelFormat::Rgb8`]) with the given row stride in bytes.
    pub fn packed(
        format: PixelFormat,
        width: u32,
        height: u32,
        data: &'a [u8],
        row_stride: usize,
    ) -> Result<Self, FrameError> {
        let bpp = format
            .packed_bytes_per_pixel()
            .ok_or(FrameError::PlaneCount {
                format,
                expected: if matches!(format, PixelFormat::Nv12 | PixelFormat::Nv21) {
                    2
                } else {
                    3
                },
                got: 1,
            })?;
        let (w, h) = check_size(width, height)?;
        let plane = Plane {
            data,
            row_stride,
            pixel_stride: bpp,
        };
        check_plane(PlaneKind::Packed, &plane, w, h, bpp)?;
        Ok(Self::assemble(width, height, format, [plane, EMPTY, EMPTY]))
    }

    fn assemble(width: u32, height: u32, format: PixelFormat, planes: [Plane<'a>; 3]) -> Self {
        Self {
            width,
            height,
            format,
            planes,
            matrix: ColorMatrix::default(),
            range: if format.is_yuv() {
                ColorRange::Limited
            } else {
                ColorRange::Full
            },
            rotation: Rotation::R0,
            mirror: false,
            timestamp_us: 0,
        }
    }

    /// Sets the colour matrix and range (used by the YUV formats; ignored by packed RGB).
    pub fn with_color(mut self, matrix: ColorMatrix, range: ColorRange) -> Self {
        self.matrix = matrix;
        self.range = range;
        self
    }

    /// Sets the rotation that makes the frame upright and whether to mirror it afterwards
    /// (front cameras): the model sees the rotated, then horizontally flipped, picture.
    pub fn with_orientation(mut self, rotation: Rotation, mirror: bool) -> Self {
        self.rotation = rotation;
        self.mirror = mirror;
        self
    }

    /// Sets the capture time, in microseconds on a monotonic clock.
    pub fn with_timestamp_us(mut self, timestamp_us: i64) -> Self {
        self.timestamp_us = timestamp_us;
        self
    }

    /// Width as stored, in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }
    /// Height as stored, in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }
    /// Width and height of the upright picture (after rotation).
    pub fn upright_size(&self) -> (u32, u32) {
        if self.rotation.swaps_axes() {
            (self.height, self.width)
        } else {
            (self.width, self.height)
        }
    }
    /// The pixel format.
    pub fn format(&self) -> PixelFormat {
        self.format
    }
    /// The colour matrix (YUV formats).
    pub fn matrix(&self) -> ColorMatrix {
        self.matrix
    }
    /// The colour range (YUV formats).
    pub fn range(&self) -> ColorRange {
        self.range
    }
    /// The rotation to upright.
    pub fn rotation(&self) -> Rotation {
        self.rotation
    }
    /// Whether the upright picture is mirrored horizontally.
    pub fn mirror(&self) -> bool {
        self.mirror
    }
    /// Capture time in microseconds.
    pub fn timestamp_us(&self) -> i64 {
        self.timestamp_us
    }
    /// The planes: `[Y, UV/VU, -]` for NV12/NV21, `[Y, U, V]` for I420/YUV420, `[pixels, -, -]` for
    /// packed formats.
    pub fn planes(&self) -> &[Plane<'a>] {
        match self.format {
            PixelFormat::Nv12 | PixelFormat::Nv21 => &self.planes[..2],
            PixelFormat::I420 | PixelFormat::Yuv420 => &self.planes[..3],
            _ => &self.planes[..1],
        }
    }
    /// Width and height of the chroma planes of a 4:2:0 frame (rounded up for odd sizes).
    pub fn chroma_size(&self) -> (u32, u32) {
        (self.width.div_ceil(2), self.height.div_ceil(2))
    }
}

fn check_size(width: u32, height: u32) -> Result<(usize, usize), FrameError> {
    if width == 0 || height == 0 {
        return Err(FrameError::ZeroSize { width, height });
    }
    if width > MAX_DIMENSION || height > MAX_DIMENSION || width as u64 * height as u64 > MAX_PIXELS
    {
        return Err(FrameError::TooLarge { width, height });
    }
    Ok((width as usize, height as usize))
}

/// Checks that `plane` holds `rows` rows of `cols` samples of `sample_bytes` bytes, with its strides.
/// The last row need not be padded to the full row stride (Android's buffers often end early).
fn check_plane(
    kind: PlaneKind,
    plane: &Plane<'_>,
    cols: usize,
    rows: usize,
    sample_bytes: usize,
) -> Result<(), FrameError> {
    if plane.pixel_stride < sample_bytes || plane.pixel_stride > MAX_PIXEL_STRIDE.max(sample_bytes)
    {
        return Err(FrameError::BadPixelStride {
            plane: kind,
            pixel_stride: plane.pixel_stride,
        });
    }
    // Sizes are bounded by MAX_DIMENSION and MAX_PIXEL_STRIDE, so these products cannot overflow.
    let row_bytes = (cols - 1) * plane.pixel_stride + sample_bytes;
    if rows > 1 && plane.row_stride < row_bytes {
        return Err(FrameError::StrideTooSmall {
            plane: kind,
            stride: plane.row_stride,
            row_bytes,
        });
    }
    let needed = (rows - 1)
        .checked_mul(plane.row_stride)
        .and_then(|n| n.checked_add(row_bytes))
        .unwrap_or(usize::MAX);
    if plane.data.len() < needed {
        return Err(FrameError::PlaneTooShort {
            plane: kind,
            len: plane.data.len(),
            needed,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_sizes_round_chroma_up() {
        let y = vec![0u8; 5 * 3];
        let uv = vec![0u8; 6 * 2];
        let f = Frame::nv12(5, 3, Plane::new(&y, 5), Plane::new(&uv, 6)).unwrap();
        assert_eq!(f.chroma_size(), (3, 2));
        let short = vec![0u8; 6 * 2 - 1];
        assert_eq!(
            Frame::nv12(5, 3, Plane::new(&y, 5), Plane::new(&short, 6)).unwrap_err(),
            FrameError::PlaneTooShort {
                plane: PlaneKind::Chroma,
                len: 11,
                needed: 12
            }
        );
    }

    /// Kills `>` -> `>=` on each limit of `check_size` (a side of exactly `MAX_DIMENSION`, a count
    /// of exactly `MAX_PIXELS`) and `>` -> `==` on the height (one row past, under the pixel limit).
    #[test]
    fn sizes_at_each_limit_are_accepted_and_one_past_refused() {
        // 8192 * 8192 = 67_108_864 = MAX_PIXELS; 16_384 * 4_096 = 67_108_864 as well.
        for (w, h) in [
            (MAX_DIMENSION, 1),
            (1, MAX_DIMENSION),
            (8192, 8192),
            (MAX_DIMENSION, 4096),
            (4096, MAX_DIMENSION),
        ] {
            assert_eq!(check_size(w, h), Ok((w as usize, h as usize)), "{w}x{h}");
        }
        // 16_385 on one side is only 16_385 pixels: refused by the side limit alone.
        // 8192 * 8193 = 67_117_056 and 16_384 * 4_097 = 67_125_248: over MAX_PIXELS, sides within.
        for (w, h) in [
            (MAX_DIMENSION + 1, 1),
            (1, MAX_DIMENSION + 1),
            (8192, 8193),
            (8193, 8192),
            (MAX_DIMENSION, 4097),
        ] {
            assert_eq!(
                check_size(w, h),
                Err(FrameError::TooLarge {
                    width: w,
                    height: h
                }),
                "{w}x{h}"
            );
        }
    }

    /// Kills each arithmetic mutant of `row_bytes = (cols - 1) * pixel_stride + sample_bytes` and
    /// `needed = (rows - 1) * row_stride + row_bytes`, with a sample of 2 bytes (so `+ sample_bytes`
    /// differs from `* sample_bytes`), and `<` -> `<=` on the stride and length checks.
    #[test]
    fn check_plane_needs_exactly_its_rows_and_strides() {
        // 5 samples of 2 bytes at pixel stride 3: (5 - 1) * 3 + 2 = 14 bytes a row.
        // 4 rows at row stride 16: (4 - 1) * 16 + 14 = 62 bytes.
        let b = [0u8; 64];
        let plane =
            |len: usize, row_stride: usize| Plane::with_pixel_stride(&b[..len], row_stride, 3);
        assert_eq!(
            check_plane(PlaneKind::Packed, &plane(62, 16), 5, 4, 2),
            Ok(())
        );
        assert_eq!(
            check_plane(PlaneKind::Packed, &plane(61, 16), 5, 4, 2),
            Err(FrameError::PlaneTooShort {
                plane: PlaneKind::Packed,
                len: 61,
                needed: 62
            })
        );
        // A row stride equal to the row is enough: 3 * 14 + 14 = 56 bytes; one less is not.
        assert_eq!(
            check_plane(PlaneKind::Packed, &plane(56, 14), 5, 4, 2),
            Ok(())
        );
        assert_eq!(
            check_plane(PlaneKind::Packed, &plane(64, 13), 5, 4, 2),
            Err(FrameError::StrideTooSmall {
                plane: PlaneKind::Packed,
                stride: 13,
                row_bytes: 14
            })
        );
        // One row: no stride needed, exactly the row's 14 bytes.
        assert_eq!(
            check_plane(PlaneKind::Packed, &plane(14, 0), 5, 1, 2),
            Ok(())
        );
    }

    /// Kills `<` -> `<=` on `pixel_stride < sample_bytes` and `>` -> `>=` on the `MAX_PIXEL_STRIDE`
    /// bound: a pixel stride equal to the sample size and one equal to the limit are accepted.
    #[test]
    fn pixel_strides_from_the_sample_size_to_the_limit_are_accepted() {
        let b = [0u8; 64];
        // One row of 5 samples of 2 bytes needs (5 - 1) * ps + 2 bytes: 10 at ps 2, 34 at ps 8.
        for (ps, ok) in [
            (0, false),
            (1, false),
            (2, true),
            (MAX_PIXEL_STRIDE, true),
            (9, false),
        ] {
            let p = Plane::with_pixel_stride(&b, 0, ps);
            let got = check_plane(PlaneKind::U, &p, 5, 1, 2);
            if ok {
                assert_eq!(got, Ok(()), "pixel stride {ps}");
            } else {
                assert_eq!(
                    got,
                    Err(FrameError::BadPixelStride {
                        plane: PlaneKind::U,
                        pixel_stride: ps
                    }),
                    "pixel stride {ps}"
                );
            }
        }
    }

    #[test]
    fn last_row_may_be_short() {
        // Android: chroma of YUV_420_888 with pixel stride 2 shares one buffer, the second plane
        // starting one byte in, and the last row is not padded: 2x2 chroma needs 8 + 3 bytes per
        // plane, 12 in all.
        let y = vec![0u8; 4 * 4];
        let buf = vec![0u8; 8 + 4];
        let v = Plane::with_pixel_stride(&buf, 8, 2);
        let u = Plane::with_pixel_stride(&buf[1..], 8, 2);
        assert!(Frame::yuv420(4, 4, Plane::new(&y, 4), u, v).is_ok());
        let short = Plane::with_pixel_stride(&buf[1..11], 8, 2);
        assert_eq!(
            Frame::yuv420(4, 4, Plane::new(&y, 4), short, v).unwrap_err(),
            FrameError::PlaneTooShort {
                plane: PlaneKind::U,
                len: 10,
                needed: 11
            }
        );
    }
}
