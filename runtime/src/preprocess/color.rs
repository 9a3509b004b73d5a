//! Y'CbCr to R'G'B' coefficients for the supported matrices and ranges.

use crate::frame::{ColorMatrix, ColorRange};

/// A Y'CbCr (8-bit scale, fractional allowed) to R'G'B' (0..=255) converter.
#[derive(Clone, Copy, Debug)]
pub struct YuvToRgb {
    y_offset: f32,
    y_scale: f32,
    r_v: f32,
    g_u: f32,
    g_v: f32,
    b_u: f32,
}

impl YuvToRgb {
    /// The converter for a matrix and range.
    pub fn new(matrix: ColorMatrix, range: ColorRange) -> Self {
        let (kr, kb) = matrix.kr_kb();
        let kg = 1.0 - kr - kb;
        let (y_offset, y_scale, c_scale) = match range {
            ColorRange::Full => (0.0, 1.0, 1.0),
            ColorRange::Limited => (16.0, 255.0 / 219.0, 255.0 / 224.0),
        };
        Self {
            y_offset,
            y_scale: y_scale as f32,
            r_v: (2.0 * (1.0 - kr) * c_scale) as f32,
            g_u: (-2.0 * kb * (1.0 - kb) / kg * c_scale) as f32,
            g_v: (-2.0 * kr * (1.0 - kr) / kg * c_scale) as f32,
            b_u: (2.0 * (1.0 - kb) * c_scale) as f32,
        }
    }

    /// Converts one sample; the result is clamped to 0..=255.
    #[inline(always)]
    pub fn convert(&self, y: f32, u: f32, v: f32) -> [f32; 3] {
        let y = (y - self.y_offset) * self.y_scale;
        let (u, v) = (u - 128.0, v - 128.0);
        [
            (y + self.r_v * v).clamp(0.0, 255.0),
            (y + self.g_u * u + self.g_v * v).clamp(0.0, 255.0),
            (y + self.b_u * u).clamp(0.0, 255.0),
        ]
    }
}
