//! Labelled sets that can live here (`prescreen make-eval-set`): no explicit content, only the
//! sample photographs (`models/photos`, scikit-image's data set, exported by `models/prepare.py`).
//!
//! - [`SetKind::Redness`]: streams filmed by the sample stream's simulated camera with intervals
//!   tinted red, plus still images (red-tinted photographs as positives, untouched ones as clean),
//!   for the test classifier (`models/redness`, label `red`): every metric has data, with ground
//!   truth known by construction.
//! - [`SetKind::Benign`]: clean content only, made hard the ways phone video is: every photograph
//!   blurred, at a low resolution, tinted (warm, cool, green, dark), cropped close, and
//!   compressed hard; plus the sample stream itself. What a real model flags here is a false
//!   flag, per frame and per stream-hour.
//! - [`SetKind::Degraded`]: the same benign content out of focus, as live video often is: the
//!   sample stream with motion blur (a fast pan) and defocused (a camera focusing), every
//!   photograph under a heavy blur and as a tiny thumbnail blown up. For the false-flag rates
//!   with and without the policy's quality gate.

use std::path::Path;

use anyhow::{bail, Context, Result};
use image::imageops::{self, FilterType};
use image::{Rgb, RgbImage};

use super::set::{ImagesEntry, SetFileWriter, StreamEntry, TruthEntry, SET_FILE};
use crate::stream::SampleStream;

/// Which set to generate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetKind {
    /// Red intervals and red images, for the test classifier.
    Redness,
    /// Benign photographs and streams, for false-flag rates of real models.
    Benign,
    /// Benign streams and photographs out of focus, for the quality gate.
    Degraded,
}

/// The red intervals of the generated streams, in seconds: one stream with two intervals, one
/// with an interval at its very start, one clean.
pub const RED_STREAMS: [(&str, &[(f64, f64)]); 3] = [
    ("streams/red-two.y4m", &[(4.0, 7.0), (12.0, 14.0)]),
    ("streams/red-start.y4m", &[(0.0, 2.5)]),
    ("streams/clean.y4m", &[]),
];

/// The benign variants of a photograph, by name.
pub const BENIGN_VARIANTS: [&str; 9] = [
    "original", "blur", "lowres", "warm", "cool", "green", "dark", "crop", "jpeg",
];

/// The degraded variants of a photograph, by name (see [`degraded_variant`]).
pub const DEGRADED_VARIANTS: [&str; 3] = ["blur12", "motion", "thumb"];

/// Motion blur of the degraded set's stream, as a fraction of the frame's width (32 pixels at
/// 1920).
pub const MOTION_BLUR_FRACTION: f64 = 1.0 / 60.0;
/// Defocus of the degraded set's stream (the box size), as a fraction of the frame's width.
pub const DEFOCUS_FRACTION: f64 = 1.0 / 60.0;

/// Writes a set of `kind` into `out` (created; must not hold a set already) from the photographs
/// in `photos`; streams are `width` x `height` at 30 fps, each photograph on screen for
/// `shot_seconds`.
pub fn make_set(
    out: &Path,
    kind: SetKind,
    photos: &Path,
    width: u32,
    height: u32,
    shot_seconds: f64,
) -> Result<SetFileWriter> {
    if out.join(SET_FILE).exists() {
        bail!("{} already holds a set", out.display());
    }
    if !(width.is_multiple_of(2) && height.is_multiple_of(2) && width >= 32 && height >= 32) {
        bail!("stream sizes must be even and at least 32");
    }
    std::fs::create_dir_all(out.join("streams"))?;
    let mut set = SetFileWriter::default();
    match kind {
        SetKind::Redness => {
            for (name, red) in RED_STREAMS {
                let mut stream = SampleStream::new(photos, width, height, 30, shot_seconds)?
                    .with_red_intervals(red);
                write_y4m(&out.join(name), &mut stream)?;
                set.streams.push(StreamEntry {
                    path: name.into(),
                    fps: None,
                    truth: red
                        .iter()
                        .map(|&(start_s, end_s)| TruthEntry {
                            label: "red".into(),
                            start_s,
                            end_s,
                        })
                        .collect(),
                });
            }
            for (i, (name, photo)) in load_photos(photos)?.into_iter().enumerate() {
                // Every other photograph red, the rest clean.
                let (folder, picture) = if i % 2 == 0 {
                    ("red", tint(&photo, [1.0, 0.15, 0.15], 60.0))
                } else {
                    ("clean", photo)
                };
                save(
                    &out.join("images").join(folder).join(format!("{name}.png")),
                    &picture,
                )?;
            }
        }
        SetKind::Degraded => {
            let blur = |fraction: f64| ((width as f64 * fraction).round() as u32).max(2);
            for (name, motion, defocus) in [
                ("streams/motion.y4m", blur(MOTION_BLUR_FRACTION), 0),
                ("streams/defocus.y4m", 0, blur(DEFOCUS_FRACTION)),
            ] {
                let mut stream = SampleStream::new(photos, width, height, 30, shot_seconds)?
                    .with_motion_blur(motion)
                    .with_defocus(defocus);
                write_y4m(&out.join(name), &mut stream)?;
                set.streams.push(StreamEntry {
                    path: name.into(),
                    fps: None,
                    truth: vec![],
                });
            }
            let dir = out.join("images").join("clean");
            for (name, photo) in load_photos(photos)? {
                for variant in DEGRADED_VARIANTS {
                    let picture = degraded_variant(&photo, variant);
                    save(&dir.join(format!("{name}-{variant}.png")), &picture)?;
                }
            }
        }
        SetKind::Benign => {
            let mut stream = SampleStream::new(photos, width, height, 30, shot_seconds)?;
            write_y4m(&out.join("streams/sample.y4m"), &mut stream)?;
            set.streams.push(StreamEntry {
                path: "streams/sample.y4m".into(),
                fps: None,
                truth: vec![],
            });
            let dir = out.join("images").join("clean");
            for (name, photo) in load_photos(photos)? {
                for variant in BENIGN_VARIANTS {
                    let picture = benign_variant(&photo, variant);
                    let path = dir.join(format!("{name}-{variant}"));
                    if variant == "jpeg" {
                        save_jpeg(&path.with_extension("jpg"), &picture, 8)?;
                    } else {
                        save(&path.with_extension("png"), &picture)?;
                    }
                }
            }
        }
    }
    set.images.push(ImagesEntry {
        folder: Some("images".into()),
        manifest: None,
    });
    std::fs::write(out.join(SET_FILE), set.to_toml())
        .with_context(|| format!("writing {}", out.join(SET_FILE).display()))?;
    Ok(set)
}

fn load_photos(dir: &Path) -> Result<Vec<(String, RgbImage)>> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("listing {} (run `make model`)", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| super::run::is_image(p))
        .collect();
    paths.sort();
    if paths.is_empty() {
        bail!("no photographs in {} (run `make model`)", dir.display());
    }
    paths
        .iter()
        .map(|p| {
            let name = p
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            Ok((name, crate::images::load_rgb(p)?))
        })
        .collect()
}

fn write_y4m(path: &Path, stream: &mut SampleStream) -> Result<()> {
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = std::io::BufWriter::new(file);
    let first = stream.frame(0)?;
    crate::y4m::write_header(&mut out, first.width, first.height, stream.fps())?;
    for i in 0..stream.len() {
        crate::y4m::write_frame(&mut out, &stream.frame(i)?)?;
    }
    std::io::Write::flush(&mut out)?;
    Ok(())
}

fn save(path: &Path, picture: &RgbImage) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    picture
        .save(path)
        .with_context(|| format!("writing {}", path.display()))
}

fn save_jpeg(path: &Path, picture: &RgbImage, quality: u8) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    image::codecs::jpeg::JpegEncoder::new_with_quality(std::io::BufWriter::new(file), quality)
        .encode_image(picture)
        .with_context(|| format!("writing {}", path.display()))
}

/// Each channel scaled by `gain`, then `lift` added to the strongest gain's channel.
fn tint(picture: &RgbImage, gain: [f32; 3], lift: f32) -> RgbImage {
    let strongest = (0..3)
        .max_by(|&a, &b| gain[a].total_cmp(&gain[b]))
        .unwrap_or(0);
    let mut out = picture.clone();
    for p in out.pixels_mut() {
        for (c, (channel, g)) in p.0.iter_mut().zip(gain).enumerate() {
            let lifted = *channel as f32 * g + if c == strongest { lift } else { 0.0 };
            *channel = lifted.round().clamp(0.0, 255.0) as u8;
        }
    }
    out
}

/// One benign variant (see [`BENIGN_VARIANTS`]); `jpeg` is the picture itself, compressed when
/// saved.
pub fn benign_variant(photo: &RgbImage, variant: &str) -> RgbImage {
    let (w, h) = photo.dimensions();
    match variant {
        "blur" => imageops::blur(photo, 4.0),
        "lowres" => {
            let small = imageops::resize(
                photo,
                (w / 10).max(1),
                (h / 10).max(1),
                FilterType::Triangle,
            );
            imageops::resize(&small, w, h, FilterType::Nearest)
        }
        "warm" => tint(photo, [1.1, 0.95, 0.7], 20.0),
        "cool" => tint(photo, [0.75, 0.9, 1.15], 20.0),
        "green" => tint(photo, [0.7, 1.1, 0.7], 15.0),
        "dark" => tint(photo, [0.3, 0.3, 0.3], 0.0),
        "crop" => {
            let (cw, ch) = ((w * 2 / 5).max(1), (h * 2 / 5).max(1));
            imageops::crop_imm(photo, (w - cw) / 2, (h - ch) / 2, cw, ch).to_image()
        }
        _ => photo.clone(),
    }
}

/// One degraded variant (see [`DEGRADED_VARIANTS`]), the size of the photograph: `blur12`, a
/// Gaussian blur of 12 pixels at 1000 pixels' width (scaled to the photograph's); `motion`, a
/// horizontal box blur over 1/30 of the width; `thumb`, a thumbnail 32 pixels wide blown up.
pub fn degraded_variant(photo: &RgbImage, variant: &str) -> RgbImage {
    let (w, h) = photo.dimensions();
    match variant {
        "blur12" => imageops::blur(photo, 12.0 * w as f32 / 1000.0),
        "motion" => {
            let window = (w / 30).max(2);
            let mut out = photo.clone();
            let mut sums = Vec::new();
            for y in 0..h as usize {
                crate::stream::box_blur_line(
                    &mut out,
                    y * w as usize * 3,
                    3,
                    w as usize,
                    window as usize,
                    &mut sums,
                );
            }
            out
        }
        "thumb" => {
            let small = imageops::resize(photo, 32, (32 * h / w).max(1), FilterType::Triangle);
            imageops::resize(&small, w, h, FilterType::Triangle)
        }
        _ => photo.clone(),
    }
}

/// A picture of one flat colour (tests).
pub fn flat(width: u32, height: u32, rgb: [u8; 3]) -> RgbImage {
    RgbImage::from_pixel(width, height, Rgb(rgb))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn benign_variants_keep_or_shrink_the_picture_and_change_it() {
        let mut photo = flat(50, 40, [100, 120, 140]);
        photo.put_pixel(10, 10, Rgb([255, 0, 0]));
        for v in BENIGN_VARIANTS {
            let out = benign_variant(&photo, v);
            match v {
                "crop" => assert_eq!(out.dimensions(), (20, 16)),
                _ => assert_eq!(out.dimensions(), (50, 40), "{v}"),
            }
            if !["original", "jpeg", "crop"].contains(&v) {
                assert_ne!(out, photo, "{v} left the picture as it was");
            }
        }
    }

    #[test]
    fn degraded_variants_keep_the_size_and_lose_the_detail() {
        // A checkerboard of 1-pixel squares: every variant averages it towards grey.
        let photo = RgbImage::from_fn(300, 200, |x, y| {
            if (x + y) % 2 == 0 {
                Rgb([0, 0, 0])
            } else {
                Rgb([200, 200, 200])
            }
        });
        for v in DEGRADED_VARIANTS {
            let out = degraded_variant(&photo, v);
            assert_eq!(out.dimensions(), (300, 200), "{v}");
            let spread = out.pixels().map(|p| p.0[0]).max().unwrap()
                - out.pixels().map(|p| p.0[0]).min().unwrap();
            assert!(spread < 100, "{v} kept the checkerboard: spread {spread}");
        }
    }

    #[test]
    fn the_red_tint_makes_red_the_strongest_channel() {
        let out = tint(&flat(4, 4, [90, 200, 90]), [1.0, 0.15, 0.15], 60.0);
        let p = out.get_pixel(0, 0).0;
        assert_eq!(p, [150, 30, 14]);
    }
}
