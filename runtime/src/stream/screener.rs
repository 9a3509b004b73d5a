//! One worker's pipeline: preprocess a frame straight into the model's input, run the model.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::Result;
use crate::frame::Frame;
use crate::inference::model::{Model, Scores, Session};
use crate::manifest::Variant;
use crate::preprocess::backend::{ActiveBackend, Backend, Preprocessor};

/// The scores of one frame and how long each stage took.
#[derive(Clone, Debug)]
pub struct Screened {
    /// Probabilities per label.
    pub scores: Scores,
    /// Time spent turning the frame into the input tensor.
    pub preprocess: Duration,
    /// Time spent in the model.
    pub infer: Duration,
}

/// Preprocessor and inference session of one worker. Not shared between threads: open one per
/// worker from a shared [`Model`].
#[derive(Debug)]
pub struct Screener {
    preprocessor: Preprocessor,
    session: Session,
}

impl Screener {
    /// Loads the model in `dir` (checksum, IO check, golden self-test) and opens a screener on it.
    pub fn open(dir: impl AsRef<Path>, variant: Variant) -> Result<Self> {
        Self::new(&Model::load_dir(dir, variant)?)
    }

    /// Like [`Screener::open`], preprocessing on `backend`.
    pub fn open_with_backend(
        dir: impl AsRef<Path>,
        variant: Variant,
        backend: Backend,
    ) -> Result<Self> {
        Self::with_backend(&Model::load_dir(dir, variant)?, backend)
    }

    /// A screener on an already loaded model, preprocessing on the CPU.
    pub fn new(model: &Model) -> Result<Self> {
        Self::with_backend(model, Backend::Cpu)
    }

    /// A screener on an already loaded model, preprocessing on `backend` (see [`Preprocessor`]).
    pub fn with_backend(model: &Model, backend: Backend) -> Result<Self> {
        Self::with_preprocessor(model, Preprocessor::new(&model.manifest().input, backend)?)
    }

    /// A screener on an already loaded model with a preprocessor made for its input.
    pub fn with_preprocessor(model: &Model, preprocessor: Preprocessor) -> Result<Self> {
        Ok(Self {
            preprocessor,
            session: model.session()?,
        })
    }

    /// The preprocessor (active backend, fallbacks, GPU stage times).
    pub fn preprocessor(&self) -> &Preprocessor {
        &self.preprocessor
    }

    /// The preprocessor, mutably (e.g. for fault injection in tests).
    pub fn preprocessor_mut(&mut self) -> &mut Preprocessor {
        &mut self.preprocessor
    }

    /// The backend that preprocesses the next frame.
    pub fn active_backend(&self) -> ActiveBackend {
        self.preprocessor.active_backend()
    }

    /// The model.
    pub fn model(&self) -> &Model {
        self.session.model()
    }

    /// Scores one frame.
    pub fn screen(&mut self, frame: &Frame<'_>) -> Result<Screened> {
        let start = Instant::now();
        self.preprocessor.run(frame, self.session.input_mut())?;
        let preprocessed = Instant::now();
        let scores = self.session.run()?;
        Ok(Screened {
            scores,
            preprocess: preprocessed - start,
            infer: preprocessed.elapsed(),
        })
    }

    /// Preprocesses one frame into `out` without running the model (for tests and benchmarks).
    pub fn preprocess_into(&mut self, frame: &Frame<'_>, out: &mut [f32]) -> Result<()> {
        self.preprocessor.run(frame, out)
    }
}
