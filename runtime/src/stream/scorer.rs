//! One worker's pipeline: preprocess a frame straight into the model's input, run the model.

use std::time::{Duration, Instant};

use crate::error::Result;
use crate::frame::Frame;
use crate::inference::model::{Model, Runner, Scores};
use crate::preprocess::backend::{ActiveBackend, Backend, Preprocessor};

/// The scores of one frame and how long each stage took.
#[derive(Clone, Debug)]
pub struct ScoredFrame {
    /// Probabilities per label.
    pub scores: Scores,
    /// Time spent turning the frame into the input tensor.
    pub preprocess: Duration,
    /// Time spent in the model.
    pub infer: Duration,
}

/// Preprocessor and inference runner of one worker. Not shared between threads: open one per
/// worker from a shared [`Model`].
#[derive(Debug)]
pub struct Scorer {
    preprocessor: Preprocessor,
    runner: Runner,
}

impl Scorer {
    /// A scorer on a loaded model (see [`Model::load_dir`]), preprocessing on `backend` (see
    /// [`Preprocessor`]).
    pub fn new(model: &Model, backend: Backend) -> Result<Self> {
        Self::with_preprocessor(model, Preprocessor::new(&model.manifest().input, backend)?)
    }

    /// A scorer on an already loaded model with a preprocessor made for its input.
    pub fn with_preprocessor(model: &Model, preprocessor: Preprocessor) -> Result<Self> {
        Ok(Self {
            preprocessor,
            runner: model.runner()?,
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
        self.runner.model()
    }

    /// Scores one frame.
    pub fn score(&mut self, frame: &Frame<'_>) -> Result<ScoredFrame> {
        let start = Instant::now();
        self.preprocessor.run(frame, self.runner.input_mut())?;
        let preprocessed = Instant::now();
        let scores = self.runner.run()?;
        Ok(ScoredFrame {
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
