//! Screening through the live engine (`screen` and `demo` with `--policy`): segments printed as they
//! close, reports stored in the outbox and delivered at the end, and the optional timeline.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use indicatif::ProgressBar;
use prescreen::framegen::OwnedFrame;
use prescreen::ingest::{self, Receiver};
use prescreen::stats::ms;
use prescreen::timeline::{self, Series};
use prescreen_runtime::policy::Policy;
use prescreen_runtime::reporting::outbox::{reporting_sink, Outbox, OutboxOptions, ReportingStats};
use prescreen_runtime::reporting::report::{now_unix_millis, ReportContext};
use prescreen_runtime::reporting::upload::{UploadConfig, Uploader};
use prescreen_runtime::stream::engine::{Engine, EngineOptions, Event};
use prescreen_runtime::stream::segmenter::SegmentEvent;

use crate::args::ModelArgs;
use crate::progress::say;

/// Screening through the live engine: frames replayed in order, each taken frame scored before the
/// next is offered (as a phone keeping up would), segments printed as they close.
pub(super) struct EngineRun {
    engine: Engine,
    outbox: Option<Arc<Outbox>>,
    /// Reports the outbox could not store (counted by the reporting sink).
    stats: Option<Arc<ReportingStats>>,
    delivery: Option<Delivery>,
    queued: Vec<String>,
    raw_bytes: u64,
    events: mpsc::Receiver<Event>,
    policy: Policy,
    labels: Vec<String>,
    points: Vec<Vec<(i64, f32)>>,
    segments: Vec<(String, i64, i64)>,
    first_t: Option<i64>,
    last_t: i64,
}

impl EngineRun {
    pub(super) fn new(args: &ModelArgs, policy: &Path) -> Result<Self> {
        let model = args.file.load()?;
        let policy = Policy::load(policy)?;
        let (tx, events) = mpsc::channel();
        let mut sink: prescreen_runtime::stream::engine::EventSink =
            Box::new(move |e| drop(tx.send(e)));
        let mut stats = None;
        let outbox = match &args.outbox {
            Some(dir) => {
                let outbox = Arc::new(
                    Outbox::open(dir, OutboxOptions::default())
                        .with_context(|| format!("opening the outbox {}", dir.display()))?,
                );
                let stream_id = args
                    .stream_id
                    .clone()
                    .unwrap_or_else(|| format!("harness-{}", now_unix_millis()));
                let context = ReportContext::new(stream_id, &model, &policy);
                context.check()?;
                let reporting = Arc::new(ReportingStats::default());
                sink = reporting_sink(context, outbox.clone(), reporting.clone(), sink);
                stats = Some(reporting);
                Some(outbox)
            }
            None => None,
        };
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
        let options = EngineOptions {
            emit_scores: true,
            backend: args.backend.into(),
        };
        let engine = Engine::start(&model, &policy, options, sink)?;
        let labels = engine.labels().to_vec();
        let backend = engine
            .metrics()
            .backend
            .map_or("?".to_string(), |b| b.to_string());
        eprintln!(
            "engine: model {} ({}), policy {}, preprocessing on {backend}",
            model.manifest().id,
            model.variant(),
            policy.version
        );
        Ok(Self {
            engine,
            outbox,
            stats,
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
        })
    }

    pub(super) fn submit(&mut self, owned: &OwnedFrame, bar: &ProgressBar) -> Result<()> {
        let frame = owned.frame()?;
        self.first_t.get_or_insert(frame.timestamp_us());
        self.last_t = frame.timestamp_us();
        self.raw_bytes += frame
            .planes()
            .iter()
            .map(|p| p.data.len() as u64)
            .sum::<u64>();
        self.engine.submit(&frame);
        self.engine.wait_idle();
        self.drain(bar);
        Ok(())
    }

    fn drain(&mut self, bar: &ProgressBar) {
        while let Ok(e) = self.events.try_recv() {
            match e {
                Event::Scored {
                    timestamp_us,
                    scores,
                } => {
                    for (series, v) in self.points.iter_mut().zip(scores) {
                        series.push((timestamp_us, v));
                    }
                }
                Event::Segment(SegmentEvent::Opened(s), _) => say(
                    bar,
                    format!(
                        "segment {} {} opened at {:.2}s (score crossed at {:.2}s)",
                        s.id,
                        s.label,
                        s.end_us as f64 / 1e6,
                        s.crossed_us as f64 / 1e6
                    ),
                ),
                Event::Segment(SegmentEvent::Closed(s), _) => {
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
                Event::Segment(SegmentEvent::Updated(_), _) => {}
                Event::Error(e) => say(bar, format!("engine: {e}")),
                Event::ReportQueued { report_id, label } => {
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
        let m = self.engine.finish();
        self.drain(&ProgressBar::hidden());
        let stream_s = ((self.last_t - self.first_t.unwrap_or(0)) as f64 / 1e6).max(1e-6);
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
        eprintln!(
            "engine CPU time per second of stream: {:.0} ms ({:.1} s of stream, {:.2} frames scored per second)",
            ms(busy) / stream_s,
            stream_s,
            m.scored as f64 / stream_s
        );
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
        let lost = self
            .stats
            .as_ref()
            .map_or(0, |s| s.lost.load(Ordering::Relaxed));
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
    fn deliver(&mut self, stream_s: f64) -> Result<()> {
        let Some(outbox) = &self.outbox else {
            return Ok(());
        };
        let pending = outbox.pending();
        let report_bytes: u64 = pending
            .iter()
            .filter(|p| self.queued.contains(&p.report_id))
            .map(|p| p.bytes)
            .sum();
        let per_hour = |b: u64| b as f64 * 3600.0 / stream_s;
        eprintln!(
            "reports: {} from this stream, {report_bytes} bytes = {:.0} bytes per stream-hour \
             (raw frames: {:.3e} bytes per stream-hour); outbox holds {} pending",
            self.queued.len(),
            per_hour(report_bytes),
            per_hour(self.raw_bytes),
            pending.len()
        );
        let Some(delivery) = self.delivery.take() else {
            return Ok(());
        };
        let mut uploader = Uploader::new(UploadConfig::new(delivery.endpoint.clone()))?;
        let s = uploader.deliver(outbox);
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
