//! prescreen runtime: on-device screening of camera frames with a small image classifier.
//!
//! The tree follows a frame (DESIGN.md, "Flow"). First the contracts every stage shares:
//!
//! * [`frame`]: a validated, borrowed camera frame (NV21, NV12, I420, YUV_420_888, BGRA, RGBA, RGB),
//!   with colour space, orientation and timestamp.
//! * [`manifest`]: what a model is and how to feed it; the only source of preprocessing parameters.
//! * [`policy`]: what a moderation policy asks (labels, thresholds, sampling, evidence).
//! * [`error`]: typed errors, reaching hosts through [`ErrorKind`]; [`files`]: reading untrusted
//!   files (regular files only, through a hard limit).
//!
//! Then the stages, in the order a frame meets them:
//!
//! * [`preprocess`]: frame to model input ([`preprocess::CpuPreprocessor`]), the scalar
//!   [`preprocess::reference`] every backend is tested against, the backend choice
//!   ([`preprocess::backend`]: `auto | gpu | cpu` with CPU fallback) and `preprocess::gpu`
//!   (feature `gpu`): wgpu compute shaders.
//! * [`inference`]: tract-based loading with checksum, IO and golden self-test
//!   ([`inference::model`]), the graph rewrite and the integer kernels.
//! * [`stream`]: one frame through the three stages ([`stream::scorer`]), which frames to score
//!   ([`stream::sampling`]), scores to flagged segments ([`stream::segmenter`]), and the live engine
//!   around them ([`stream::engine`]: non-blocking submit, worker thread, events, metrics).
//! * [`reporting`]: a closed segment as versioned JSON with JPEG evidence
//!   ([`reporting::report`]), the durable, budgeted store reports wait in ([`reporting::outbox`]),
//!   and `reporting::upload` (feature `upload`): delivery over HTTP(S).
//!
//! Last, [`session`]: one stream with its outbox and an events thread, the object the mobile
//! bindings wrap.
//!
//! ```no_run
//! use prescreen_runtime::{Backend, Frame, LoadOptions, Model, Plane, Rotation, Scorer, Variant};
//! # fn main() -> prescreen_runtime::Result<()> {
//! let model = Model::load_dir("models/nsfwjs", Variant::Float, &LoadOptions::default())?;
//! let mut scorer = Scorer::new(&model, Backend::Cpu)?;
//! let (y, uv) = (vec![16u8; 1920 * 1080], vec![128u8; 1920 * 540]);
//! let frame = Frame::nv12(1920, 1080, Plane::new(&y, 1920), Plane::new(&uv, 1920))?
//!     .with_orientation(Rotation::R90, false)
//!     .with_timestamp_us(33_333);
//! let result = scorer.score(&frame)?;
//! let labels = &scorer.model().manifest().output.labels; // Drawing, Hentai, Neutral, Porn, Sexy
//! for (label, p) in labels.iter().zip(&result.scores.probabilities) {
//!     println!("{label} {p:.4}");
//! }
//! # Ok(()) }
//! ```

// Contracts: what crosses every stage (DESIGN.md, "Contracts").
pub mod error;
pub mod files;
pub mod frame;
pub mod manifest;
pub mod policy;

// The stages, in the order a frame meets them.
pub mod inference;
pub mod preprocess;
pub mod reporting;
pub mod stream;

// The composition the mobile bindings wrap.
pub mod session;

/// The integer convolution's kernels, compared bit for bit on inputs built from arbitrary bytes
/// (the fuzz target `qconv`).
#[cfg(feature = "fuzzing")]
pub use inference::qconv::fuzzing;

pub use error::{Error, ErrorKind, GpuError, Result};

// What a host needs, at the crate root: the app-facing session, the pieces for driving the stages
// directly (a desktop tool, a test), and the frame types both use. Everything else is reached
// through its stage's module.
pub use frame::{ColorMatrix, ColorRange, Frame, FrameError, PixelFormat, Plane, Rotation};
pub use inference::model::{LoadOptions, Model, Scores};
pub use manifest::{Manifest, Variant};
pub use policy::Policy;
pub use preprocess::backend::Backend;
pub use session::{Session, SessionConfig, SessionEvent, SessionMetrics};
pub use stream::engine::{CameraBuffer, Engine, EngineOptions, Event, Submitted};
pub use stream::scorer::Scorer;
