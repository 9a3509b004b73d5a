//! Thumbnails of evidence frames: made on the worker when a frame becomes evidence, kept while a
//! segment may still want them, and handed over with the segment's `Closed` event.

use crate::frame::Frame;

/// A downscaled picture of an evidence frame, upright (rotated and mirrored as the model saw it).
#[derive(Clone, PartialEq)]
pub struct Thumbnail {
    /// Frame timestamp.
    pub timestamp_us: i64,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Packed 8-bit RGB, `width * 3` bytes per row.
    pub rgb: Vec<u8>,
}

impl std::fmt::Debug for Thumbnail {
    // Never print the pixels.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Thumbnail")
            .field("timestamp_us", &self.timestamp_us)
            .field("width", &self.width)
            .field("height", &self.height)
            .finish_non_exhaustive()
    }
}

/// Keeps upright RGB thumbnails of evidence frames, made with the CPU preprocessor.
pub(super) struct Thumbnailer {
    size: u32,
    preprocessor: Option<(u32, u32, crate::preprocess::CpuPreprocessor)>,
    tensor: Vec<f32>,
    kept: Vec<Thumbnail>,
}

impl Thumbnailer {
    pub(super) fn new(size: u32) -> Self {
        Self {
            size,
            preprocessor: None,
            tensor: Vec::new(),
            kept: Vec::new(),
        }
    }

    /// The thumbnail size for an upright picture: longer side `size`, aspect ratio kept.
    fn dims(&self, w: u32, h: u32) -> (u32, u32) {
        let s = self.size as f64 / w.max(h) as f64;
        (
            ((w as f64 * s).round() as u32).max(1),
            ((h as f64 * s).round() as u32).max(1),
        )
    }

    pub(super) fn keep(&mut self, frame: &Frame<'_>) {
        let (uw, uh) = frame.upright_size();
        let (tw, th) = self.dims(uw, uh);
        if !matches!(&self.preprocessor, Some((w, h, _)) if (*w, *h) == (tw, th)) {
            let spec = crate::manifest::InputSpec::upright_rgb(tw, th);
            self.preprocessor = Some((tw, th, crate::preprocess::CpuPreprocessor::new(&spec)));
        }
        let Some((_, _, pre)) = self.preprocessor.as_mut() else {
            return;
        };
        self.tensor.resize(tw as usize * th as usize * 3, 0.0);
        if pre.run(frame, &mut self.tensor).is_err() {
            return;
        }
        let rgb = self
            .tensor
            .iter()
            .map(|v| v.round().clamp(0.0, 255.0) as u8)
            .collect();
        self.kept.push(Thumbnail {
            timestamp_us: frame.timestamp_us(),
            width: tw,
            height: th,
            rgb,
        });
    }

    pub(super) fn retain(&mut self, wanted: &[i64]) {
        self.kept.retain(|t| wanted.contains(&t.timestamp_us));
    }

    /// The thumbnails of `evidence` (best first), removed from the store.
    pub(super) fn take(&mut self, evidence: &[(i64, f32)]) -> Vec<Thumbnail> {
        evidence
            .iter()
            .filter_map(|(t, _)| {
                let i = self.kept.iter().position(|k| k.timestamp_us == *t)?;
                Some(self.kept.swap_remove(i))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{PixelFormat, Rotation};

    /// A thumbnail's debug form names its time and size and never prints its pixels. Fails if the
    /// `Debug` impl printed nothing.
    #[test]
    fn a_thumbnails_debug_form_has_no_pixels() {
        let t = Thumbnail {
            timestamp_us: 1_234_567,
            width: 2,
            height: 1,
            rgb: vec![201, 202, 203, 204, 205, 206],
        };
        let text = format!("{t:?}");
        assert!(text.starts_with("Thumbnail"), "{text}");
        for shown in ["1234567", "width: 2", "height: 1"] {
            assert!(text.contains(shown), "{text}");
        }
        assert!(!text.contains("201") && !text.contains("rgb"), "{text}");
    }

    /// A thumbnail's size: longer side `size`, aspect ratio kept (rounded, never below one
    /// pixel), small pictures blown up. Fails if the scale or either side's product changed.
    #[test]
    fn thumbnails_keep_the_aspect_ratio_at_the_evidence_size() {
        let t = Thumbnailer::new(64);
        for (w, h, want) in [
            (640, 480, (64, 48)),
            (480, 640, (48, 64)),
            (100, 30, (64, 19)),
            (32, 32, (64, 64)),
            (1000, 3, (64, 1)),
        ] {
            assert_eq!(t.dims(w, h), want, "{w}x{h}");
        }
    }

    /// Thumbnails are made upright in the picture's colours, forgotten by `retain` unless
    /// wanted, and handed over by `take` (exactly the evidence's, in its order, removed from
    /// the store). Fails if `keep`, `retain` or `take` did nothing, if `keep` sized its tensor
    /// wrongly or never made its preprocessor, or if `take` matched the wrong time.
    #[test]
    fn thumbnails_are_kept_upright_and_handed_over_once() {
        let mut store = Thumbnailer::new(32);
        let (w, h) = (40u32, 20u32);
        let rgb: Vec<u8> = (0..w * h).flat_map(|_| [200u8, 100, 50]).collect();
        for (t, rotation) in [(10, Rotation::R0), (20, Rotation::R90), (30, Rotation::R0)] {
            let f = Frame::packed(PixelFormat::Rgb8, w, h, &rgb, w as usize * 3)
                .unwrap()
                .with_orientation(rotation, false)
                .with_timestamp_us(t);
            store.keep(&f);
        }
        let kept: Vec<(i64, u32, u32)> = store
            .kept
            .iter()
            .map(|k| (k.timestamp_us, k.width, k.height))
            .collect();
        assert_eq!(kept, [(10, 32, 16), (20, 16, 32), (30, 32, 16)]);
        for k in &store.kept {
            assert_eq!(k.rgb.len(), (k.width * k.height * 3) as usize);
            assert!(k.rgb.chunks(3).all(|p| p == [200, 100, 50]), "{k:?}");
        }
        store.retain(&[30, 20, 99]);
        let evidence = [(30, 0.9), (77, 0.8), (20, 0.7)];
        let taken: Vec<i64> = store
            .take(&evidence)
            .iter()
            .map(|k| k.timestamp_us)
            .collect();
        assert_eq!(taken, [30, 20]);
        assert!(store.kept.is_empty(), "taken thumbnails leave the store");
        assert!(store.take(&evidence).is_empty());
    }
}
