//! One worker's pipeline: preprocess a frame straight into the model's input, run the model.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::Result;
use crate::frame::Frame;
use crate::manifest::Variant;
use crate::model::{Model, Scores, Session};
use crate::preprocess::CpuPreprocessor;

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
    preprocessor: CpuPreprocessor,
    session: Session,
}

impl Screener {
    /// Loads the model in `dir` (checksum, IO check, golden self-test) and opens a screener on it.
    pub fn open(dir: impl AsRef<Path>, variant: Variant) -> Result<Self> {
        Self::new(&Model::load_dir(dir, variant)?)
    }

    /// A screener on an already loaded model.
    pub fn new(model: &Model) -> Result<Self> {
        Ok(Self {
            preprocessor: CpuPreprocessor::new(&model.manifest().input),
            session: model.session()?,
        })
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
