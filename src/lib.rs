//! The prescreen desktop harness as a library: frame generation, `.y4m` reading, the sample stream,
//! timing statistics, the reference report receiver ([`ingest`]) and evaluation metrics
//! ([`eval`]). The `prescreen` binary
//! (src/bin/prescreen/), the integration tests and the benchmarks are built on it.

pub mod eval;
pub mod framegen;
pub mod images;
pub mod ingest;
pub mod soak;
pub mod stats;
pub mod stream;
pub mod timeline;
pub mod y4m;

/// Folder of the default model (`--model-dir`), relative to the repository root: nsfwjs's
/// MobileNetV2, the faster of the two real models at the same fidelity (README, "Both models, side
/// by side").
pub const DEFAULT_MODEL_DIR: &str = "models/nsfwjs";
/// Folder of the photographs exported by `models/prepare.py`.
pub const PHOTO_DIR: &str = "models/photos";
