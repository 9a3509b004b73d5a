//! PIL's antialiased bilinear filter as tables of taps, shared by the CPU and GPU backends.
//!
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

    /// Number of output samples.
    pub fn len(&self) -> usize {
        self.start.len()
    }

    /// True when there are no output samples.
    pub fn is_empty(&self) -> bool {
        self.start.is_empty()
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
    fn a_constant_line_stays_constant() {
        let t = Taps::new(0.0, 1920.0, 224, 1920);
        for i in 0..t.len() {
            let (_, w) = t.window(i);
            let acc = w.iter().fold(HALF, |a, &k| a + k * 200);
            assert_eq!(to_u8(acc), 200);
        }
    }
}
