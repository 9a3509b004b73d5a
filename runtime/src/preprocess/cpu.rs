//! The CPU backend: fast_image_resize for the resampling, one fused pass for the rest.
//!
//! Work is done at the output's resolution: the planes are resampled straight from the camera's
//! buffers to the tensor's size (only the source box is read), and colour conversion, rotation,
//! mirror, channel order, normalisation and layout happen in one pass over the ~50k output pixels.
//!
//! * Packed RGB formats are resampled in 8 bits, as PIL does (the model's reference preprocessing),
//!   so scores match the reference pipeline on photographs.
//! * YUV planes are widened to 16 bits and each is resampled on its own grid (chroma at half
//!   resolution, centred siting), then converted in `f32`: no 8-bit rounding between the resample and
//!   the colour matrix, whose chroma gain would otherwise double the error.
//!
//! All buffers are owned by the [`CpuPreprocessor`] and reused, so a stream of same-sized frames does
//! not allocate.

use fast_image_resize as fr;
use fr::images::{TypedImage, TypedImageRef};
use fr::pixels::{U8x3, U8x4, U16};
use fr::{ImageView, ResizeAlg, ResizeOptions};

use super::color::YuvToRgb;
use super::geometry::{BoxF, Plan};
use super::{write_padding, TensorWriter};
use crate::error::{Error, Result};
use crate::frame::{Frame, PixelFormat, Plane};
use crate::manifest::{Filter, InputSpec};

/// Turns frames into model input on the CPU. Keep one per worker: it owns reusable buffers.
pub struct CpuPreprocessor {
    spec: InputSpec,
    writer: TensorWriter,
    resizer: fr::Resizer,
    luma: Vec<U16>,
    chroma: [Vec<U16>; 2],
    luma_out: Vec<U16>,
    chroma_out: [Vec<U16>; 2],
    rgb_rows: Vec<U8x3>,
    rgba_rows: Vec<U8x4>,
    channels: PilScratch,
}

/// Buffers of the 16-bit vertical pass of [`resize_like_pil`].
#[derive(Default)]
struct PilScratch {
    rows: [Vec<U16>; 3],
    out: [Vec<U16>; 3],
}

impl std::fmt::Debug for CpuPreprocessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CpuPreprocessor")
            .field("input", &self.spec.name)
            .finish_non_exhaustive()
    }
}

impl CpuPreprocessor {
    /// A preprocessor for the model input `spec`.
    pub fn new(spec: &InputSpec) -> Self {
        Self {
            spec: spec.clone(),
            writer: TensorWriter::new(spec),
            resizer: fr::Resizer::new(),
            luma: Vec::new(),
            chroma: [Vec::new(), Vec::new()],
            luma_out: Vec::new(),
            chroma_out: [Vec::new(), Vec::new()],
            rgb_rows: Vec::new(),
            rgba_rows: Vec::new(),
            channels: PilScratch::default(),
        }
    }

    /// The input this preprocessor produces.
    pub fn spec(&self) -> &InputSpec {
        &self.spec
    }

    /// Writes the model input for `frame` into `out` (length [`InputSpec::len`]).
    pub fn run(&mut self, frame: &Frame<'_>, out: &mut [f32]) -> Result<()> {
        if out.len() != self.spec.len() {
            return Err(Error::TensorSize {
                expected: self.spec.len(),
                got: out.len(),
            });
        }
        let plan = Plan::new(&self.spec, frame);
        if plan.has_padding() {
            write_padding(&self.spec, &self.writer, &plan, out);
        }
        // Camera alpha carries nothing: never premultiply by it (fast_image_resize does by default).
        let options = ResizeOptions::new()
            .resize_alg(resize_alg(self.spec.resize.filter))
            .use_alpha(false);
        let (rw, rh) = (plan.resized_w, plan.resized_h);
        let n = rw as usize * rh as usize;
        let planes = frame.planes();
        let writer = self.writer;
        match frame.format() {
            PixelFormat::Rgb8 => {
                let src = Strided::<U8x3>::new(&planes[0], frame.width(), frame.height());
                let [r, g, b] = resize_like_pil(
                    &mut self.resizer,
                    &src,
                    &mut self.rgb_rows,
                    &mut self.channels,
                    &plan,
                    options,
                    |p: &U8x3| p.0,
                    [0, 1, 2],
                )?;
                writer.write_rgb(&plan, out, |i| [r[i], g[i], b[i]].map(round_to_u8_level));
            }
            PixelFormat::Rgba8 | PixelFormat::Bgra8 => {
                let src = Strided::<U8x4>::new(&planes[0], frame.width(), frame.height());
                let order = if frame.format() == PixelFormat::Bgra8 {
                    [2, 1, 0]
                } else {
                    [0, 1, 2]
                };
                let [r, g, b] = resize_like_pil(
                    &mut self.resizer,
                    &src,
                    &mut self.rgba_rows,
                    &mut self.channels,
                    &plan,
                    options,
                    |p: &U8x4| p.0,
                    order,
                )?;
                writer.write_rgb(&plan, out, |i| [r[i], g[i], b[i]].map(round_to_u8_level));
            }
            _ => {
                let (w, h) = (frame.width(), frame.height());
                widen_luma(&planes[0], w as usize, h as usize, &mut self.luma);
                let (cw, ch) = frame.chroma_size();
                gather_chroma(frame, cw as usize, ch as usize, &mut self.chroma);
                let src = TypedImageRef::new(w, h, &self.luma).map_err(resize_err)?;
                let ys = resize_into(
                    &mut self.resizer,
                    &src,
                    &mut self.luma_out,
                    rw,
                    rh,
                    plan.src,
                    options,
                )?;
                // U and V are resampled as two 1-channel images: fast_image_resize 6.1's 2-channel
                // 16-bit convolution was measured to be off by up to 2 levels in its first channel.
                let [cu, cv] = &mut self.chroma_out;
                let src = TypedImageRef::new(cw, ch, &self.chroma[0]).map_err(resize_err)?;
                let us = resize_into(
                    &mut self.resizer,
                    &src,
                    cu,
                    rw,
                    rh,
                    plan.src.half(),
                    options,
                )?;
                let src = TypedImageRef::new(cw, ch, &self.chroma[1]).map_err(resize_err)?;
                let vs = resize_into(
                    &mut self.resizer,
                    &src,
                    cv,
                    rw,
                    rh,
                    plan.src.half(),
                    options,
                )?;
                debug_assert_eq!((ys.len(), us.len(), vs.len()), (n, n, n));
                let conv = YuvToRgb::new(frame.matrix(), frame.range());
                const SCALE: f32 = 1.0 / 256.0;
                self.writer.write_rgb(&plan, out, |i| {
                    conv.convert(
                        ys[i].0 as f32 * SCALE,
                        us[i].0 as f32 * SCALE,
                        vs[i].0 as f32 * SCALE,
                    )
                });
            }
        }
        Ok(())
    }
}

/// A 16-bit sample of the vertical pass rounded to the 8-bit level PIL would store, as `f32`.
#[inline(always)]
fn round_to_u8_level(v: U16) -> f32 {
    ((v.0 as u32 + 128) >> 8).min(255) as f32
}

/// Pixel types whose channels can be split into planes.
trait Channels: fr::PixelTrait {
    type Array: AsRef<[u8]>;
}
impl Channels for U8x3 {
    type Array = [u8; 3];
}
impl Channels for U8x4 {
    type Array = [u8; 4];
}

/// Resamples packed 8-bit pixels as PIL does: a horizontal pass over the rows the vertical filter
/// needs, stored in 8 bits, then a vertical pass (done here in 16 bits per channel and rounded
/// once, so only one pass carries fast_image_resize's 16-bit-coefficient rounding). Returns the
/// R, G and B planes (`order` gives their byte positions in a pixel).
///
/// fast_image_resize alone runs the vertical pass first for 8-bit pixels, which rounds
/// differently from PIL in ~15% of the values; each call below is a one-axis resize (the other
/// axis keeps its size and an integer offset, so it is copied).
#[allow(clippy::too_many_arguments)]
fn resize_like_pil<'b, P: Channels>(
    resizer: &mut fr::Resizer,
    src: &impl ImageView<Pixel = P>,
    rows: &mut Vec<P>,
    scratch: &'b mut PilScratch,
    plan: &Plan,
    options: ResizeOptions,
    bytes: impl Fn(&P) -> P::Array,
    order: [usize; 3],
) -> Result<[&'b [U16]; 3]> {
    let (rw, rh) = (plan.resized_w, plan.resized_h);
    let b = plan.src;
    // Rows any output row's window can touch: the box plus the filter's reach (support 1,
    // widened by the scale when shrinking), clamped to the picture.
    let reach = (b.height / rh as f64).max(1.0) + 1.0;
    let first = (b.top - reach).floor().max(0.0) as u32;
    let end = ((b.top + b.height + reach).ceil() as u32).min(src.height());
    let n = end - first;
    let wide = BoxF {
        left: b.left,
        top: first as f64,
        width: b.width,
        height: n as f64,
    };
    let horizontal = resize_into(resizer, src, rows, rw, n, wide, options)?;
    for (k, plane) in scratch.rows.iter_mut().enumerate() {
        plane.clear();
        plane.extend(
            horizontal
                .iter()
                .map(|p| U16::new((bytes(p).as_ref()[order[k]] as u16) << 8)),
        );
    }
    let tall = BoxF {
        left: 0.0,
        top: b.top - first as f64,
        width: rw as f64,
        height: b.height,
    };
    let [o0, o1, o2] = &mut scratch.out;
    let mut planes = [&[][..]; 3];
    for (k, out) in [o0, o1, o2].into_iter().enumerate() {
        let view = TypedImageRef::new(rw, n, &scratch.rows[k]).map_err(resize_err)?;
        planes[k] = resize_into(resizer, &view, out, rw, rh, tall, options)?;
    }
    Ok(planes)
}

fn resize_alg(filter: Filter) -> ResizeAlg {
    match filter {
        Filter::Bilinear => ResizeAlg::Convolution(fr::FilterType::Bilinear),
    }
}

fn resize_err(e: impl std::fmt::Display) -> Error {
    Error::Preprocess(format!("resize: {e}"))
}

/// Resamples `src`'s box into `buf` (grown as needed, reused) as a `w` x `h` picture; returns it.
fn resize_into<'b, P: fr::PixelTrait>(
    resizer: &mut fr::Resizer,
    src: &impl ImageView<Pixel = P>,
    buf: &'b mut Vec<P>,
    w: u32,
    h: u32,
    b: BoxF,
    options: ResizeOptions,
) -> Result<&'b [P]> {
    let n = w as usize * h as usize;
    if buf.len() < n {
        buf.resize(n, P::default());
    }
    let mut dst = TypedImage::from_pixels_slice(w, h, &mut buf[..n]).map_err(resize_err)?;
    let options = options.crop(b.left, b.top, b.width, b.height);
    resizer
        .resize_typed(src, &mut dst, &options)
        .map_err(resize_err)?;
    Ok(&buf[..n])
}

/// Luma widened to 16 bits (`y << 8`), contiguous.
fn widen_luma(y: &Plane<'_>, w: usize, h: usize, out: &mut Vec<U16>) {
    out.clear();
    out.reserve(w * h);
    for row in 0..h {
        let start = row * y.row_stride;
        out.extend(
            y.data[start..start + w]
                .iter()
                .map(|&v| U16::new((v as u16) << 8)),
        );
    }
}

/// Chroma of any 4:2:0 layout as two contiguous 16-bit planes (U, V).
fn gather_chroma(frame: &Frame<'_>, cw: usize, ch: usize, out: &mut [Vec<U16>; 2]) {
    let [ou, ov] = out;
    for o in [&mut *ou, &mut *ov] {
        o.clear();
        o.reserve(cw * ch);
    }
    let wide = |v: u8| U16::new((v as u16) << 8);
    let planes = frame.planes();
    for row in 0..ch {
        match frame.format() {
            PixelFormat::Nv12 | PixelFormat::Nv21 => {
                let p = &planes[1];
                let start = row * p.row_stride;
                let line = &p.data[start..start + 2 * cw];
                let (ku, kv) = if frame.format() == PixelFormat::Nv12 {
                    (0, 1)
                } else {
                    (1, 0)
                };
                ou.extend(line.chunks_exact(2).map(|c| wide(c[ku])));
                ov.extend(line.chunks_exact(2).map(|c| wide(c[kv])));
            }
            _ => {
                for (plane, o) in [(&planes[1], &mut *ou), (&planes[2], &mut *ov)] {
                    let start = row * plane.row_stride;
                    if plane.pixel_stride == 1 {
                        o.extend(plane.data[start..start + cw].iter().map(|&v| wide(v)));
                    } else {
                        o.extend((0..cw).map(|x| wide(plane.data[plane.offset(x, row)])));
                    }
                }
            }
        }
    }
}

/// A borrowed packed plane seen as an image of `P` pixels, rows `row_stride` bytes apart.
struct Strided<'a, P> {
    data: &'a [u8],
    row_stride: usize,
    width: u32,
    height: u32,
    _pixel: std::marker::PhantomData<P>,
}

impl<'a, P: fr::PixelTrait + bytemuck::Pod> Strided<'a, P> {
    fn new(plane: &Plane<'a>, width: u32, height: u32) -> Self {
        Self {
            data: plane.data,
            row_stride: plane.row_stride,
            width,
            height,
            _pixel: std::marker::PhantomData,
        }
    }
}

// SAFETY: every row returned is exactly `width` pixels long (the frame was validated to hold
// `height` rows of `width` pixels at `row_stride`), as the trait requires.
unsafe impl<P: fr::PixelTrait + bytemuck::Pod> ImageView for Strided<'_, P> {
    type Pixel = P;

    fn width(&self) -> u32 {
        self.width
    }

    fn height(&self) -> u32 {
        self.height
    }

    fn iter_rows(&self, start_row: u32) -> impl Iterator<Item = &[P]> {
        let row_bytes = self.width as usize * std::mem::size_of::<P>();
        (start_row.min(self.height)..self.height).map(move |row| {
            let start = row as usize * self.row_stride;
            bytemuck::cast_slice(&self.data[start..start + row_bytes])
        })
    }
}
