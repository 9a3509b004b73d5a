//! Still images (PNG, JPEG) as camera frames, decoded within the runtime's frame limits.
//!
//! An image file is untrusted input: a few hundred bytes of PNG can claim 20000x20000 pixels. The
//! frame limits ([`MAX_DIMENSION`], [`MAX_PIXELS`]) are applied to the header before anything is
//! decoded, and as the decoder's own allocation limit, so a hostile file costs an error, not
//! gigabytes of memory.

use std::io::Cursor;
use std::path::Path;

use anyhow::{bail, Context, Result};
use image::{ImageReader, Limits, RgbImage};
use prescreen_runtime::frame::{MAX_DIMENSION, MAX_PIXELS};

/// Largest image file read (a 64-megapixel JPEG is ~30 MB).
pub const MAX_IMAGE_FILE_BYTES: u64 = 256 << 20;

/// The decoder limits: the frame limits, and no more memory than a 4-byte-per-pixel picture of
/// the largest frame.
fn limits() -> Limits {
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_DIMENSION);
    limits.max_image_height = Some(MAX_DIMENSION);
    limits.max_alloc = Some(MAX_PIXELS * 4);
    limits
}

/// Decodes a PNG or JPEG held in memory to 8-bit RGB, refusing sizes beyond the frame limits
/// before decoding.
pub fn decode_rgb(bytes: &[u8]) -> Result<RgbImage> {
    let reader = || -> Result<ImageReader<Cursor<&[u8]>>> {
        let mut r = ImageReader::new(Cursor::new(bytes)).with_guessed_format()?;
        r.limits(limits());
        Ok(r)
    };
    let (w, h) = reader()?
        .into_dimensions()
        .context("reading the image header")?;
    if w == 0 || h == 0 || w as u64 * h as u64 > MAX_PIXELS {
        bail!("image size {w}x{h} is outside the frame limits (1 to {MAX_DIMENSION} a side, at most {MAX_PIXELS} pixels)");
    }
    Ok(reader()?.decode().context("decoding the image")?.to_rgb8())
}

/// Reads (a regular file of at most [`MAX_IMAGE_FILE_BYTES`]) and decodes an image file.
pub fn load_rgb(path: &Path) -> Result<RgbImage> {
    let bytes = prescreen_runtime::files::read_regular(path, MAX_IMAGE_FILE_BYTES)
        .with_context(|| format!("reading {}", path.display()))?;
    decode_rgb(&bytes).with_context(|| format!("image {}", path.display()))
}

/// Test inputs, shared by this module's tests and the harness's (`tests/harness.rs`).
#[doc(hidden)]
pub mod testing {
    /// A PNG whose header claims `w` x `h` 8-bit RGB pixels, with an empty image stream.
    pub fn png_claiming(w: u32, h: u32) -> Vec<u8> {
        fn crc32(bytes: &[u8]) -> u32 {
            let mut c = !0u32;
            for &b in bytes {
                c ^= b as u32;
                for _ in 0..8 {
                    c = if c & 1 != 0 {
                        0xedb8_8320 ^ (c >> 1)
                    } else {
                        c >> 1
                    };
                }
            }
            !c
        }
        let chunk = |kind: &[u8], data: &[u8]| {
            let mut v = (data.len() as u32).to_be_bytes().to_vec();
            let body = [kind, data].concat();
            v.extend_from_slice(&body);
            v.extend_from_slice(&crc32(&body).to_be_bytes());
            v
        };
        let mut ihdr = w.to_be_bytes().to_vec();
        ihdr.extend_from_slice(&h.to_be_bytes());
        ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
        // zlib stream of nothing: header, an empty final stored block, adler32 of nothing.
        let idat = [0x78, 0x01, 0x01, 0x00, 0x00, 0xff, 0xff, 0, 0, 0, 1];
        [
            b"\x89PNG\r\n\x1a\n".to_vec(),
            chunk(b"IHDR", &ihdr),
            chunk(b"IDAT", &idat),
            chunk(b"IEND", &[]),
        ]
        .concat()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_claiming_more_than_the_frame_limits_are_refused_before_decoding() {
        for (w, h) in [(20_000, 20_000), (MAX_DIMENSION + 1, 1), (8193, 8193)] {
            let e = decode_rgb(&testing::png_claiming(w, h)).unwrap_err();
            assert!(format!("{e:#}").contains("limit"), "{w}x{h}: {e:#}");
        }
    }

    #[test]
    fn a_real_png_decodes() {
        let img = RgbImage::from_fn(7, 5, |x, y| image::Rgb([x as u8 * 30, y as u8 * 50, 9]));
        let mut png = Vec::new();
        img.write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        assert_eq!(decode_rgb(&png).unwrap(), img);
        assert!(decode_rgb(b"not an image").is_err());
        // The header is right, the data is missing: an error, not a picture of zeros.
        assert!(decode_rgb(&testing::png_claiming(4, 4)).is_err());
    }
}
