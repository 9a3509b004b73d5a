//! A short soak: 30,000 frames (about 17 minutes of stream at 30 fps, on the frames' clock)
//! through the live engine with segments, reports, uploads and acknowledgements, sampling the
//! process. After a warm-up, file descriptors and threads stay constant and resident memory grows
//! by less than 1 MiB per 10,000 frames; every frame is accounted for and every report delivered.
//! `prescreen soak --frames 100000` is the long run (README, "Soak").
//!
//! Its own test binary: the samples are of this process, so nothing else may run beside it.

#[cfg(target_os = "linux")]
mod common;

#[cfg(target_os = "linux")]
use prescreen::soak::{run, SoakConfig};

/// Linux only: the samples come from `/proc/self`.
#[cfg(target_os = "linux")]
#[test]
fn a_long_stream_with_reports_leaks_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = SoakConfig::new(common::root(), 30_000, dir.path());
    config.sample_every = 5_000;
    let result = run(&config, |s| eprintln!("{s:?}")).unwrap();
    let m = &result.metrics;
    eprintln!(
        "{} reports, {} received; growth {} KiB per 10,000 frames; {} seen, {} scored",
        result.reports,
        result.received,
        result.growth_kib_per_10k(),
        m.seen,
        m.scored
    );
    assert_eq!(result.samples.len(), 5);
    result.check().unwrap();
    // One segment (one report) per four seconds of stream: 30,000 frames are 1,000 s.
    assert!(result.reports >= 240, "{}", result.reports);
}
