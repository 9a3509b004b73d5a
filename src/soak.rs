//! The soak run: a long stream through the live engine with reports, delivered to the reference
//! receiver on loopback, while the process's resident memory, open file descriptors and threads
//! are sampled (`prescreen soak`, `tests/soak.rs`).
//!
//! The clock is the frames' timestamps (30 fps), not the wall clock: frames are offered as fast as
//! the engine takes them, each scored before the next is offered, so a run of 100,000 frames is
//! 55 minutes of stream. The picture turns red for one second in every four, so segments open
//! and close all the time: each becomes a report with thumbnails, stored in the outbox, uploaded
//! and acknowledged. After a warm-up, nothing may grow: resident memory by less than
//! [`MAX_GROWTH_KIB_PER_10K`] per 10,000 frames, file descriptors and threads not at all.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use prescreen_runtime::frame::{ColorMatrix, ColorRange, PixelFormat};
use prescreen_runtime::inference::model::Model;
use prescreen_runtime::manifest::Variant;
use prescreen_runtime::policy::Policy;
use prescreen_runtime::preprocess::backend::Backend;
use prescreen_runtime::reporting::outbox::{reporting_sink, Outbox, OutboxOptions, ReportingStats};
use prescreen_runtime::reporting::report::ReportContext;
use prescreen_runtime::reporting::upload::{UploadConfig, Uploader};
use prescreen_runtime::stream::engine::{Engine, EngineOptions, Metrics};

use crate::framegen::OwnedFrame;
use crate::ingest::Receiver;

/// Largest resident-memory growth after the warm-up, in KiB per 10,000 frames.
pub const MAX_GROWTH_KIB_PER_10K: u64 = 1024;

/// What to soak.
#[derive(Clone, Debug)]
pub struct SoakConfig {
    /// Model folder (the test classifier by default: the engine, not the network, is soaked).
    pub model_dir: PathBuf,
    /// Policy file.
    pub policy: PathBuf,
    /// Frames to stream.
    pub frames: u64,
    /// Frame size (NV21).
    pub width: u32,
    /// Frame height.
    pub height: u32,
    /// Frames between uploads of the outbox.
    pub deliver_every: u64,
    /// Frames between samples.
    pub sample_every: u64,
    /// Frames before the first sample that counts (allocations settle, pools fill).
    pub warm_up: u64,
    /// Folder for the outbox and the receiver's reports.
    pub workdir: PathBuf,
}

impl SoakConfig {
    /// The test classifier and its policy from the repository at `root`, 320x240 frames, samples
    /// every 10,000 frames after 10,000 of warm-up.
    pub fn new(root: impl Into<PathBuf>, frames: u64, workdir: impl Into<PathBuf>) -> Self {
        let root = root.into();
        Self {
            model_dir: root.join("models/redness"),
            policy: root.join("models/policies/redness.toml"),
            frames,
            width: 320,
            height: 240,
            deliver_every: 1_000,
            sample_every: 10_000,
            warm_up: 10_000,
            workdir: workdir.into(),
        }
    }
}

/// The process at one moment of the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    /// Frames offered so far.
    pub frames: u64,
    /// Resident memory, KiB.
    pub rss_kib: u64,
    /// Open file descriptors.
    pub fds: u64,
    /// Threads.
    pub threads: u64,
    /// Reports waiting in the outbox.
    pub pending: usize,
}

/// A numeric field of `/proc/self/status` (Linux), e.g. `VmRSS` or `VmHWM` in KiB, or `Threads`;
/// `None` elsewhere.
pub fn proc_status(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        rest.trim().trim_end_matches("kB").trim().parse().ok()
    })
}

impl Sample {
    /// Reads the process's figures (Linux: `/proc/self`); `None` elsewhere.
    pub fn now(frames: u64, pending: usize) -> Option<Self> {
        Some(Self {
            frames,
            rss_kib: proc_status("VmRSS")?,
            fds: std::fs::read_dir("/proc/self/fd").ok()?.count() as u64,
            threads: proc_status("Threads")?,
            pending,
        })
    }
}

/// What a soak run saw.
#[derive(Clone, Debug)]
pub struct SoakResult {
    /// One sample per `sample_every` frames from the end of the warm-up on (the first is the
    /// baseline).
    pub samples: Vec<Sample>,
    /// The engine's final metrics.
    pub metrics: Metrics,
    /// Reports stored in the outbox.
    pub reports: u64,
    /// Reports the receiver stored.
    pub received: u64,
    /// Reports lost (must be 0).
    pub lost: u64,
}

impl SoakResult {
    /// Resident-memory growth from the baseline to the last sample, KiB per 10,000 frames.
    pub fn growth_kib_per_10k(&self) -> u64 {
        match (self.samples.first(), self.samples.last()) {
            (Some(a), Some(b)) if b.frames > a.frames => {
                b.rss_kib.saturating_sub(a.rss_kib) * 10_000 / (b.frames - a.frames)
            }
            _ => 0,
        }
    }

    /// Checks the soak's promises: every frame accounted for and scored or skipped by rate, no
    /// report lost or left undelivered, memory growth under the bound, file descriptors and
    /// threads constant after the warm-up.
    pub fn check(&self) -> Result<()> {
        let m = &self.metrics;
        if !m.accounted() || m.failed != 0 || m.rejected != 0 || m.dropped != 0 {
            bail!("frames not accounted for: {m:?}");
        }
        if self.lost != 0 || self.received != self.reports || self.reports == 0 {
            bail!(
                "{} reports stored, {} received, {} lost",
                self.reports,
                self.received,
                self.lost
            );
        }
        let Some(base) = self.samples.first() else {
            bail!("no sample after the warm-up (a run shorter than warm_up + sample_every)");
        };
        for s in &self.samples {
            if (s.fds, s.threads) != (base.fds, base.threads) {
                bail!("file descriptors or threads grew: {base:?} then {s:?}");
            }
        }
        let growth = self.growth_kib_per_10k();
        if growth >= MAX_GROWTH_KIB_PER_10K {
            bail!(
                "resident memory grew by {growth} KiB per 10,000 frames (bound {MAX_GROWTH_KIB_PER_10K}): {:?}",
                self.samples
            );
        }
        Ok(())
    }
}

/// Runs the soak; `on_sample` sees every sample as it is taken (warm-up included).
pub fn run(config: &SoakConfig, mut on_sample: impl FnMut(&Sample)) -> Result<SoakResult> {
    let model = Model::load_dir(
        &config.model_dir,
        Variant::Float,
        &prescreen_runtime::LoadOptions::default(),
    )?;
    let policy = Policy::load(&config.policy)?;
    let outbox = Arc::new(
        Outbox::open(config.workdir.join("outbox"), OutboxOptions::default())
            .context("opening the soak outbox")?,
    );
    let receiver = Receiver::start("127.0.0.1:0", &config.workdir.join("received"), None)?;
    let mut uploader = Uploader::new(UploadConfig::new(receiver.url()))?;
    let stats = Arc::new(ReportingStats::default());
    let context = ReportContext::new("soak", &model, &policy);
    context.check()?;
    let sink = reporting_sink(context, outbox.clone(), stats.clone(), Box::new(|_| {}));
    let options = EngineOptions {
        backend: Backend::Cpu,
        ..EngineOptions::default()
    };
    let engine = Engine::start(&model, &policy, options, sink)?;
    let picture = |rgb: [u8; 3]| -> Result<OwnedFrame> {
        let px: Vec<u8> = (0..config.width * config.height)
            .flat_map(|_| rgb)
            .collect();
        Ok(OwnedFrame::from_rgb(
            &px,
            config.width,
            config.height,
            PixelFormat::Nv21,
            ColorMatrix::Bt601,
            ColorRange::Limited,
        )?)
    };
    let (mut red, mut grey) = (picture([220, 30, 30])?, picture([128, 128, 128])?);
    let mut samples = Vec::new();
    for i in 0..config.frames {
        // 30 fps; red during the second second of every four.
        let t = i as i64 * 1_000_000 / 30;
        let f = if (1_000_000..2_000_000).contains(&(t % 4_000_000)) {
            &mut red
        } else {
            &mut grey
        };
        f.timestamp_us = t;
        engine.submit(&f.frame()?);
        engine.wait_idle();
        let n = i + 1;
        if n % config.deliver_every == 0 {
            uploader.deliver(&outbox);
        }
        if n % config.sample_every == 0 {
            if let Some(s) = Sample::now(n, outbox.pending().len()) {
                on_sample(&s);
                if n >= config.warm_up {
                    samples.push(s);
                }
            }
        }
    }
    let metrics = engine.finish();
    drop(engine);
    uploader.deliver(&outbox);
    let received = receiver.stats().new_reports;
    receiver.stop();
    Ok(SoakResult {
        samples,
        metrics,
        reports: outbox.metrics().stored,
        received,
        lost: stats.lost.load(Ordering::Relaxed),
    })
}
