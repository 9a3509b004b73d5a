//! Frame construction with arbitrary geometry, strides, formats, orientation and colour, then
//! preprocessing on the CPU and the scene signature: a frame is either refused with a typed
//! error, or preprocessed into finite values within the normalised range. Never a panic, never a
//! read outside the planes (AddressSanitizer watches).
#![no_main]

use libfuzzer_sys::fuzz_target;
use prescreen_runtime::frame::{ColorMatrix, ColorRange, Frame, PixelFormat, Plane, Rotation};
use prescreen_runtime::manifest::Manifest;
use prescreen_runtime::preprocess::CpuPreprocessor;
use prescreen_runtime::stream::sampling::Signature;

/// Reads small numbers off the front of the input.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn byte(&mut self) -> u8 {
        let (b, rest) = self.0.split_first().map_or((0, &[][..]), |(b, r)| (*b, r));
        self.0 = rest;
        b
    }
    fn upto(&mut self, n: usize) -> usize {
        (self.byte() as usize | (self.byte() as usize) << 8) % (n + 1)
    }
}

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes(data);
    let format = PixelFormat::ALL[b.byte() as usize % PixelFormat::ALL.len()];
    let (w, h) = (b.upto(80) as u32, b.upto(80) as u32);
    let (pad, pixel_stride) = (b.upto(9), 1 + b.upto(8));
    let rotation = Rotation::ALL[b.byte() as usize % 4];
    let mirror = b.byte() & 1 == 1;
    let matrix = [ColorMatrix::Bt601, ColorMatrix::Bt709][b.byte() as usize % 2];
    let range = [ColorRange::Full, ColorRange::Limited][b.byte() as usize % 2];
    let manifests = [
        include_str!("../../models/redness/model.toml"),
        include_str!("../../models/open_nsfw/model.toml"),
    ];
    let spec = Manifest::parse(manifests[b.byte() as usize % 2])
        .expect("committed manifests parse")
        .input;
    let pixels = b.0;
    let (wu, hu) = (w as usize, h as usize);
    let (cw, ch) = (wu.div_ceil(2), hu.div_ceil(2));
    // Planes are cut out of the fuzzer's bytes at strides it chose: often too short, which the
    // constructors must refuse.
    let cut = |from: usize, len: usize| {
        pixels
            .get(from.min(pixels.len())..(from + len).min(pixels.len()))
            .unwrap_or(&[])
    };
    let frame = match format {
        PixelFormat::Nv12 | PixelFormat::Nv21 => {
            let ys = wu + pad;
            let y = Plane::new(cut(0, ys * hu), ys);
            let cs = 2 * cw + pad;
            let c = Plane::new(cut(ys * hu, cs * ch), cs);
            if format == PixelFormat::Nv12 {
                Frame::nv12(w, h, y, c)
            } else {
                Frame::nv21(w, h, y, c)
            }
        }
        PixelFormat::I420 => {
            let (ys, cs) = (wu + pad, cw + pad);
            let y = Plane::new(cut(0, ys * hu), ys);
            let u = Plane::new(cut(ys * hu, cs * ch), cs);
            let v = Plane::new(cut(ys * hu + cs * ch, cs * ch), cs);
            Frame::i420(w, h, y, u, v)
        }
        PixelFormat::Yuv420 => {
            let ys = wu + pad;
            let cs = cw * pixel_stride + pad;
            let y = Plane::new(cut(0, ys * hu), ys);
            let u = Plane::with_pixel_stride(cut(ys * hu, cs * ch), cs, pixel_stride);
            let v = Plane::with_pixel_stride(cut(ys * hu + 1, cs * ch), cs, pixel_stride);
            Frame::yuv420(w, h, y, u, v)
        }
        packed => {
            let bpp = packed.packed_bytes_per_pixel().unwrap_or(4);
            let stride = wu * bpp + pad;
            Frame::packed(packed, w, h, cut(0, stride * hu), stride)
        }
    };
    let Ok(frame) = frame else {
        return;
    };
    let frame = frame
        .with_color(matrix, range)
        .with_orientation(rotation, mirror);
    let mut out = vec![f32::NAN; spec.len()];
    CpuPreprocessor::new(&spec)
        .run(&frame, &mut out)
        .expect("a valid frame preprocesses");
    // Every value is a normalised 8-bit level (or the letterbox padding): finite and bounded.
    assert!(out.iter().all(|v| v.is_finite() && v.abs() <= 1024.0));
    let mut signature = Signature::default();
    signature.compute(&frame);
    assert_eq!(signature.cells.len(), Signature::WIDTH * Signature::HEIGHT);
});
