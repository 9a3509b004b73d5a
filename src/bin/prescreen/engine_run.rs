//! Screening through the live engine (`screen` and `demo` with `--policy`): the same
//! [`Session`] the phone bindings wrap, segments printed as they close, reports stored in the
//! outbox and delivered at the end, and the optional timeline.

use std::path::{Path, PathBuf};
use std::sync::mpsc;

use anyhow::{bail, Context, Result};
use indicatif::ProgressBar;
use prescreen::framegen::OwnedFrame;
use prescreen::ingest::{self, Receiver};
use prescreen::stats::ms;
use prescreen::timeline::{self, Series};
use prescreen_runtime::error::Error;
use prescreen_runtime::policy::Policy;
use prescreen_runtime::reporting::outbox::{Outbox, OutboxOptions};
use prescreen_runtime::reporting::report::now_unix_millis;
use prescreen_runtime::reporting::upload::{UploadConfig, Uploader};
use prescreen_runtime::session::{Session, SessionConfig, SessionEvent};
use prescreen_runtime::stream::segmenter::SegmentEvent;

use crate::args::ModelArgs;
use crate::progress::say;

/// Screening through the live engine: frames replayed in order, each taken frame scored before the
/// next is offered (as a phone keeping up would), segments printed as they close.
pub(super) struct EngineRun {
    session: Session,
    /// The `--outbox` folder, where the session stores reports.
    outbox_dir: Option<PathBuf>,
    delivery: Option<Delivery>,
    queued: Vec<String>,
    raw_bytes: u64,
    events: mpsc::Receiver<SessionEvent>,
    policy: Policy,
    labels: Vec<String>,
    points: Vec<Vec<(i64, f32)>>,
    segments: Vec<(String, i64, i64)>,
    first_t: Option<i64>,
    last_t: i64,
    /// Frames offered to the session.
    frames: u64,
}

impl EngineRun {
    pub(super) fn new(args: &ModelArgs, policy_path: &Path) -> Result<Self> {
        // Loaded here rather than by the session: the harness loads the model with options a
        // `SessionConfig` does not carry, and keeps the policy for the timeline's thresholds.
        let model = args.file.load()?;
        let policy = Policy::load(policy_path)?;
        let stream_id = args
            .stream_id
            .clone()
            .unwrap_or_else(|| format!("harness-{}", now_unix_millis()));
        // `start` reads neither the model folder nor the policy path.
        let mut config = SessionConfig::new(
            PathBuf::new(),
            policy_path,
            args.outbox.clone().unwrap_or_default(),
            stream_id,
        );
        config.store_reports = args.outbox.is_some();
        config.backend = args.backend.into();
        config.emit_scores = true;
        let (tx, events) = mpsc::channel();
        let session = Session::start(
            &model,
            &policy,
            &config,
            Box::new(move |e| drop(tx.send(e))),
        )
        .map_err(|e| match (&e, &args.outbox) {
            // While a session starts, only its outbox touches the disk: say which folder failed.
            (Error::Storage { .. }, Some(dir)) => {
                anyhow::Error::new(e).context(format!("opening the outbox {}", dir.display()))
            }
            _ => e.into(),
        })?;
        let delivery = match (&args.upload, &args.receiver) {
            (Some(url), _) => Some(Delivery {
                endpoint: url.clone(),
                receiver: None,
            }),
            (None, Some(dir)) => {
                let receiver =
                    Receiver::start("127.0.0.1:0", dir, Some(ingest::print_new_reports(dir)))?;
                Some(Delivery {
                    endpoint: receiver.url(),
                    receiver: Some(receiver),
                })
            }
            (None, None) => None,
        };
        let labels = session.labels().to_vec();
        let backend = session
            .metrics()?
            .engine
            .backend
            .map_or("?".to_string(), |b| b.to_string());
        eprintln!(
            "engine: model {} ({}), policy {}, preprocessing on {backend}",
            model.manifest().id,
            model.variant(),
            policy.version
        );
        Ok(Self {
            session,
            outbox_dir: args.outbox.clone(),
            delivery,
            queued: vec![],
            raw_bytes: 0,
            events,
            policy,
            points: vec![vec![]; labels.len()],
            labels,
            segments: vec![],
            first_t: None,
            last_t: 0,
            frames: 0,
        })
    }

    pub(super) fn submit(&mut self, owned: &OwnedFrame, bar: &ProgressBar) -> Result<()> {
        let frame = owned.frame()?;
        self.first_t.get_or_insert(frame.timestamp_us());
        self.last_t = frame.timestamp_us();
        self.frames += 1;
        self.raw_bytes += frame
            .planes()
            .iter()
            .map(|p| p.data.len() as u64)
            .sum::<u64>();
        self.session.submit(&frame)?;
        self.session.wait_idle()?;
        self.drain(bar);
        Ok(())
    }

    fn drain(&mut self, bar: &ProgressBar) {
        while let Ok(e) = self.events.try_recv() {
            match e {
                SessionEvent::Scored {
                    timestamp_us,
                    scores,
                } => {
                    for (series, v) in self.points.iter_mut().zip(scores) {
                        series.push((timestamp_us, v));
                    }
                }
                SessionEvent::Segment(SegmentEvent::Opened(s)) => say(
                    bar,
                    format!(
                        "segment {} {} opened at {:.2}s (score crossed at {:.2}s)",
                        s.id,
                        s.label,
                        s.end_us as f64 / 1e6,
                        s.crossed_us as f64 / 1e6
                    ),
                ),
                SessionEvent::Segment(SegmentEvent::Closed(s)) => {
                    say(
                        bar,
                        format!(
                            "segment {} {}: {:.2}s - {:.2}s ({:.2}s), peak {:.3} at {:.2}s, mean {:.3}, {} frames scored",
                            s.id,
                            s.label,
                            s.start_us as f64 / 1e6,
                            s.end_us as f64 / 1e6,
                            s.duration_us() as f64 / 1e6,
                            s.peak,
                            s.peak_us as f64 / 1e6,
                            s.mean,
                            s.frames_scored
                        ),
                    );
                    self.segments
                        .push((s.label.to_string(), s.start_us, s.end_us));
                }
                SessionEvent::Segment(SegmentEvent::Updated(_)) | SessionEvent::Outbox(_) => {}
                SessionEvent::Error(e) => say(bar, format!("engine: {e}")),
                SessionEvent::ReportQueued { report_id, label } => {
                    say(
                        bar,
                        format!("report {report_id} ({label}) stored in the outbox"),
                    );
                    self.queued.push(report_id);
                }
            }
        }
    }

    pub(super) fn finish(mut self, timeline: Option<&Path>) -> Result<()> {
        let metrics = self
            .session
            .close()?
            .context("the session was closed before the stream ended")?;
        let m = metrics.engine;
        self.drain(&ProgressBar::hidden());
        let stream_s = stream_seconds(self.first_t, self.last_t, self.frames);
        eprintln!(
            "\n{} segment(s); frames: {} seen = {} scored + {} rate-skipped + {} low-quality + {} gated + {} dropped + {} rejected + {} failed",
            self.segments.len(), m.seen, m.scored, m.rate_skipped, m.low_quality, m.gated, m.dropped, m.rejected, m.failed
        );
        eprintln!("{:<11} {:>10} {:>10}", "stage", "median ms", "p99 ms");
        for (name, h) in [
            ("submit", &m.submit),
            ("preprocess", &m.preprocess),
            ("infer", &m.infer),
        ] {
            eprintln!(
                "{name:<11} {:>10.3} {:>10.3}",
                ms(h.quantile(0.5)),
                ms(h.quantile(0.99))
            );
        }
        let busy = m.submit.total() + m.preprocess.total() + m.infer.total();
        match stream_s {
            Some(s) => eprintln!(
                "engine CPU time per second of stream: {:.0} ms ({s:.1} s of stream, {:.2} frames scored per second)",
                ms(busy) / s,
                m.scored as f64 / s
            ),
            None => eprintln!(
                "engine CPU time: {:.0} ms for {} frame(s), too short a stream for a rate per second",
                ms(busy),
                self.frames
            ),
        }
        if m.detection.count() > 0 {
            eprintln!("detection latency (threshold crossing to SegmentOpened, wall time): median {:.0} ms, max {:.0} ms", ms(m.detection.quantile(0.5)), ms(m.detection.max()));
        }
        self.deliver(stream_s)?;
        if let Some(path) = timeline {
            let series: Vec<Series<'_>> = self
                .labels
                .iter()
                .zip(&self.points)
                .map(|(label, points)| {
                    let th = self.policy.labels.get(label);
                    Series {
                        label,
                        points,
                        enter: th.map(|t| t.enter),
                        exit: th.map(|t| t.exit),
                    }
                })
                .collect();
            let end = self.last_t - self.first_t.unwrap_or(0);
            std::fs::write(path, timeline::svg(&series, &self.segments, end))?;
            eprintln!("timeline written to {}", path.display());
        }
        let lost = metrics.reports_lost;
        if lost > 0 {
            bail!(
                "{lost} report(s) could not be stored in the outbox and were lost (see the errors above)"
            );
        }
        Ok(())
    }
}

/// Where `--upload` or `--receiver` sends the outbox's reports.
struct Delivery {
    endpoint: String,
    receiver: Option<Receiver>,
}

impl EngineRun {
    /// Prints what this stream reported, against the raw stream, and delivers the outbox.
    fn deliver(&mut self, stream_s: Option<f64>) -> Result<()> {
        let Some(dir) = &self.outbox_dir else {
            return Ok(());
        };
        // The session's last reports are stored by `close`, which also drops its outbox, so the
        // folder is opened again here rather than read through the session: the reports are
        // durable files, reopening them once their writer is gone is what an app does on its next
        // start, and the uploader needs an `Outbox` (it dead-letters what the server refuses,
        // which a session does not offer).
        let outbox = Outbox::open(dir, OutboxOptions::default())
            .with_context(|| format!("opening the outbox {}", dir.display()))?;
        let pending = outbox.pending();
        let report_bytes: u64 = pending
            .iter()
            .filter(|p| self.queued.contains(&p.report_id))
            .map(|p| p.bytes)
            .sum();
        match stream_s {
            Some(s) => {
                let per_hour = |b: u64| b as f64 * 3600.0 / s;
                eprintln!(
                    "reports: {} from this stream, {report_bytes} bytes = {:.0} bytes per stream-hour \
                     (raw frames: {:.3e} bytes per stream-hour); outbox holds {} pending",
                    self.queued.len(),
                    per_hour(report_bytes),
                    per_hour(self.raw_bytes),
                    pending.len()
                );
            }
            None => eprintln!(
                "reports: {} from this stream, {report_bytes} bytes (raw frames: {} bytes); \
                 outbox holds {} pending",
                self.queued.len(),
                self.raw_bytes,
                pending.len()
            ),
        }
        let Some(delivery) = self.delivery.take() else {
            return Ok(());
        };
        let mut uploader = Uploader::new(UploadConfig::new(delivery.endpoint.clone()))?;
        let s = uploader.deliver(&outbox);
        eprintln!(
            "upload to {}: {} delivered, {} dead-lettered, {} deferred, {} bytes sent in {} requests{}",
            delivery.endpoint,
            s.delivered.len(),
            s.dead_lettered.len(),
            s.deferred,
            s.bytes_sent,
            s.attempts,
            s.last_error
                .map(|e| format!(" (last error: {e})"))
                .unwrap_or_default()
        );
        if let Some(receiver) = delivery.receiver {
            let r = receiver.stats();
            eprintln!(
                "receiver got {} requests, {} body bytes: {} new reports, {} duplicates, {} refused",
                r.requests, r.body_bytes, r.new_reports, r.duplicates, r.rejected
            );
            receiver.stop();
        }
        Ok(())
    }
}

/// The length of a stream of `frames` frames whose first and last timestamps are `first_us` and
/// `last_us`: each frame is on screen until the next, and the last one as long as the mean
/// spacing. `None` below two frames, where there is no spacing to go by.
fn stream_seconds(first_us: Option<i64>, last_us: i64, frames: u64) -> Option<f64> {
    let first = first_us?;
    if frames < 2 || last_us <= first {
        return None;
    }
    let span = (last_us - first) as f64 / 1e6;
    Some(span * frames as f64 / (frames - 1) as f64)
}

#[cfg(test)]
mod tests {
    use super::stream_seconds;

    /// 600 frames at 30 fps are 20 s of stream, although their timestamps span 599 intervals; a
    /// single frame, or none, has no length to divide by.
    #[test]
    fn a_stream_lasts_as_many_frame_intervals_as_it_has_frames() {
        let last = 599 * 1_000_000 / 30;
        let s = stream_seconds(Some(0), last, 600).unwrap();
        assert!((s - 20.0).abs() < 1e-4, "{s}");
        let s = stream_seconds(Some(1_000_000), 1_000_000 + 2 * 500_000, 3).unwrap();
        assert!((s - 1.5).abs() < 1e-9, "{s}");
        assert_eq!(stream_seconds(Some(7), 7, 1), None);
        assert_eq!(stream_seconds(Some(7), 7, 2), None);
        assert_eq!(stream_seconds(None, 0, 0), None);
    }
}
