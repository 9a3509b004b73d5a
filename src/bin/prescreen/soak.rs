//! `prescreen soak`: soaks the live engine on a long stream (prescreen::soak) and prints the
//! samples of memory, descriptors and threads as they come.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use prescreen_runtime::reporting::report::now_unix_millis;

/// The arguments of `prescreen soak`.
#[derive(clap::Args)]
pub(super) struct SoakArgs {
    /// Frames to stream (30 per second of stream).
    #[arg(long, default_value_t = 100_000)]
    frames: u64,
    /// Frames between samples.
    #[arg(long, default_value_t = 10_000)]
    sample_every: u64,
    /// Folder for the outbox and the received reports (default: a new temporary folder,
    /// removed afterwards).
    #[arg(long)]
    workdir: Option<PathBuf>,
}

impl SoakArgs {
    /// Runs the soak as the arguments say.
    pub(super) fn run(self) -> Result<()> {
        let Self {
            frames,
            sample_every,
            workdir,
        } = self;
        soak(frames, sample_every, workdir)
    }
}

fn soak(frames: u64, sample_every: u64, workdir: Option<PathBuf>) -> Result<()> {
    let temp;
    let dir = match workdir {
        Some(dir) => dir,
        None => {
            temp = TempDir::new()?;
            temp.0.clone()
        }
    };
    let mut config = prescreen::soak::SoakConfig::new(".", frames, &dir);
    config.sample_every = sample_every.max(1);
    eprintln!(
        "soak: {frames} frames of {}x{} NV21 through the live engine ({}), outbox and receiver in {}",
        config.width,
        config.height,
        config.model_dir.display(),
        dir.display()
    );
    eprintln!(
        "{:>9} {:>10} {:>5} {:>8} {:>8}",
        "frames", "RSS KiB", "fds", "threads", "pending"
    );
    let started = Instant::now();
    let result = prescreen::soak::run(&config, |s| {
        eprintln!(
            "{:>9} {:>10} {:>5} {:>8} {:>8}",
            s.frames, s.rss_kib, s.fds, s.threads, s.pending
        )
    })?;
    let m = &result.metrics;
    eprintln!(
        "{} frames in {:.1} s ({:.0} frames/s): {} scored, {} rate-skipped, {} low-quality, {} gated; {} reports stored, {} received, {} lost; RSS growth after warm-up {} KiB per 10,000 frames",
        m.seen,
        started.elapsed().as_secs_f64(),
        m.seen as f64 / started.elapsed().as_secs_f64(),
        m.scored,
        m.rate_skipped,
        m.low_quality,
        m.gated,
        result.reports,
        result.received,
        result.lost,
        result.growth_kib_per_10k()
    );
    result.check()
}

/// A temporary folder removed on drop (the harness has no tempfile dependency).
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<Self> {
        let dir = std::env::temp_dir().join(format!(
            "prescreen-soak-{}-{}",
            std::process::id(),
            now_unix_millis()
        ));
        std::fs::create_dir_all(&dir)?;
        Ok(Self(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
