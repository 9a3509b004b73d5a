//! The demo's sample stream: real photographs filmed by a simulated hand-held camera.
//!
//! Each shot shows one photograph (from `models/photos`, exported by `models/prepare.py`) through a
//! 16:9 window that pans, zooms and shakes slightly, like a phone held by a person; shots cut from
//! one photograph to the next. Frames are rendered at the stream's size with fast_image_resize and
//! encoded to NV12 (BT.709, video range, as HD cameras deliver) with the `yuv` crate. Everything is
//! deterministic: frame `i` is always the same picture.

use std::path::Path;

use fast_image_resize as fr;
use prescreen_runtime::frame::{ColorMatrix, ColorRange, PixelFormat};

use crate::framegen::{ConvertError, OwnedFrame};

/// Why the sample stream cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The photographs are missing or unreadable.
    #[error("cannot load photographs from {dir}: {reason} (run `make model` or models/prepare.py first)")]
    Photos {
        /// The folder.
        dir: String,
        /// What failed.
        reason: String,
    },
    /// Rendering or encoding failed.
    #[error("cannot render frame: {0}")]
    Render(String),
}

/// A deterministic camera-like stream over photographs.
pub struct SampleStream {
    photos: Vec<(String, fr::images::Image<'static>)>,
    width: u32,
    height: u32,
    fps: u32,
    shot_frames: u32,
    resizer: fr::Resizer,
    rgb: fr::images::Image<'static>,
    flagged: Vec<(f64, f64)>,
    motion_blur: u32,
    defocus: u32,
    line: Vec<[u32; 3]>,
}

impl SampleStream {
    /// Loads the photographs in `dir` (sorted by name) for a stream of `width` x `height` at `fps`,
    /// showing each photograph for `shot_seconds`.
    pub fn new(
        dir: impl AsRef<Path>,
        width: u32,
        height: u32,
        fps: u32,
        shot_seconds: f64,
    ) -> Result<Self, StreamError> {
        let dir = dir.as_ref();
        let err = |reason: String| StreamError::Photos {
            dir: dir.display().to_string(),
            reason,
        };
        let mut paths: Vec<_> = std::fs::read_dir(dir)
            .map_err(|e| err(e.to_string()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "png"))
            .collect();
        paths.sort();
        if paths.is_empty() {
            return Err(err("no .png photographs".into()));
        }
        let mut photos = Vec::new();
        for p in paths {
            let img = image::open(&p)
                .map_err(|e| err(format!("{}: {e}", p.display())))?
                .to_rgb8();
            let (w, h) = img.dimensions();
            let name = p
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            let img = fr::images::Image::from_vec_u8(w, h, img.into_raw(), fr::PixelType::U8x3)
                .map_err(|e| err(e.to_string()))?;
            photos.push((name, img));
        }
        Ok(Self {
            photos,
            width,
            height,
            fps,
            shot_frames: ((shot_seconds * fps as f64).round() as u32).max(1),
            resizer: fr::Resizer::new(),
            rgb: fr::images::Image::new(width, height, fr::PixelType::U8x3),
            flagged: Vec::new(),
            motion_blur: 0,
            defocus: 0,
            line: Vec::new(),
        })
    }

    /// Tints the frames inside each `(start, end)` interval (seconds) strongly red: a stream with
    /// known flagged intervals for the test classifier (`models/redness`), which scores redness.
    pub fn with_red_intervals(mut self, intervals: &[(f64, f64)]) -> Self {
        self.flagged = intervals.to_vec();
        self
    }

    /// Blurs every frame along the camera's motion, as a fast pan does: each pixel becomes the
    /// mean of `length` pixels in a line (clamped at the frame's edges), across in even shots
    /// and down in odd ones. 0 or 1 leaves the frames sharp.
    pub fn with_motion_blur(mut self, length: u32) -> Self {
        self.motion_blur = length;
        self
    }

    /// Blurs every frame as a camera out of focus does: a box of `size` pixels, twice across and
    /// twice down (close to a Gaussian of standard deviation `size / 2.5`). 0 or 1 leaves the
    /// frames sharp.
    pub fn with_defocus(mut self, size: u32) -> Self {
        self.defocus = size;
        self
    }

    /// The red intervals, in seconds.
    pub fn red_intervals(&self) -> &[(f64, f64)] {
        &self.flagged
    }

    /// True when frame `index` lies in a red interval.
    pub fn is_red(&self, index: u32) -> bool {
        let t = index as f64 / self.fps as f64;
        self.flagged.iter().any(|&(a, b)| (a..b).contains(&t))
    }

    /// Frames per second.
    pub fn fps(&self) -> u32 {
        self.fps
    }

    /// Number of frames that show every photograph once.
    pub fn len(&self) -> u32 {
        self.shot_frames * self.photos.len() as u32
    }

    /// True when there are no photographs (never: [`SampleStream::new`] refuses that).
    pub fn is_empty(&self) -> bool {
        self.photos.is_empty()
    }

    /// Name of the photograph shown in frame `index`.
    pub fn photo_name(&self, index: u32) -> &str {
        &self.photos[(index / self.shot_frames) as usize % self.photos.len()].0
    }

    /// Renders frame `index` as RGB (width * 3 bytes per row).
    pub fn render_rgb(&mut self, index: u32) -> Result<&[u8], StreamError> {
        let shot = (index / self.shot_frames) as usize;
        let t = (index % self.shot_frames) as f64 / self.fps as f64;
        let (_, photo) = &self.photos[shot % self.photos.len()];
        let (pw, ph) = (photo.width() as f64, photo.height() as f64);
        let aspect = self.width as f64 / self.height as f64;
        // Largest 16:9 window that fits, zoomed in 10-25% and drifting: a slow push-in and pan,
        // plus a few pixels of hand shake (sums of incommensurate sines).
        let (full_w, full_h) = if pw / ph > aspect {
            (ph * aspect, ph)
        } else {
            (pw, pw / aspect)
        };
        let seed = shot as f64 * 1.7;
        let zoom = 1.10 + 0.06 * t + 0.02 * (0.9 * t + seed).sin();
        let (ww, wh) = (full_w / zoom, full_h / zoom);
        let pan_x = 0.5 + 0.35 * (0.21 * t + seed).sin();
        let pan_y = 0.5 + 0.35 * (0.17 * t + 2.0 * seed).cos();
        let shake = |f: f64, g: f64| 0.004 * ((f * t + seed).sin() + 0.5 * (g * t + seed).sin());
        let left = ((pw - ww) * pan_x + shake(11.0, 23.0) * pw).clamp(0.0, pw - ww);
        let top = ((ph - wh) * pan_y + shake(13.0, 19.0) * ph).clamp(0.0, ph - wh);
        let options = fr::ResizeOptions::new()
            .resize_alg(fr::ResizeAlg::Convolution(fr::FilterType::Bilinear))
            .crop(left, top, ww, wh);
        self.resizer
            .resize(photo, &mut self.rgb, &options)
            .map_err(|e| StreamError::Render(e.to_string()))?;
        if self.motion_blur > 1 {
            self.box_blur(shot.is_multiple_of(2), self.motion_blur);
        }
        if self.defocus > 1 {
            for across in [true, false, true, false] {
                self.box_blur(across, self.defocus);
            }
        }
        Ok(self.rgb.buffer())
    }

    /// Box-blurs the rendered picture across or down over `window` pixels.
    fn box_blur(&mut self, across: bool, window: u32) {
        let (w, h) = (self.width as usize, self.height as usize);
        let (lines, len, line_step, step) = if across {
            (h, w, w * 3, 3)
        } else {
            (w, h, 3, w * 3)
        };
        for l in 0..lines {
            box_blur_line(
                self.rgb.buffer_mut(),
                l * line_step,
                step,
                len,
                window as usize,
                &mut self.line,
            );
        }
    }

    /// Frame `index` as an NV12 camera frame with its timestamp.
    pub fn frame(&mut self, index: u32) -> Result<OwnedFrame, StreamError> {
        let (w, h, fps) = (self.width, self.height, self.fps);
        let red = self.is_red(index);
        self.render_rgb(index)?;
        if red {
            for px in self.rgb.buffer_mut().chunks_exact_mut(3) {
                let [r, g, b] = [px[0], px[1], px[2]].map(u16::from);
                px.copy_from_slice(&[(r / 3 + 170) as u8, (g * 2 / 5) as u8, (b * 2 / 5) as u8]);
            }
        }
        let rgb = self.rgb.buffer();
        let mut f = OwnedFrame::from_rgb(
            rgb,
            w,
            h,
            PixelFormat::Nv12,
            ColorMatrix::Bt709,
            ColorRange::Limited,
        )
        .map_err(|e: ConvertError| StreamError::Render(e.to_string()))?;
        f.timestamp_us = index as i64 * 1_000_000 / fps as i64;
        Ok(f)
    }
}

/// Replaces the `len` RGB pixels at `start`, `start + step`, ... of `rgb` with the mean of a
/// window of `window` pixels centred on each (clamped to the line), using prefix sums in `sums`.
pub(crate) fn box_blur_line(
    rgb: &mut [u8],
    start: usize,
    step: usize,
    len: usize,
    window: usize,
    sums: &mut Vec<[u32; 3]>,
) {
    sums.clear();
    sums.push([0; 3]);
    for i in 0..len {
        let p = start + i * step;
        let last = sums[i];
        sums.push([0, 1, 2].map(|c| last[c] + rgb[p + c] as u32));
    }
    let before = window / 2;
    let after = window - 1 - before;
    for i in 0..len {
        let (a, b) = (i.saturating_sub(before), (i + after + 1).min(len));
        let n = (b - a) as u32;
        let p = start + i * step;
        for c in 0..3 {
            rgb[p + c] = ((sums[b][c] - sums[a][c] + n / 2) / n) as u8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn box_blur_averages_a_window_clamped_at_the_edges() {
        // One line of 5 pixels, every other byte of a strided buffer.
        let mut rgb = vec![0u8; 30];
        for (i, v) in [0u8, 30, 60, 90, 120].iter().enumerate() {
            rgb[i * 6..i * 6 + 3].copy_from_slice(&[*v, *v / 2, 255 - *v]);
        }
        let mut sums = Vec::new();
        box_blur_line(&mut rgb, 0, 6, 5, 3, &mut sums);
        let red: Vec<u8> = (0..5).map(|i| rgb[i * 6]).collect();
        assert_eq!(red, [15, 30, 60, 90, 105]);
        let blue: Vec<u8> = (0..5).map(|i| rgb[i * 6 + 2]).collect();
        assert_eq!(blue, [240, 225, 195, 165, 150]);
        assert!(
            rgb[3..6].iter().all(|&b| b == 0),
            "bytes between pixels untouched"
        );
    }
}
