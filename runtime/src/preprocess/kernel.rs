//! The manifest's resampling filters as tables of taps, shared by the CPU and GPU backends.
//!
//! [`Filter::Bilinear`] is PIL's antialiased bilinear filter ([`Taps::new`]);
//! [`Filter::BilinearAlignCorners`] is TensorFlow's two-tap `align_corners` interpolation
//! ([`Taps::align_corners`]). Both are held in the same fixed point, so the kernels that apply them
//! do not know which one they run.
//!
//! PIL's filter:
//! A one-axis resample of a box of the source line to `out` samples: output sample `i` is centred at
//! `left + (i + 0.5) * scale` (`scale` = source samples per output sample); its window spans the
//! triangle filter's support (1, widened by `scale` when shrinking); its weights are the triangle's
//! values, normalised to sum to one and held in 22-bit fixed point exactly as PIL holds them, so a
//! sum of 8-bit samples rounds (ties included) the way PIL's does.
//!
//! Every window has the same number of taps ([`Taps::width`]) and lies inside the line: a window that
//! is short at an edge is shifted inside and padded with zero weights. A kernel then reads
//! `width` samples from `start[i]` with no bounds logic (SIMD on the CPU, one loop on the GPU).

/// Fractional bits of the fixed-point weights (PIL's `PRECISION_BITS` for 8-bit images).
pub const PRECISION_BITS: u32 = 22;

/// One plus the largest value a sum of weighted 8-bit samples can hold before the final shift.
const ONE: f64 = (1u32 << PRECISION_BITS) as f64;

use crate::manifest::Filter;

/// The taps of a one-axis resample.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Taps {
    /// First source sample read by each output sample.
    pub start: Vec<u32>,
    /// Taps per output sample.
    pub width: usize,
    /// `width` weights per output sample, in [`PRECISION_BITS`]-bit fixed point.
    pub weights: Vec<i32>,
}

impl Taps {
    /// Taps resampling the box `[left, left + extent)` of a line of `len` samples to `out` samples.
    ///
    /// `len` and `out` must be at least 1 (the frame and plan types guarantee it).
    pub fn new(left: f64, extent: f64, out: u32, len: usize) -> Taps {
        let out = out.max(1) as usize;
        let len = len.max(1);
        let scale = extent / out as f64;
        let filter_scale = scale.max(1.0);
        let support = filter_scale; // the triangle's support is 1, widened when shrinking
                                    // PIL's window size, capped by the line.
        let width = ((support.ceil() as usize) * 2 + 1).min(len);
        let mut start = Vec::with_capacity(out);
        let mut weights = vec![0i32; out * width];
        let mut raw = Vec::with_capacity(width);
        for i in 0..out {
            let center = left + (i as f64 + 0.5) * scale;
            // C's (int) cast truncates towards zero; PIL clamps the window to the line.
            let first = ((center - support + 0.5) as i64).max(0) as usize;
            let end = (((center + support + 0.5) as i64).max(0) as usize).min(len);
            let first = first.min(end);
            raw.clear();
            raw.extend((first..end).map(|j| {
                let t = ((j as f64 - center + 0.5) / filter_scale).abs();
                if t < 1.0 {
                    1.0 - t
                } else {
                    0.0
                }
            }));
            let total: f64 = raw.iter().sum();
            // Shift a short window inside the line; its weights keep their source positions.
            let s = first.min(len - width);
            let row = &mut weights[i * width..(i + 1) * width];
            if total > 0.0 {
                for (k, w) in raw.iter().enumerate() {
                    // PIL rounds half away from zero; the weights are never negative here.
                    if let Some(slot) = row.get_mut(first + k - s) {
                        *slot = (w / total * ONE + 0.5) as i32;
                    }
                }
            }
            start.push(s as u32);
        }
        Taps {
            start,
            width,
            weights,
        }
    }

    /// Taps of `filter` resampling the box `[left, left + extent)` of a line of `len` samples to
    /// `out` samples.
    pub fn for_filter(filter: Filter, left: f64, extent: f64, out: u32, len: usize) -> Taps {
        match filter {
            Filter::Bilinear => Taps::new(left, extent, out, len),
            Filter::BilinearAlignCorners => {
                let (first, step) = align_corners_line(left, extent, out);
                Taps::align_corners(first, step, out, len)
            }
        }
    }

    /// The taps of a 4:2:0 chroma line of `len` samples for the same resample of the luma box
    /// `[left, left + extent)`: PIL's filter resamples the half-size box; `align_corners` reads the
    /// chroma plane at the very points it reads the luma plane (chroma sample `k` is centred on
    /// luma position `2k + 1`, between the two luma samples it covers).
    pub fn chroma_for_filter(filter: Filter, left: f64, extent: f64, out: u32, len: usize) -> Taps {
        match filter {
            Filter::Bilinear => Taps::new(left / 2.0, extent / 2.0, out, len),
            Filter::BilinearAlignCorners => {
                let (first, step) = align_corners_line(left, extent, out);
                Taps::align_corners((first + 0.5) / 2.0 - 0.5, step / 2.0, out, len)
            }
        }
    }

    /// Two-tap linear interpolation: output sample `i` reads the line at index `first + i * step`
    /// (clamped to the line), weighting its two neighbours by distance. Every window has two taps
    /// (one on a line of one sample), and the two weights sum to exactly one.
    pub fn align_corners(first: f64, step: f64, out: u32, len: usize) -> Taps {
        let out = out.max(1) as usize;
        let len = len.max(1);
        let width = len.min(2);
        let mut start = Vec::with_capacity(out);
        let mut weights = Vec::with_capacity(out * width);
        let one = 1i32 << PRECISION_BITS;
        for i in 0..out {
            let at = (first + i as f64 * step).clamp(0.0, (len - 1) as f64);
            if width == 1 {
                start.push(0);
                weights.push(one);
                continue;
            }
            // The pair (s, s + 1) around `at`; the last sample is the pair's right end.
            let s = (at.floor() as usize).min(len - 2);
            let right = ((at - s as f64) * ONE).round() as i32;
            start.push(s as u32);
            weights.extend([one - right, right]);
        }
        Taps {
            start,
            width,
            weights,
        }
    }

    /// Number of output samples.
    pub fn len(&self) -> usize {
        self.start.len()
    }

    /// First source sample read and the weights of output sample `i`.
    #[inline(always)]
    pub fn window(&self, i: usize) -> (usize, &[i32]) {
        (
            self.start[i] as usize,
            &self.weights[i * self.width..(i + 1) * self.width],
        )
    }

    /// The range of source samples any output sample reads.
    pub fn span(&self) -> std::ops::Range<usize> {
        let lo = self.start.iter().copied().min().unwrap_or(0) as usize;
        let hi = self
            .start
            .iter()
            .copied()
            .max()
            .map_or(0, |s| s as usize + self.width);
        lo..hi
    }
}

/// `align_corners` on a box: output sample `i` of `out` reads index `first + i * step`, where the
/// first and last samples land on the centres of the box's first and last pixels (the whole line:
/// `0` and `len - 1`, TensorFlow's `align_corners = true`). One output sample reads the first.
fn align_corners_line(left: f64, extent: f64, out: u32) -> (f64, f64) {
    let step = if out > 1 {
        (extent - 1.0) / (out - 1) as f64
    } else {
        0.0
    };
    (left, step)
}

/// A weighted sum of 8-bit samples (with its rounding half already added) as PIL stores it.
#[inline(always)]
pub fn to_u8(acc: i32) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// The rounding half to start a fixed-point sum with.
pub const HALF: i32 = 1 << (PRECISION_BITS - 1);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_stay_inside_the_line_and_sum_to_one() {
        for &(left, extent, out, len) in &[
            (0.0, 1920.0, 256u32, 1920usize),
            (20.0, 280.0, 224, 320),
            (0.0, 13.0, 256, 13),
            (0.0, 1.0, 224, 1),
            (3.5, 2.0, 7, 9),
        ] {
            let t = Taps::new(left, extent, out, len);
            assert_eq!(t.len(), out as usize);
            for i in 0..t.len() {
                let (s, w) = t.window(i);
                assert!(s + t.width <= len, "window past the line");
                let sum: i64 = w.iter().map(|&v| v as i64).sum();
                // Each weight is rounded on its own: the sum is one within half a unit per tap.
                assert!(
                    (sum - (1i64 << PRECISION_BITS)).unsigned_abs() <= t.width as u64,
                    "weights sum to {sum}"
                );
            }
        }
    }

    #[test]
    fn align_corners_lands_on_the_end_pixels_and_interpolates_between() {
        // 5 samples to 3: indices 0, 2, 4 exactly; 3 to 5: 0, 0.5, 1, 1.5, 2.
        let t = Taps::for_filter(Filter::BilinearAlignCorners, 0.0, 5.0, 3, 5);
        let one = 1 << PRECISION_BITS;
        assert_eq!(t.width, 2);
        assert_eq!(t.start, vec![0, 2, 3]);
        assert_eq!(t.weights, vec![one, 0, one, 0, 0, one]);
        let t = Taps::for_filter(Filter::BilinearAlignCorners, 0.0, 3.0, 5, 3);
        assert_eq!(t.start, vec![0, 0, 1, 1, 1]);
        let half = one / 2;
        assert_eq!(
            t.weights,
            vec![one, 0, half, half, one, 0, half, half, 0, one]
        );
        // A line of one sample, and one output sample.
        let t = Taps::for_filter(Filter::BilinearAlignCorners, 0.0, 1.0, 4, 1);
        assert_eq!((t.width, t.start.len()), (1, 4));
        assert!(t.weights.iter().all(|&w| w == one));
        let t = Taps::for_filter(Filter::BilinearAlignCorners, 0.0, 9.0, 1, 9);
        assert_eq!(
            (t.start.clone(), t.weights.clone()),
            (vec![0], vec![one, 0])
        );
    }

    #[test]
    fn align_corners_chroma_reads_the_luma_points() {
        // Luma indices 0, 1.5, 3, ... on a line of 8; chroma sample k is centred on luma 2k + 0.5
        // (index space), so luma index p is chroma index (p + 0.5) / 2 - 0.5.
        let luma = 8;
        let t = Taps::chroma_for_filter(Filter::BilinearAlignCorners, 0.0, luma as f64, 5, 4);
        let one = (1 << PRECISION_BITS) as f64;
        for i in 0..5 {
            let p = i as f64 * 7.0 / 4.0;
            let want = ((p + 0.5) / 2.0 - 0.5).clamp(0.0, 3.0);
            let (s, w) = t.window(i);
            let got = s as f64 + w[1] as f64 / one;
            assert!((got - want).abs() < 1e-6, "sample {i}: {got} != {want}");
        }
    }

    #[test]
    fn a_constant_line_stays_constant() {
        let t = Taps::new(0.0, 1920.0, 224, 1920);
        for i in 0..t.len() {
            let (_, w) = t.window(i);
            let acc = w.iter().fold(HALF, |a, &k| a + k * 200);
            assert_eq!(to_u8(acc), 200);
        }
    }
}
