//! Frames to model input tensors.
//!
//! The contract, for every backend: the upright picture (frame rotated, then mirrored) is resized and
//! cropped as the manifest's [`InputSpec`] says, with its filter (PIL's antialiased bilinear, or
//! TensorFlow's `align_corners` bilinear: [`crate::manifest::Filter`]); YUV planes are each
//! resampled on their own grid and converted with the frame's matrix and range; channels are
//! ordered, scaled and normalised, and written in the model's layout. [`reference`] is the slow,
//! obvious implementation of that contract that tests hold every backend to.

pub mod backend;
mod color;
mod cpu;
pub(crate) mod geometry;
#[cfg(feature = "gpu")]
pub mod gpu;
pub(crate) mod kernel;
pub mod reference;

pub use color::YuvToRgb;
pub use cpu::CpuPreprocessor;
pub use geometry::Plan;

use crate::manifest::{InputSpec, Layout};

/// Writes normalised pixels into the tensor in the model's layout and channel order.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TensorWriter {
    affine: [(f32, f32); 3],
    source: [usize; 3],
    layout: Layout,
    width: usize,
    plane: usize,
}

impl TensorWriter {
    pub(crate) fn new(spec: &InputSpec) -> Self {
        Self {
            affine: spec.affine(),
            source: spec.rgb_source(),
            layout: spec.layout,
            width: spec.width as usize,
            plane: spec.width as usize * spec.height as usize,
        }
    }

    #[inline(always)]
    fn put(&self, out: &mut [f32], x: usize, y: usize, rgb: [f32; 3]) {
        let pixel = y * self.width + x;
        for (k, &(scale, offset)) in self.affine.iter().enumerate() {
            let v = rgb[self.source[k]] * scale + offset;
            match self.layout {
                Layout::Nhwc => out[pixel * 3 + k] = v,
                Layout::Nchw => out[k * self.plane + pixel] = v,
            }
        }
    }

    /// Fills the plan's destination rectangle; `fetch(i)` gives R, G, B (0..=255) of pixel `i` of
    /// the resampled picture in stored orientation.
    #[inline(always)]
    pub(crate) fn write_rgb(
        &self,
        plan: &Plan,
        out: &mut [f32],
        fetch: impl Fn(usize) -> [f32; 3],
    ) {
        let rw = plan.resized_w as usize;
        for dy in 0..plan.dst.h {
            for dx in 0..plan.dst.w {
                let (sx, sy) = plan.source_index(dx, dy);
                let rgb = fetch(sy as usize * rw + sx as usize);
                self.put(
                    out,
                    (plan.dst.x + dx) as usize,
                    (plan.dst.y + dy) as usize,
                    rgb,
                );
            }
        }
    }
}

/// Fills the whole tensor with the letterbox padding colour (the picture is written over it).
pub(crate) fn write_padding(spec: &InputSpec, writer: &TensorWriter, plan: &Plan, out: &mut [f32]) {
    let pad = [spec.resize.pad as f32; 3];
    for y in 0..plan.out_h as usize {
        for x in 0..plan.out_w as usize {
            writer.put(out, x, y, pad);
        }
    }
}
