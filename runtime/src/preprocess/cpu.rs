//! The CPU backend: PIL's integer resampling for packed pixels, fast_image_resize for YUV planes,
//! one fused pass for the rest.
//!
//! Work is done at the output's resolution: the planes are resampled straight from the camera's
//! buffers to the tensor's size (only the source box is read), and colour conversion, rotation,
//! mirror, channel order, normalisation and layout happen in one pass over the ~50k output pixels.
//!
//! * Packed RGB formats are resampled in 8 bits exactly as PIL does (the model's reference
//!   preprocessing): a horizontal pass, rounded to 8 bits, then a vertical pass (the other way
//!   round for the shapes Pillow 13 resizes down first, `Plan::down_first`), with PIL's 22-bit
//!   fixed-point weights ([`super::kernel`]), so every value, ties included, equals the reference.
//!   A resampler with other weights (fast_image_resize's are 16-bit) rounds ties its own way, and
//!   two or three such ties in a row put a value 2 levels away from PIL's.
//! * YUV planes are widened to 16 bits and each is resampled on its own grid (chroma at half
//!   resolution, centred siting), then converted in `f32`: no 8-bit rounding between the resample and
//!   the colour matrix, whose chroma gain would otherwise double the error.
//!
//! * With the `align_corners` filter every format takes the exact path ([`ExactScratch`]): each
//!   channel is interpolated from its two neighbours in `f32`, across then down, with nothing
//!   rounded (TensorFlow's arithmetic; there is no 8-bit intermediate to match).
//!
//! All buffers are owned by the [`CpuPreprocessor`] and reused, so a stream of same-sized frames does
//! not allocate.

use fast_image_resize as fr;
use fr::images::{TypedImage, TypedImageRef};
use fr::pixels::U16;
use fr::{ImageView, ResizeAlg, ResizeOptions};

use super::color::YuvToRgb;
use super::geometry::{BoxF, Plan};
use super::kernel::{to_u8, Taps, HALF};
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
    packed: PackedScratch,
    exact: ExactScratch,
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
            packed: PackedScratch::default(),
            exact: ExactScratch::default(),
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
            .resize_alg(ResizeAlg::Convolution(fr::FilterType::Bilinear))
            .use_alpha(false);
        let (rw, rh) = (plan.resized_w, plan.resized_h);
        let n = rw as usize * rh as usize;
        let planes = frame.planes();
        let writer = self.writer;
        if !self.spec.resize.filter.rounds_between_passes() {
            self.exact
                .resample(frame, &plan, self.spec.resize.filter, &writer, out);
            return Ok(());
        }
        match frame.format() {
            PixelFormat::Rgb8 | PixelFormat::Rgba8 | PixelFormat::Bgra8 => {
                let rgb = self.packed.resample(frame, &plan);
                writer.write_rgb(&plan, out, |i| {
                    let p = &rgb[i * 3..i * 3 + 3];
                    [p[0] as f32, p[1] as f32, p[2] as f32]
                });
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

/// Filter tables and buffers of the packed (8-bit RGB) path.
#[derive(Default)]
struct PackedScratch {
    /// Geometry the tables were built for: frame size, source box bits, resampled size.
    key: Option<(u32, u32, [u64; 4], u32, u32)>,
    horizontal: Taps,
    vertical: Taps,
    /// Horizontally resampled rows (R, G, B bytes), the rows the vertical taps read.
    rows: Vec<u8>,
    /// One output row of the vertical pass, before rounding.
    acc: Vec<i32>,
    /// The resampled picture, R, G, B bytes, in stored orientation.
    out: Vec<u8>,
}

impl PackedScratch {
    /// Resamples the packed frame's source box to the plan's resized size; returns R, G, B bytes.
    fn resample(&mut self, frame: &Frame<'_>, plan: &Plan) -> &[u8] {
        let (w, h) = (frame.width(), frame.height());
        let (rw, rh) = (plan.resized_w as usize, plan.resized_h as usize);
        let b = plan.src;
        let key = (
            w,
            h,
            [b.left, b.top, b.width, b.height].map(f64::to_bits),
            plan.resized_w,
            plan.resized_h,
        );
        if self.key != Some(key) {
            self.horizontal = Taps::new(b.left, b.width, plan.resized_w, w as usize);
            self.vertical = Taps::new(b.top, b.height, plan.resized_h, h as usize);
            self.key = Some(key);
        }
        let plane = frame.planes()[0];
        // Byte position of R, G and B in a pixel.
        let order = match frame.format() {
            PixelFormat::Bgra8 => [2, 1, 0],
            _ => [0, 1, 2],
        };
        let line = rw * 3;
        if plan.down_first {
            return self.resample_down_first(&plane, w as usize, rw, rh, order);
        }
        let span = self.vertical.span();
        self.rows.resize(span.len() * line, 0);
        horizontal_rows(
            &plane,
            w as usize,
            span.clone(),
            &self.horizontal,
            order,
            &mut self.rows,
        );
        self.out.resize(rh * line, 0);
        self.acc.resize(line, 0);
        for oy in 0..rh {
            let rows = &self.rows;
            vertical_row(
                &mut self.acc,
                self.vertical.window(oy),
                |r| &rows[(r - span.start) * line..(r - span.start + 1) * line],
                &mut self.out[oy * line..(oy + 1) * line],
            );
        }
        &self.out[..rh * line]
    }

    /// [`Self::resample`] in the other order, as PIL does for some shapes
    /// ([`crate::preprocess::geometry::pil_down_first`]): the vertical pass first, over the
    /// columns the horizontal taps read, rounded to 8 bits (every byte of a pixel, in place),
    /// then the horizontal pass over those `rh` rows.
    fn resample_down_first(
        &mut self,
        plane: &Plane<'_>,
        width: usize,
        rw: usize,
        rh: usize,
        order: [usize; 3],
    ) -> &[u8] {
        let bpp = plane.pixel_stride;
        let columns = self.horizontal.span();
        let bytes = columns.start * bpp..columns.end * bpp;
        let row = width * bpp;
        self.rows.resize(rh * row, 0);
        self.acc.resize(bytes.len(), 0);
        for oy in 0..rh {
            vertical_row(
                &mut self.acc,
                self.vertical.window(oy),
                |r| {
                    &plane.data
                        [r * plane.row_stride + bytes.start..r * plane.row_stride + bytes.end]
                },
                &mut self.rows[oy * row + bytes.start..oy * row + bytes.end],
            );
        }
        let line = rw * 3;
        self.out.resize(rh * line, 0);
        let columns = Plane {
            data: &self.rows,
            row_stride: row,
            pixel_stride: bpp,
        };
        horizontal_rows(
            &columns,
            width,
            0..rh,
            &self.horizontal,
            order,
            &mut self.out,
        );
        &self.out[..rh * line]
    }
}

/// One output row of an 8-bit vertical pass, both orders' (`acc` as long as `out`): the weighted
/// sum of source rows `row(s + k)` in PIL's 22-bit fixed point, each rounded to 8 bits.
fn vertical_row<'a>(
    acc: &mut [i32],
    (s, weights): (usize, &[i32]),
    row: impl Fn(usize) -> &'a [u8],
    out: &mut [u8],
) {
    acc.fill(HALF);
    for (k, &wt) in weights.iter().enumerate() {
        if wt == 0 {
            continue;
        }
        for (a, &v) in acc.iter_mut().zip(row(s + k)) {
            *a += v as i32 * wt;
        }
    }
    for (o, &a) in out.iter_mut().zip(acc.iter()) {
        *o = to_u8(a);
    }
}

/// The horizontal pass over rows `span` of a packed plane of `width` pixels: R, G, B bytes of each
/// output sample, one row of `taps.len()` samples after another.
///
/// The sums need 32-bit multiplies, which x86-64's baseline (SSE2) lacks as vector instructions,
/// so 4-byte pixels get an AVX2 kernel where the CPU has it, chosen at run time. ARM's NEON has
/// them, so the portable kernel vectorises there.
fn horizontal_rows(
    plane: &Plane<'_>,
    width: usize,
    span: std::ops::Range<usize>,
    taps: &Taps,
    order: [usize; 3],
    rows: &mut [u8],
) {
    let bpp = plane.pixel_stride;
    #[cfg(target_arch = "x86_64")]
    let avx2 = bpp == 4 && std::arch::is_x86_feature_detected!("avx2");
    let line = taps.len() * 3;
    for (y, dst) in span.zip(rows.chunks_exact_mut(line)) {
        let start = y * plane.row_stride;
        let src = &plane.data[start..start + width * bpp];
        #[cfg(target_arch = "x86_64")]
        if avx2 {
            // SAFETY: the CPU supports AVX2, checked above.
            unsafe { horizontal_4_avx2(src, taps, order, dst) };
            continue;
        }
        match bpp {
            4 => horizontal::<4>(src, taps, order, dst),
            _ => horizontal::<3>(src, taps, order, dst),
        }
    }
}

/// [`horizontal`] for 4-byte pixels with AVX2: two taps (8 channel sums) per multiply.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn horizontal_4_avx2(src: &[u8], taps: &Taps, order: [usize; 3], dst: &mut [u8]) {
    use std::arch::x86_64::*;
    let n = taps.width;
    // Lanes 0-3 take the first weight of a pair, lanes 4-7 the second.
    let spread = _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1);
    for ((out, &s), weights) in dst
        .chunks_exact_mut(3)
        .zip(&taps.start)
        .zip(taps.weights.chunks_exact(n))
    {
        let s = s as usize;
        let px = &src[s * 4..(s + n) * 4];
        let mut acc = _mm256_setzero_si256();
        for j in 0..n / 2 {
            // SAFETY: pixels 2j and 2j+1 (bytes 8j..8j+8) and weights 2j, 2j+1 lie inside `px`
            // (4n bytes) and `weights` (n values): 2j + 2 <= n.
            let (p, w) = unsafe {
                (
                    _mm_loadl_epi64(px.as_ptr().add(j * 8).cast()),
                    _mm_loadl_epi64(weights.as_ptr().add(j * 2).cast()),
                )
            };
            let v = _mm256_cvtepu8_epi32(p);
            let w = _mm256_permutevar8x32_epi32(_mm256_castsi128_si256(w), spread);
            acc = _mm256_add_epi32(acc, _mm256_mullo_epi32(v, w));
        }
        let mut sum = _mm_add_epi32(
            _mm256_castsi256_si128(acc),
            _mm256_extracti128_si256::<1>(acc),
        );
        if n % 2 == 1 {
            let k = n - 1;
            let last = u32::from_le_bytes([px[k * 4], px[k * 4 + 1], px[k * 4 + 2], px[k * 4 + 3]]);
            let v = _mm_cvtepu8_epi32(_mm_cvtsi32_si128(last as i32));
            sum = _mm_add_epi32(sum, _mm_mullo_epi32(v, _mm_set1_epi32(weights[k])));
        }
        let mut lanes = [0i32; 4];
        // SAFETY: `lanes` is 16 bytes, the size of the store.
        unsafe { _mm_storeu_si128(lanes.as_mut_ptr().cast(), sum) };
        for (o, &c) in out.iter_mut().zip(&order) {
            *o = to_u8(lanes[c] + HALF);
        }
    }
}

/// The horizontal pass over one row of `BPP`-byte pixels: R, G, B bytes of each output sample.
#[inline(always)]
fn horizontal<const BPP: usize>(src: &[u8], taps: &Taps, order: [usize; 3], dst: &mut [u8]) {
    let n = taps.width;
    for ((out, &s), weights) in dst
        .chunks_exact_mut(3)
        .zip(&taps.start)
        .zip(taps.weights.chunks_exact(n))
    {
        let s = s as usize;
        let px = &src[s * BPP..(s + n) * BPP];
        let mut acc = [HALF; BPP];
        for (p, &wt) in px.chunks_exact(BPP).zip(weights) {
            for c in 0..BPP {
                acc[c] += p[c] as i32 * wt;
            }
        }
        for (o, &c) in out.iter_mut().zip(&order) {
            *o = to_u8(acc[c]);
        }
    }
}

/// Filter tables and buffers of the exact path: every channel resampled in `f32`, unrounded.
#[derive(Default)]
struct ExactScratch {
    /// Geometry the tables were built for: YUV or not, frame size, source box bits, resampled size.
    key: Option<(bool, u32, u32, [u64; 4], u32, u32)>,
    horizontal: Taps,
    vertical: Taps,
    chroma_horizontal: Taps,
    chroma_vertical: Taps,
    /// Horizontally resampled source rows (only those the vertical taps read).
    rows: Vec<f32>,
    /// Which rows of the vertical span are read with a non-zero weight.
    needed: Vec<bool>,
    /// The resampled channels, in stored orientation: R, G, B interleaved, or Y, U and V planes.
    channels: [Vec<f32>; 3],
}

impl ExactScratch {
    /// Resamples `frame` as `plan` says with the unrounded `filter` and writes the tensor.
    fn resample(
        &mut self,
        frame: &Frame<'_>,
        plan: &Plan,
        filter: Filter,
        writer: &TensorWriter,
        out: &mut [f32],
    ) {
        let (w, h) = (frame.width(), frame.height());
        let yuv = frame.format().is_yuv();
        let b = plan.src;
        let key = (
            yuv,
            w,
            h,
            [b.left, b.top, b.width, b.height].map(f64::to_bits),
            plan.resized_w,
            plan.resized_h,
        );
        if self.key != Some(key) {
            let (rw, rh) = (plan.resized_w, plan.resized_h);
            self.horizontal = Taps::for_filter(filter, b.left, b.width, rw, w as usize);
            self.vertical = Taps::for_filter(filter, b.top, b.height, rh, h as usize);
            if yuv {
                let (cw, ch) = frame.chroma_size();
                self.chroma_horizontal =
                    Taps::chroma_for_filter(filter, b.left, b.width, rw, cw as usize);
                self.chroma_vertical =
                    Taps::chroma_for_filter(filter, b.top, b.height, rh, ch as usize);
            }
            self.key = Some(key);
        }
        let planes = frame.planes();
        let [c0, c1, c2] = &mut self.channels;
        if !yuv {
            let order = match frame.format() {
                PixelFormat::Bgra8 => [2, 1, 0],
                _ => [0, 1, 2],
            };
            let p = &planes[0];
            let source = Source {
                data: p.data,
                row_stride: p.row_stride,
                pixel_stride: p.pixel_stride,
            };
            let taps = (&self.horizontal, &self.vertical);
            resample_exact(source, &order, taps, &mut self.rows, &mut self.needed, c0);
            writer.write_rgb(plan, out, |i| [c0[3 * i], c0[3 * i + 1], c0[3 * i + 2]]);
            return;
        }
        let p = &planes[0];
        let luma = Source {
            data: p.data,
            row_stride: p.row_stride,
            pixel_stride: 1,
        };
        let taps = (&self.horizontal, &self.vertical);
        resample_exact(luma, &[0], taps, &mut self.rows, &mut self.needed, c0);
        // U and V: (plane, byte offset in a sample, sample stride) of each.
        let (u, v) = match frame.format() {
            PixelFormat::Nv12 => ((1, 0, 2), (1, 1, 2)),
            PixelFormat::Nv21 => ((1, 1, 2), (1, 0, 2)),
            _ => (
                (1, 0, planes[1].pixel_stride),
                (2, 0, planes[2].pixel_stride),
            ),
        };
        let taps = (&self.chroma_horizontal, &self.chroma_vertical);
        for ((plane, offset, stride), dst) in [(u, &mut *c1), (v, &mut *c2)] {
            let p = &planes[plane];
            let source = Source {
                data: p.data,
                row_stride: p.row_stride,
                pixel_stride: stride,
            };
            resample_exact(
                source,
                &[offset],
                taps,
                &mut self.rows,
                &mut self.needed,
                dst,
            );
        }
        let conv = YuvToRgb::new(frame.matrix(), frame.range());
        writer.write_rgb(plan, out, |i| conv.convert(c0[i], c1[i], c2[i]));
    }
}

/// An 8-bit plane as the exact path reads it: sample `(x, y)` starts at byte
/// `y * row_stride + x * pixel_stride`.
#[derive(Clone, Copy)]
struct Source<'a> {
    data: &'a [u8],
    row_stride: usize,
    pixel_stride: usize,
}

/// Resamples the bytes at `offsets` of each sample of `src` with `taps` (horizontal, vertical) in
/// `f32`, without rounding: `out[(y * w + x) * offsets.len() + c]`. Only the source rows the
/// vertical taps weight are resampled across.
fn resample_exact(
    src: Source<'_>,
    offsets: &[usize],
    (horizontal, vertical): (&Taps, &Taps),
    rows: &mut Vec<f32>,
    needed: &mut Vec<bool>,
    out: &mut Vec<f32>,
) {
    const INV_ONE: f32 = 1.0 / (1u32 << super::kernel::PRECISION_BITS) as f32;
    let n = offsets.len();
    let line = horizontal.len() * n;
    let span = vertical.span();
    needed.clear();
    needed.resize(span.len(), false);
    for oy in 0..vertical.len() {
        let (s, weights) = vertical.window(oy);
        for (k, &wt) in weights.iter().enumerate() {
            if wt != 0 {
                needed[s + k - span.start] = true;
            }
        }
    }
    rows.resize(span.len() * line, 0.0);
    for (r, dst) in rows.chunks_exact_mut(line).enumerate() {
        if !needed[r] {
            continue;
        }
        let row = &src.data[(span.start + r) * src.row_stride..];
        for (x, samples) in dst.chunks_exact_mut(n).enumerate() {
            let (s, weights) = horizontal.window(x);
            for (value, &offset) in samples.iter_mut().zip(offsets) {
                // Exact in i32 (the weights sum to one: at most 255 << 22), as the GPU sums it.
                let acc: i32 = weights
                    .iter()
                    .enumerate()
                    .map(|(k, &wt)| wt * row[(s + k) * src.pixel_stride + offset] as i32)
                    .sum();
                *value = acc as f32 * INV_ONE;
            }
        }
    }
    out.clear();
    out.resize(vertical.len() * line, 0.0);
    for (oy, dst) in out.chunks_exact_mut(line).enumerate() {
        let (s, weights) = vertical.window(oy);
        for (k, &wt) in weights.iter().enumerate() {
            if wt == 0 {
                continue;
            }
            let wt = wt as f32 * INV_ONE;
            let r = s + k - span.start;
            for (o, &v) in dst.iter_mut().zip(&rows[r * line..(r + 1) * line]) {
                *o += wt * v;
            }
        }
    }
}
