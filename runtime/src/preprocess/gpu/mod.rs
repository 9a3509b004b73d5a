//! The GPU backend (feature `gpu`): preprocessing with wgpu compute shaders (`shaders/*.wgsl`).
//!
//! Same contract and same arithmetic as the CPU path ([`crate::preprocess`]): the shared
//! [`Plan`] says what to sample, the shared filter tables (`Taps`, the manifest filter's weights
//! in 22-bit fixed point) say how, and are computed on the CPU once per geometry and uploaded once.
//! Two passes:
//!
//! 1. `resample_rows.wgsl`: the horizontal resample of the source rows the vertical taps read
//!    (packed RGB rounded to 8 bits as PIL does, or kept exact for a filter that does not round;
//!    YUV planes exact, unrounded).
//! 2. `to_tensor.wgsl`: per tensor pixel, rotation/mirror, the vertical resample, YUV to RGB,
//!    channel order, normalisation, layout and letterbox padding.
//!
//! `signature.wgsl` computes the scene gate's [`Signature`] exactly as the CPU does.
//!
//! Every buffer is owned by a [`GpuPreprocessor`] and reused: once frame sizes are stable, a frame
//! costs one plane upload, one uniform write, two dispatches and one readback, and allocates
//! nothing. Two slots let frame N+1 upload and run while frame N is read back
//! ([`GpuPreprocessor::submit`] / [`GpuPreprocessor::receive`]).
//!
//! [`Plan`]: crate::preprocess::geometry::Plan
//! [`Signature`]: crate::stream::sampling::Signature

mod buffers;
mod context;
mod params;
mod pipelines;
mod preprocessor;

pub use context::GpuContext;
pub use preprocessor::{GpuPreprocessor, GpuStageTimes};
