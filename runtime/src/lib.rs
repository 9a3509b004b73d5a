//! prescreen runtime: on-device screening of camera frames with a small image classifier.
//!
//! The pieces, in the order a frame meets them:
//!
//! * [`frame`]: a validated, borrowed camera frame (NV21, NV12, I420, YUV_420_888, BGRA, RGBA, RGB),
//!   with colour space, orientation and timestamp.
//! * [`manifest`]: what a model is and how to feed it; the only source of preprocessing parameters.
//! * [`preprocess`]: frame to model input ([`preprocess::CpuPreprocessor`]), and the scalar
//!   [`preprocess::reference`] every backend is tested against; [`backend`]: the backend choice
//!   (`auto | gpu | cpu`) with CPU fallback; `gpu` (feature `gpu`): wgpu compute shaders.
//! * [`model`]: tract-based loading with checksum, IO and golden self-test, and per-worker sessions.
//! * [`screener`]: the three stages in one object, with per-stage timing.
//! * [`engine`]: the live stream engine (non-blocking submit, worker thread, events, metrics).
//! * [`policy`], [`sampling`], [`segmenter`]: what to score and how scores become flagged segments,
//!   free of clocks, threads and I/O.
//! * [`report`]: a closed segment as versioned JSON with JPEG evidence; [`outbox`]: the durable,
//!   budgeted store reports wait in; `upload` (feature `upload`): delivery over HTTP(S).
//! * [`files`]: reading untrusted files (regular files only, through a hard limit).
//! * [`session`]: one stream with its outbox and an events thread, the object the mobile bindings
//!   wrap; errors reach hosts through [`ErrorKind`].
//!
//! ```no_run
//! use prescreen_runtime::{frame::{Frame, Plane, Rotation}, manifest::Variant, screener::Screener};
//! # fn main() -> prescreen_runtime::Result<()> {
//! let mut screener = Screener::open("models/nsfwjs", Variant::Float)?;
//! let (y, uv) = (vec![16u8; 1920 * 1080], vec![128u8; 1920 * 540]);
//! let frame = Frame::nv12(1920, 1080, Plane::new(&y, 1920), Plane::new(&uv, 1920))?
//!     .with_orientation(Rotation::R90, false)
//!     .with_timestamp_us(33_333);
//! let result = screener.screen(&frame)?;
//! let labels = &screener.model().manifest().output.labels; // Drawing, Hentai, Neutral, Porn, Sexy
//! for (label, p) in labels.iter().zip(&result.scores.probabilities) {
//!     println!("{label} {p:.4}");
//! }
//! # Ok(()) }
//! ```
#![warn(missing_docs, unsafe_op_in_unsafe_fn)]

pub mod backend;
pub mod engine;
pub mod error;
pub mod files;
pub mod frame;
#[cfg(feature = "gpu")]
pub mod gpu;
pub mod manifest;
pub mod model;
pub mod outbox;
pub mod policy;
pub mod preprocess;
mod qconv;
/// The integer convolution's kernels, compared bit for bit on inputs built from arbitrary bytes
/// (the fuzz target `qconv`).
#[cfg(feature = "fuzzing")]
pub use qconv::fuzzing;
pub mod report;
mod rewrite;
pub mod sampling;
pub mod screener;
pub mod segmenter;
pub mod session;
#[cfg(feature = "upload")]
pub mod upload;

pub use error::{Error, ErrorKind, GpuError, Result};
