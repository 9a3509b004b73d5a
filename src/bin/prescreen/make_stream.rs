//! `prescreen make-stream`: writes the sample stream to a `.y4m` file (I420).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use prescreen::stream::SampleStream;
use prescreen::y4m;

use crate::progress::progress;

/// The arguments of `prescreen make-stream`.
#[derive(clap::Args)]
pub(super) struct MakeStreamArgs {
    /// Output file.
    output: PathBuf,
    /// Seconds each photograph is on screen.
    #[arg(long, default_value_t = 1.0)]
    shot_seconds: f64,
    /// Frame size.
    #[arg(long, default_value_t = 1920)]
    width: u32,
    /// Frame size.
    #[arg(long, default_value_t = 1080)]
    height: u32,
    /// Blur every frame along the camera's motion over this many pixels (a fast pan).
    #[arg(long, default_value_t = 0)]
    motion_blur: u32,
}

impl MakeStreamArgs {
    /// Writes the stream as the arguments say.
    pub(super) fn run(self) -> Result<()> {
        let Self {
            output,
            shot_seconds,
            width,
            height,
            motion_blur,
        } = self;
        make_stream(&output, shot_seconds, width, height, motion_blur)
    }
}

fn make_stream(
    output: &Path,
    shot_seconds: f64,
    width: u32,
    height: u32,
    motion_blur: u32,
) -> Result<()> {
    if !width.is_multiple_of(2) || !height.is_multiple_of(2) {
        bail!("the sample stream needs even sizes");
    }
    let mut stream = SampleStream::new(prescreen::PHOTO_DIR, width, height, 30, shot_seconds)?
        .with_motion_blur(motion_blur);
    let mut out = std::io::BufWriter::new(std::fs::File::create(output)?);
    y4m::write_header(&mut out, width, height, stream.fps())?;
    let bar = progress(stream.len() as u64);
    for i in 0..stream.len() {
        y4m::write_frame(&mut out, &stream.frame(i)?)?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    out.flush()?;
    eprintln!("wrote {} frames to {}", stream.len(), output.display());
    Ok(())
}
