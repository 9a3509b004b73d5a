//! Owned frames in every pixel format, built from RGB pictures (with the `yuv` crate) or from I420.

use prescreen_runtime::frame::{
    ColorMatrix, ColorRange, Frame, FrameError, PixelFormat, Plane, Rotation,
};
use yuv::{
    YuvBiPlanarImageMut, YuvChromaSubsampling, YuvConversionMode, YuvPlanarImageMut, YuvRange,
    YuvStandardMatrix,
};

/// Where a plane lives in an [`OwnedFrame`]'s buffers.
#[derive(Clone, Copy, Debug)]
struct PlaneRef {
    buffer: usize,
    offset: usize,
    row_stride: usize,
    pixel_stride: usize,
}

/// A frame that owns its pixels, as a camera or decoder would hand them over.
#[derive(Clone, Debug)]
pub struct OwnedFrame {
    /// Pixel format.
    pub format: PixelFormat,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// Colour matrix (YUV formats).
    pub matrix: ColorMatrix,
    /// Colour range (YUV formats).
    pub range: ColorRange,
    /// Rotation to upright.
    pub rotation: Rotation,
    /// Capture time.
    pub timestamp_us: i64,
    buffers: Vec<Vec<u8>>,
    planes: Vec<PlaneRef>,
}

/// Errors from the `yuv` crate while building frames.
#[derive(Debug, thiserror::Error)]
#[error("yuv conversion failed: {0}")]
pub struct ConvertError(String);

fn yuv_params(matrix: ColorMatrix, range: ColorRange) -> (YuvRange, YuvStandardMatrix) {
    let r = match range {
        ColorRange::Full => YuvRange::Full,
        ColorRange::Limited => YuvRange::Limited,
    };
    let m = match matrix {
        ColorMatrix::Bt601 => YuvStandardMatrix::Bt601,
        ColorMatrix::Bt709 => YuvStandardMatrix::Bt709,
    };
    (r, m)
}

impl OwnedFrame {
    /// Encodes a packed RGB picture (`width * 3` bytes per row) into `format`. YUV formats are
    /// produced with the `yuv` crate in the given matrix and range; [`PixelFormat::Yuv420`] gets
    /// Android's usual layout (one V,U buffer seen as two planes with pixel stride 2).
    pub fn from_rgb(
        rgb: &[u8],
        width: u32,
        height: u32,
        format: PixelFormat,
        matrix: ColorMatrix,
        range: ColorRange,
    ) -> Result<Self, ConvertError> {
        let (w, h) = (width as usize, height as usize);
        let (yr, ym) = yuv_params(matrix, range);
        let err = |e: yuv::YuvError| ConvertError(e.to_string());
        let plane = |buffer, offset, row_stride, pixel_stride| PlaneRef {
            buffer,
            offset,
            row_stride,
            pixel_stride,
        };
        let (buffers, planes) = match format {
            PixelFormat::Nv12 | PixelFormat::Nv21 | PixelFormat::Yuv420 => {
                let mut img =
                    YuvBiPlanarImageMut::<u8>::alloc(width, height, YuvChromaSubsampling::Yuv420);
                let mode = YuvConversionMode::Balanced;
                if format == PixelFormat::Nv12 {
                    yuv::rgb_to_yuv_nv12(&mut img, rgb, width * 3, yr, ym, mode).map_err(err)?;
                } else {
                    yuv::rgb_to_yuv_nv21(&mut img, rgb, width * 3, yr, ym, mode).map_err(err)?;
                }
                let cs = img.uv_stride as usize;
                let bufs = vec![
                    img.y_plane.borrow().to_vec(),
                    img.uv_plane.borrow().to_vec(),
                ];
                let planes = if format == PixelFormat::Yuv420 {
                    // V,U interleaved: U starts one byte in.
                    vec![plane(0, 0, w, 1), plane(1, 1, cs, 2), plane(1, 0, cs, 2)]
                } else {
                    vec![plane(0, 0, w, 1), plane(1, 0, cs, 2)]
                };
                (bufs, planes)
            }
            PixelFormat::I420 => {
                let mut img =
                    YuvPlanarImageMut::<u8>::alloc(width, height, YuvChromaSubsampling::Yuv420);
                yuv::rgb_to_yuv420(
                    &mut img,
                    rgb,
                    width * 3,
                    yr,
                    ym,
                    YuvConversionMode::Balanced,
                )
                .map_err(err)?;
                let (us, vs) = (img.u_stride as usize, img.v_stride as usize);
                let bufs = vec![
                    img.y_plane.borrow().to_vec(),
                    img.u_plane.borrow().to_vec(),
                    img.v_plane.borrow().to_vec(),
                ];
                (
                    bufs,
                    vec![plane(0, 0, w, 1), plane(1, 0, us, 1), plane(2, 0, vs, 1)],
                )
            }
            PixelFormat::Rgb8 => (vec![rgb[..w * h * 3].to_vec()], vec![plane(0, 0, w * 3, 3)]),
            PixelFormat::Rgba8 | PixelFormat::Bgra8 => {
                let bgra = format == PixelFormat::Bgra8;
                let data = rgb[..w * h * 3]
                    .chunks_exact(3)
                    .flat_map(|p| {
                        if bgra {
                            [p[2], p[1], p[0], 255]
                        } else {
                            [p[0], p[1], p[2], 255]
                        }
                    })
                    .collect();
                (vec![data], vec![plane(0, 0, w * 4, 4)])
            }
            other => {
                return Err(ConvertError(format!(
                    "format {other} is not supported by the generator"
                )))
            }
        };
        Ok(Self {
            format,
            width,
            height,
            matrix,
            range,
            rotation: Rotation::R0,
            timestamp_us: 0,
            buffers,
            planes,
        })
    }

    /// An I420 frame from its three planes (as stored in `.y4m`).
    pub fn from_i420(
        width: u32,
        height: u32,
        y: Vec<u8>,
        u: Vec<u8>,
        v: Vec<u8>,
        range: ColorRange,
    ) -> Self {
        let cw = width.div_ceil(2) as usize;
        let planes = vec![
            PlaneRef {
                buffer: 0,
                offset: 0,
                row_stride: width as usize,
                pixel_stride: 1,
            },
            PlaneRef {
                buffer: 1,
                offset: 0,
                row_stride: cw,
                pixel_stride: 1,
            },
            PlaneRef {
                buffer: 2,
                offset: 0,
                row_stride: cw,
                pixel_stride: 1,
            },
        ];
        Self {
            format: PixelFormat::I420,
            width,
            height,
            matrix: ColorMatrix::Bt601,
            range,
            rotation: Rotation::R0,
            timestamp_us: 0,
            buffers: vec![y, u, v],
            planes,
        }
    }

    /// Total bytes of pixel data held.
    pub fn byte_len(&self) -> usize {
        self.buffers.iter().map(Vec::len).sum()
    }

    /// The validated, borrowed [`Frame`] view (this is where validation happens).
    pub fn frame(&self) -> Result<Frame<'_>, FrameError> {
        let p: Vec<Plane<'_>> = self
            .planes
            .iter()
            .map(|r| {
                Plane::with_pixel_stride(
                    &self.buffers[r.buffer][r.offset..],
                    r.row_stride,
                    r.pixel_stride,
                )
            })
            .collect();
        let (w, h) = (self.width, self.height);
        let frame = match self.format {
            PixelFormat::Nv12 => Frame::nv12(w, h, p[0], p[1])?,
            PixelFormat::Nv21 => Frame::nv21(w, h, p[0], p[1])?,
            PixelFormat::I420 => Frame::i420(w, h, p[0], p[1], p[2])?,
            PixelFormat::Yuv420 => Frame::yuv420(w, h, p[0], p[1], p[2])?,
            packed => Frame::packed(packed, w, h, p[0].data, p[0].row_stride)?,
        };
        Ok(frame
            .with_color(self.matrix, self.range)
            .with_orientation(self.rotation, false)
            .with_timestamp_us(self.timestamp_us))
    }
}

/// A rendered frame can be lent to the engine as a camera buffer (no copy on submit).
impl prescreen_runtime::stream::engine::CameraBuffer for OwnedFrame {
    fn frame(&self) -> Result<Frame<'_>, FrameError> {
        OwnedFrame::frame(self)
    }
}
