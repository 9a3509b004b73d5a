//! `prescreen make-eval-set`: writes one of the labelled sets with no explicit content
//! (prescreen::eval::generate), which can live anywhere.

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::ValueEnum;
use prescreen::eval::generate::{self, SetKind};

/// The arguments of `prescreen make-eval-set`.
#[derive(clap::Args)]
pub(super) struct MakeEvalSetArgs {
    /// Output folder (created).
    output: PathBuf,
    /// Which set.
    #[arg(long, value_enum)]
    kind: SetKindArg,
    /// Stream frame size.
    #[arg(long, default_value_t = 320)]
    width: u32,
    /// Stream frame size.
    #[arg(long, default_value_t = 180)]
    height: u32,
    /// Seconds each photograph is on screen in the streams.
    #[arg(long, default_value_t = 1.0)]
    shot_seconds: f64,
}

impl MakeEvalSetArgs {
    /// Writes the set as the arguments say.
    pub(super) fn run(self) -> Result<()> {
        let Self {
            output,
            kind,
            width,
            height,
            shot_seconds,
        } = self;
        let kind = match kind {
            SetKindArg::Redness => SetKind::Redness,
            SetKindArg::Benign => SetKind::Benign,
            SetKindArg::Degraded => SetKind::Degraded,
        };
        let set = generate::make_set(
            &output,
            kind,
            Path::new(prescreen::PHOTO_DIR),
            width,
            height,
            shot_seconds,
        )?;
        eprintln!(
            "wrote a labelled set to {}: {} stream(s) and the images in {}/images",
            output.display(),
            set.streams.len(),
            output.display()
        );
        Ok(())
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum SetKindArg {
    /// Red intervals and red images, for the test classifier (models/redness).
    Redness,
    /// Benign photographs and stream, for false-flag rates.
    Benign,
    /// Benign content out of focus, for the quality gate's false-flag rates.
    Degraded,
}
