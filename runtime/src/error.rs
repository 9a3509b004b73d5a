//! The runtime's error type.
//!
//! Messages name files, shapes, formats, labels and ids; never pixel values or user data (they end
//! up in host-app logs).

use std::path::PathBuf;

use crate::frame::FrameError;
use crate::manifest::Variant;

/// Result with the runtime's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the runtime.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The frame is malformed.
    #[error("invalid frame: {0}")]
    Frame(#[from] FrameError),
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The manifest is malformed or unsupported.
    #[error("model manifest {path}: {reason}")]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The policy is malformed or unsupported.
    #[error("policy {path}: {reason}")]
    Policy {
        /// The policy file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The policy flags a label the model does not have (it would never be flagged).
    #[error(
        "policy {policy_version} flags label {label:?}, which model {model} does not have \
         (its labels: {labels:?})"
    )]
    PolicyLabel {
        /// The policy's version.
        policy_version: String,
        /// The label the model lacks.
        label: String,
        /// The model's id.
        model: String,
        /// The model's labels.
        labels: Vec<String>,
    },
    /// The manifest lists no file for the variant.
    #[error("the manifest has no {variant} model file")]
    NoSuchVariant {
        /// The variant asked for.
        variant: Variant,
    },
    /// The model file is not the one the manifest pins.
    #[error("model file {path} has sha256 {actual}, the manifest pins {expected}")]
    Checksum {
        /// The model file.
        path: PathBuf,
        /// Checksum found.
        actual: String,
        /// Checksum pinned.
        expected: String,
    },
    /// The model file is larger than any model this runtime accepts.
    #[error("model file {path} is {size} bytes, more than the {limit} accepted")]
    ModelTooLarge {
        /// The model file.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// tract could not parse, type or optimise the model.
    #[error("cannot load model {path}: {reason}")]
    ModelLoad {
        /// The model file.
        path: PathBuf,
        /// tract's explanation.
        reason: String,
    },
    /// The model's inputs or outputs differ from the manifest.
    #[error("model {path} does not match its manifest: {reason}")]
    ModelMismatch {
        /// The model file.
        path: PathBuf,
        /// The difference.
        reason: String,
    },
    /// The model gave the wrong answer on the manifest's golden input.
    #[error(
        "model {path} failed its golden self-test: output {actual:?}, expected {expected:?} \
         (log-probability tolerance {tolerance}); refusing to run a model that computes wrong scores"
    )]
    GoldenMismatch {
        /// The model file.
        path: PathBuf,
        /// Output produced.
        actual: Vec<f32>,
        /// Output expected.
        expected: Vec<f32>,
        /// Tolerance.
        tolerance: f32,
    },
    /// The output buffer does not have the input tensor's length.
    #[error("input tensor buffer has {got} values, the model takes {expected}")]
    TensorSize {
        /// Length the model takes.
        expected: usize,
        /// Length given.
        got: usize,
    },
    /// Preprocessing failed (an internal limit of the resampler).
    #[error("preprocessing failed: {0}")]
    Preprocess(String),
    /// Inference failed at run time.
    #[error("inference failed: {0}")]
    Inference(String),
    /// The output is not a valid probability vector (NaN, out of range, or not summing to 1).
    #[error("model output {0:?} is not a valid probability vector")]
    BadOutput(Vec<f32>),
    /// The outbox could not store, read, move or remove a report (disk full, permissions, ...).
    /// Nothing is lost: a report whose `put` failed is still the caller's to retry.
    #[error("outbox storage: cannot {op} {name}: {source}")]
    Storage {
        /// What was being done (write, read, list, remove, move).
        op: &'static str,
        /// The file or folder, relative to the outbox.
        name: String,
        /// The cause.
        source: std::io::Error,
    },
    /// No pending report has this id.
    #[error("no pending report {0}")]
    UnknownReport(String),
    /// A report id that is not 32 lowercase hex digits (ids name files: nothing else is accepted).
    #[error("{0:?} is not a report id (32 lowercase hex digits)")]
    BadReportId(String),
    /// A report could not be built, encoded or parsed.
    #[error("report: {0}")]
    Report(String),
    /// The uploader is misconfigured (bad endpoint, TLS unavailable).
    #[error("uploader: {0}")]
    Upload(String),
    /// GPU preprocessing is unavailable or failed (the CPU path is the fallback).
    #[error("GPU preprocessing: {0}")]
    Gpu(#[from] GpuError),
    /// An argument outside what the API accepts (a rotation of 45 degrees, an empty stream id).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The session (or engine) was closed: nothing more can be done with it.
    #[error("the screener is closed")]
    Closed,
    /// Something the runtime did not expect (a thread that could not start, a panic caught at a
    /// binding's boundary).
    #[error("internal error: {0}")]
    Internal(String),
}

/// The few kinds of [`Error`] a host app can act on differently: what the mobile bindings turn
/// into exception classes (Kotlin) and error cases (Swift). Mapped in one place,
/// [`Error::kind`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The frame is malformed (sizes, strides, buffer lengths): fix the caller; the screener goes
    /// on.
    InvalidFrame,
    /// An argument is out of range (rotation, ids, configuration values).
    InvalidArgument,
    /// The model or its manifest could not be read, verified or loaded.
    ModelLoad,
    /// The policy could not be read or is invalid.
    Policy,
    /// GPU preprocessing was required and no usable GPU was found.
    GpuUnavailable,
    /// The outbox could not read or write its files (full disk, permissions).
    Storage,
    /// No pending report has this id.
    UnknownReport,
    /// Used after close.
    Closed,
    /// Inference or preprocessing failed, or an internal error.
    Internal,
}

impl ErrorKind {
    /// A stable lowercase name (`invalid_frame`, `model_load`, ...), the code the bindings pass.
    pub fn name(self) -> &'static str {
        match self {
            Self::InvalidFrame => "invalid_frame",
            Self::InvalidArgument => "invalid_argument",
            Self::ModelLoad => "model_load",
            Self::Policy => "policy",
            Self::GpuUnavailable => "gpu_unavailable",
            Self::Storage => "storage",
            Self::UnknownReport => "unknown_report",
            Self::Closed => "closed",
            Self::Internal => "internal",
        }
    }
}

impl Error {
    /// What kind of error this is for a host app.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Frame(_) => ErrorKind::InvalidFrame,
            Error::InvalidArgument(_) | Error::BadReportId(_) => ErrorKind::InvalidArgument,
            Error::Io { .. }
            | Error::Manifest { .. }
            | Error::NoSuchVariant { .. }
            | Error::Checksum { .. }
            | Error::ModelTooLarge { .. }
            | Error::ModelLoad { .. }
            | Error::ModelMismatch { .. }
            | Error::GoldenMismatch { .. } => ErrorKind::ModelLoad,
            Error::Policy { .. } | Error::PolicyLabel { .. } => ErrorKind::Policy,
            Error::Gpu(_) => ErrorKind::GpuUnavailable,
            Error::Storage { .. } => ErrorKind::Storage,
            Error::UnknownReport(_) => ErrorKind::UnknownReport,
            Error::Closed => ErrorKind::Closed,
            Error::TensorSize { .. }
            | Error::Preprocess(_)
            | Error::Inference(_)
            | Error::BadOutput(_)
            | Error::Report(_)
            | Error::Upload(_)
            | Error::Internal(_) => ErrorKind::Internal,
        }
    }
}

/// What went wrong on the GPU path. Messages name adapters, sizes and wgpu's own diagnostics (which
/// describe API objects, never buffer contents).
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum GpuError {
    /// The runtime was built without the `gpu` feature.
    #[error("this build has no GPU support (feature `gpu` is off)")]
    NotBuilt,
    /// No adapter with compute shaders was found.
    #[error("no GPU adapter with compute shaders found")]
    NoAdapter,
    /// [`crate::preprocess::backend::Backend::Auto`] found only a software rasteriser (a CPU adapter such as
    /// Mesa's lavapipe), which is slower than the CPU path; ask for `Gpu` to use it anyway.
    #[error("only a software adapter is available ({adapter}): the CPU path is faster")]
    SoftwareOnly {
        /// The adapter's name and backend.
        adapter: String,
    },
    /// The adapter refused to open a device.
    #[error("cannot open a device on {adapter}: {reason}")]
    Device {
        /// The adapter's name and backend.
        adapter: String,
        /// wgpu's explanation.
        reason: String,
    },
    /// The adapter produced a wrong tensor for the start-up test frames.
    #[error("adapter {adapter} failed the start-up self-test ({case}: max |gpu - reference| {max_diff})")]
    SelfTest {
        /// The adapter's name and backend.
        adapter: String,
        /// Which test frame.
        case: &'static str,
        /// Largest difference found.
        max_diff: f32,
    },
    /// The frame's planes need larger buffers than the device allows (handled on the CPU).
    #[error("frame needs a {bytes}-byte GPU buffer, the device allows {limit}")]
    FrameTooLarge {
        /// Bytes needed.
        bytes: u64,
        /// The device's limit.
        limit: u64,
    },
    /// wgpu reported a validation error.
    #[error("validation error: {0}")]
    Validation(String),
    /// The device ran out of memory.
    #[error("out of GPU memory")]
    OutOfMemory,
    /// wgpu reported an internal error.
    #[error("internal GPU error: {0}")]
    Internal(String),
    /// The device was lost (driver reset, GPU removed, ...).
    #[error("GPU device lost: {0}")]
    DeviceLost(String),
    /// Mapping the readback buffer failed.
    #[error("readback map failed: {0}")]
    Map(String),
    /// The GPU did not finish in time.
    #[error("GPU did not finish within {0} ms")]
    Timeout(u64),
    /// The pipelined API was used out of order (submit on a full ring, receive on an empty one).
    #[error("GPU ring: {0}")]
    Ring(&'static str),
    /// A failure injected by a test.
    #[error("injected failure (test)")]
    Injected,
}
