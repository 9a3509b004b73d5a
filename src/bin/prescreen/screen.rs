//! `prescreen screen`: screens an image, a folder of images or a `.y4m` video, frame by frame or
//! through the live engine under a policy.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use indicatif::ProgressBar;
use prescreen::framegen::OwnedFrame;
use prescreen::y4m::Y4mReader;
use prescreen_runtime::frame::{ColorMatrix, ColorRange, PixelFormat, Rotation};

use crate::args::ModelArgs;
use crate::engine_run::EngineRun;
use crate::progress::{progress, say};
use crate::run::Run;

/// The arguments of `prescreen screen`.
#[derive(clap::Args)]
pub(super) struct ScreenArgs {
    /// Image file (PNG/JPEG), folder of images, or .y4m file.
    input: PathBuf,
    #[command(flatten)]
    model: ModelArgs,
    /// Feed frames to the runtime in this pixel format (converted first): nv21, nv12, i420,
    /// yuv420, bgra8, rgba8, rgb8. Default: rgb8 for images, i420 for .y4m.
    #[arg(long, value_parser = parse_format)]
    format: Option<PixelFormat>,
    /// Rotation (degrees clockwise) to upright that the frames are tagged with.
    #[arg(long, default_value_t = 0, value_parser = parse_rotation)]
    rotate: u32,
    /// Screen at most this many frames.
    #[arg(long)]
    limit: Option<usize>,
}

impl ScreenArgs {
    /// Screens the input as the arguments say.
    pub(super) fn run(self) -> Result<()> {
        let Self {
            input,
            model,
            format,
            rotate,
            limit,
        } = self;
        screen(&input, &model, format, rotate, limit)
    }
}

fn parse_format(s: &str) -> Result<PixelFormat, String> {
    PixelFormat::from_name(s).ok_or_else(|| format!("unknown format {s:?}"))
}

fn parse_rotation(s: &str) -> Result<u32, String> {
    match s.parse::<i32>().ok().and_then(Rotation::from_degrees) {
        Some(r) => Ok(r.degrees()),
        None => Err("rotation must be 0, 90, 180 or 270".into()),
    }
}

fn score_line(labels: &[String], p: &[f32]) -> String {
    labels
        .iter()
        .zip(p)
        .map(|(l, v)| format!("{l} {v:.4}"))
        .collect::<Vec<_>>()
        .join("  ")
}

fn is_image(p: &Path) -> bool {
    matches!(
        p.extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("png" | "jpg" | "jpeg" | "bmp")
    )
}

fn load_image(path: &Path, format: PixelFormat) -> Result<OwnedFrame> {
    let img = prescreen::images::load_rgb(path)?;
    let (w, h) = img.dimensions();
    // Photographs are full-range BT.601 (JPEG convention) when converted to YUV here.
    Ok(OwnedFrame::from_rgb(
        img.as_raw(),
        w,
        h,
        format,
        ColorMatrix::Bt601,
        ColorRange::Full,
    )?)
}

fn convert(frame: OwnedFrame, format: PixelFormat) -> Result<OwnedFrame> {
    if frame.format == format {
        return Ok(frame);
    }
    bail!("y4m frames can be fed as i420 only (asked for {format})")
}

/// Calls `f` on every frame of `input` (an image, a folder of images, or a .y4m video), at most
/// `limit` of them.
fn for_each_frame(
    input: &Path,
    format: Option<PixelFormat>,
    limit: usize,
    mut f: impl FnMut(OwnedFrame, &str, &ProgressBar) -> Result<()>,
) -> Result<()> {
    if input.extension().is_some_and(|e| e == "y4m") {
        let mut reader =
            Y4mReader::open(input).with_context(|| format!("opening {}", input.display()))?;
        let bar = progress(0);
        let name = input
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let mut n = 0;
        while let Some(frame) = reader.next_frame()? {
            if n >= limit {
                break;
            }
            f(
                convert(frame, format.unwrap_or(PixelFormat::I420))?,
                &name,
                &bar,
            )?;
            n += 1;
        }
        bar.finish_and_clear();
        return Ok(());
    }
    let files: Vec<PathBuf> = if input.is_dir() {
        let mut v: Vec<PathBuf> = std::fs::read_dir(input)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| is_image(p))
            .collect();
        v.sort();
        v
    } else {
        vec![input.to_path_buf()]
    };
    if files.is_empty() {
        bail!("no images found in {}", input.display());
    }
    let bar = progress(files.len().min(limit) as u64);
    for (i, path) in files.iter().take(limit).enumerate() {
        let mut frame = load_image(path, format.unwrap_or(PixelFormat::Rgb8))?;
        // Images become a slide show at 1 frame per second for the engine's clock.
        frame.timestamp_us = i as i64 * 1_000_000;
        f(frame, &path.display().to_string(), &bar)?;
    }
    bar.finish_and_clear();
    Ok(())
}

fn screen(
    input: &Path,
    args: &ModelArgs,
    format: Option<PixelFormat>,
    rotate: u32,
    limit: Option<usize>,
) -> Result<()> {
    let rotation = Rotation::from_degrees(rotate as i32).unwrap_or_default();
    let limit = limit.unwrap_or(usize::MAX);
    if let Some(policy) = &args.policy {
        let mut run = EngineRun::new(args, policy)?;
        let input_result = for_each_frame(input, format, limit, |mut frame, _, bar| {
            frame.rotation = rotation;
            let r = run.submit(&frame, bar);
            bar.inc(1);
            r
        });
        // Input that ends in an error (a truncated file) still ends the stream properly: open
        // segments are closed and their reports stored before the error is returned.
        let finished = run.finish(args.timeline.as_deref());
        return match (input_result, finished) {
            (Err(e), Ok(())) => {
                Err(e.context("reading the input (segments so far were finished and stored)"))
            }
            (Err(e), Err(f)) => {
                Err(e.context(format!("reading the input; finishing also failed: {f:#}")))
            }
            (Ok(()), finished) => finished,
        };
    }
    let mut run = Run::new(args)?;
    let labels = run.labels.clone();
    let quiet = args.json.as_deref().is_some_and(|p| p.as_os_str() == "-");
    for_each_frame(input, format, limit, |mut frame, source, bar| {
        frame.rotation = rotation;
        let p = run.screen(&frame, source)?;
        if !quiet {
            let line = format!(
                "{:>6} {:>10.3}  {}  {source}",
                run.frames - 1,
                frame.timestamp_us as f64 / 1e3,
                score_line(&labels, &p)
            );
            say(bar, line);
        }
        bar.inc(1);
        Ok(())
    })?;
    run.finish()
}
