//! One screened stream with its reports, as an app holds it: the object the Android (JNI) and iOS
//! (UniFFI) bindings wrap, so that every behaviour lives here and the bindings only convert.
//!
//! A [`Session`] loads the model and the policy (or takes them loaded: [`Session::start`]),
//! opens the durable outbox, starts the [`Engine`] with every closed segment turned into a report
//! (or, without [`SessionConfig::store_reports`], screens only), and delivers events to the host's
//! [`SessionListener`] on a thread of its own (`prescreen-events`), so a slow listener never
//! delays inference. Every method takes `&self` and may be called from any thread; after
//! [`Session::close`] every method but `close` fails with [`Error::Closed`].
//!
//! What the bindings exchange with a session (flat events, a metrics summary, host frame
//! descriptions and the numeric codes of enums) is in `host.rs`, re-exported here: [`HostEvent`],
//! [`MetricsSummary`], [`HostFrame`] with [`Session::submit_host`], [`host_constants`], ...

mod host;

pub use host::{
    backend_from_code, color_matrix_from_code, color_range_from_code, host_constants,
    variant_from_code, EventKind, FrameMeta, HostEvent, HostFrame, HostPixels, HostPlane,
    HostSegment, LentFrame, MetricsSummary, SubmitOutcome, ACTIVE_BACKENDS, BACKENDS,
    COLOR_MATRICES, COLOR_RANGES, VARIANTS,
};

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;

use crate::error::{Error, Result};
use crate::frame::{Frame, FrameError};
use crate::inference::model::{LoadOptions, Model};
use crate::manifest::Variant;
use crate::policy::{Category, Policy};
use crate::preprocess::backend::Backend;
use crate::reporting::outbox::{
    reporting_sink, Outbox, OutboxEvent, OutboxMetrics, OutboxOptions, PendingReport,
    ReportingStats,
};
use crate::reporting::report::{check_id, default_device_class, ReportContext};
use crate::stream::engine::{
    CameraBuffer, Engine, EngineOptions, Event, EventSink, Metrics, Submitted,
};
use crate::stream::segmenter::SegmentEvent;

/// Everything a session needs to start.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// The model's folder (holding `model.toml` and the files it names).
    pub model_dir: PathBuf,
    /// Which model file to run.
    pub variant: Variant,
    /// The policy file (`models/policies/*.toml`).
    pub policy_path: PathBuf,
    /// The outbox folder (created if missing; reports left there by an earlier session stay
    /// pending).
    pub outbox_dir: PathBuf,
    /// Store a report of every closed segment in the outbox (default true). When false the session
    /// only screens: no outbox is opened (`outbox_dir` is not read), no
    /// [`SessionEvent::ReportQueued`] or [`SessionEvent::Outbox`] comes, the stream id is not
    /// checked, and the session acts as if its outbox were empty ([`Session::pending_reports`] is
    /// empty, [`Session::read_report`] fails with [`Error::UnknownReport`], [`Session::ack`]
    /// returns false). For the desktop harness screening without `--outbox`.
    pub store_reports: bool,
    /// The stream's id, part of every report id and report. Not user data: an opaque id the app
    /// chooses.
    pub stream_id: String,
    /// Where frames are preprocessed.
    pub backend: Backend,
    /// Deliver [`SessionEvent::Scored`] for every scored frame.
    pub emit_scores: bool,
    /// Bytes the pending reports may take on disk.
    pub outbox_budget_bytes: u64,
    /// The device class written into reports (default: the OS and CPU architecture).
    pub device_class: Option<String>,
    /// Inference threads (default 1: see [`crate::inference::model::LoadOptions`]).
    pub inference_threads: usize,
}

impl SessionConfig {
    /// A configuration with the defaults: float model, `auto` backend, no per-frame scores, reports
    /// stored in a 32 MiB outbox, one inference thread.
    pub fn new(
        model_dir: impl Into<PathBuf>,
        policy_path: impl Into<PathBuf>,
        outbox_dir: impl Into<PathBuf>,
        stream_id: impl Into<String>,
    ) -> Self {
        Self {
            model_dir: model_dir.into(),
            variant: Variant::Float,
            policy_path: policy_path.into(),
            outbox_dir: outbox_dir.into(),
            store_reports: true,
            stream_id: stream_id.into(),
            backend: Backend::Auto,
            emit_scores: false,
            outbox_budget_bytes: OutboxOptions::default().budget_bytes,
            device_class: None,
            inference_threads: 1,
        }
    }
}

/// What a session tells the host, on its events thread, in the order it happened.
#[derive(Clone, Debug)]
pub enum SessionEvent {
    /// A segment opened, moved its peak, or closed.
    Segment(SegmentEvent),
    /// A closed segment's report is durably in the outbox (it follows the segment's `Closed`).
    ReportQueued {
        /// The report's id: the key for [`Session::read_report`] and [`Session::ack`].
        report_id: String,
        /// The segment's label.
        label: String,
    },
    /// The scores of one frame (only with [`SessionConfig::emit_scores`]).
    Scored {
        /// The frame's timestamp.
        timestamp_us: i64,
        /// Probabilities in the order of [`Session::labels`].
        scores: Vec<f32>,
    },
    /// The outbox dropped thumbnails or reports to stay within its budget, quarantined a file, or
    /// stored a report.
    Outbox(OutboxEvent),
    /// A frame could not be scored or a report not stored; the session goes on.
    Error(String),
}

/// Receives a session's events on its events thread.
pub type SessionListener = Box<dyn FnMut(SessionEvent) + Send>;

/// A session's counters: the engine's frame accounting and latencies, and the outbox's.
#[derive(Clone, Debug)]
pub struct SessionMetrics {
    /// The engine's counters and latencies.
    pub engine: Metrics,
    /// The outbox's counters.
    pub outbox: OutboxMetrics,
    /// Reports lost because the outbox kept failing (a full disk) while more segments closed.
    pub reports_lost: u64,
}

struct Live {
    engine: Engine,
    /// `None` without [`SessionConfig::store_reports`].
    outbox: Option<Arc<Outbox>>,
    stats: Arc<ReportingStats>,
    events: Option<JoinHandle<()>>,
}

/// One screened stream with its outbox. See the module docs.
pub struct Session {
    live: RwLock<Option<Live>>,
    labels: Vec<String>,
    categories: Vec<Option<Category>>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("labels", &self.labels)
            .field("open", &self.is_open())
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Loads the model (checksum, IO and golden self-test) and the policy, opens the outbox, and
    /// starts the engine and the events thread.
    pub fn open(config: &SessionConfig, listener: SessionListener) -> Result<Self> {
        check_stream_id(config)?;
        let options = LoadOptions {
            threads: config.inference_threads,
            ..LoadOptions::default()
        };
        let model = Model::load_dir(&config.model_dir, config.variant, &options)?;
        let policy = Policy::load(&config.policy_path)?;
        Self::start(&model, &policy, config, listener)
    }

    /// [`Session::open`] with a model and a policy the host loaded itself (the desktop harness
    /// loads the model with options the configuration does not carry and keeps the policy for
    /// its timeline). `config`'s `model_dir`, `variant`, `policy_path` and `inference_threads` are
    /// not read.
    pub fn start(
        model: &Model,
        policy: &Policy,
        config: &SessionConfig,
        mut listener: SessionListener,
    ) -> Result<Self> {
        check_stream_id(config)?;
        let (tx, rx) = mpsc::channel::<SessionEvent>();
        let engine_tx = tx.clone();
        let forward: EventSink = Box::new(move |event| {
            let event = match event {
                Event::Segment(e, _thumbnails) => SessionEvent::Segment(e),
                Event::Scored {
                    timestamp_us,
                    scores,
                } => SessionEvent::Scored {
                    timestamp_us,
                    scores,
                },
                Event::Error(message) => SessionEvent::Error(message),
                Event::ReportQueued { report_id, label } => {
                    SessionEvent::ReportQueued { report_id, label }
                }
            };
            let _ = engine_tx.send(event);
        });
        let stats = Arc::new(ReportingStats::default());
        let (outbox, sink) = if config.store_reports {
            let outbox_tx = tx;
            let outbox = Arc::new(Outbox::open(
                &config.outbox_dir,
                OutboxOptions {
                    budget_bytes: config.outbox_budget_bytes,
                    events: Some(Arc::new(move |e| {
                        let _ = outbox_tx.send(SessionEvent::Outbox(e));
                    })),
                },
            )?);
            let mut context = ReportContext::new(config.stream_id.clone(), model, policy);
            context.device_class = config
                .device_class
                .clone()
                .unwrap_or_else(default_device_class);
            context.check()?;
            let sink = reporting_sink(context, outbox.clone(), stats.clone(), forward);
            (Some(outbox), sink)
        } else {
            drop(tx);
            (None, forward)
        };
        // The events thread ends when every sender is gone: the engine's sink (dropped when the
        // worker stops) and the outbox's (dropped with the outbox).
        let events = std::thread::Builder::new()
            .name("prescreen-events".into())
            .spawn(move || {
                for event in rx {
                    listener(event);
                }
            })
            .map_err(|e| Error::Internal(format!("cannot start the events thread: {e}")))?;
        let options = EngineOptions {
            emit_scores: config.emit_scores,
            backend: config.backend,
        };
        let engine = Engine::start(model, policy, options, sink)?;
        let labels = engine.labels().to_vec();
        let categories = policy.categories(&labels);
        log::info!(
            "session opened: model {} {} ({}), policy {}, {} report(s) pending",
            model.manifest().id,
            model.manifest().version,
            model.variant(),
            policy.version,
            outbox.as_ref().map_or(0, |o| o.pending().len())
        );
        Ok(Self {
            live: RwLock::new(Some(Live {
                engine,
                outbox,
                stats,
                events: Some(events),
            })),
            labels,
            categories,
        })
    }

    fn with<T>(&self, f: impl FnOnce(&Live) -> Result<T>) -> Result<T> {
        let live = self.live.read().unwrap_or_else(|p| p.into_inner());
        match live.as_ref() {
            Some(live) => f(live),
            None => Err(Error::Closed),
        }
    }

    /// Labels of the model, in score order.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// The moderation category of each label, in score order, as the policy assigns them: `None`
    /// for a label the policy does not flag or flags without a category. Reports of a label carry
    /// its category.
    pub fn categories(&self) -> &[Option<Category>] {
        &self.categories
    }

    /// True until [`Session::close`].
    pub fn is_open(&self) -> bool {
        self.live
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    /// Offers a frame (see [`Engine::submit`]): returns at once, never waiting on inference.
    pub fn submit(&self, frame: &Frame<'_>) -> Result<Submitted> {
        self.with(|live| Ok(live.engine.submit(frame)))
    }

    /// Lends a camera buffer (see [`Engine::submit_buffer`]): the engine reads it in place and
    /// drops it when done. On a closed session the buffer is dropped before [`Error::Closed`]
    /// returns.
    pub fn submit_buffer(&self, buffer: Box<dyn CameraBuffer>) -> Result<Submitted> {
        self.with(move |live| Ok(live.engine.submit_buffer(buffer)))
    }

    /// Counts a frame the host could not build (it is `rejected` in the metrics) and returns the
    /// error to hand to the caller: the session keeps working.
    pub fn reject(&self, error: FrameError) -> Error {
        match self.with(|live| Ok(live.engine.reject(error))) {
            Ok(_) => Error::Frame(error),
            Err(closed) => closed,
        }
    }

    /// Blocks until every frame taken so far has been scored and its events handed to the events
    /// thread. For replaying recorded streams and for tests; a live camera never needs it.
    pub fn wait_idle(&self) -> Result<()> {
        self.with(|live| {
            live.engine.wait_idle();
            Ok(())
        })
    }

    /// Reports waiting for delivery, oldest first (also those left by earlier sessions).
    pub fn pending_reports(&self) -> Result<Vec<PendingReport>> {
        self.with(|live| {
            Ok(live
                .outbox
                .as_ref()
                .map(|o| o.pending())
                .unwrap_or_default())
        })
    }

    /// The JSON of a pending report, to upload with the app's own networking.
    pub fn read_report(&self, report_id: &str) -> Result<Vec<u8>> {
        self.with(|live| match &live.outbox {
            Some(outbox) => outbox.read(report_id),
            None => check_id(report_id).and(Err(Error::UnknownReport(report_id.to_string()))),
        })
    }

    /// Removes a delivered report; false if no report had this id (already acked).
    pub fn ack(&self, report_id: &str) -> Result<bool> {
        self.with(|live| match &live.outbox {
            Some(outbox) => outbox.ack(report_id),
            None => check_id(report_id).map(|()| false),
        })
    }

    /// A snapshot of the counters.
    pub fn metrics(&self) -> Result<SessionMetrics> {
        self.with(|live| Ok(live.metrics(live.engine.metrics())))
    }

    /// Scores the frame still waiting, closes open segments (their reports are stored), stops the
    /// engine, delivers the last events and returns the final metrics. Returns `Ok(None)` when the
    /// session was already closed. Safe to call from the listener itself (then the last events are
    /// delivered after the listener returns).
    pub fn close(&self) -> Result<Option<SessionMetrics>> {
        // Taken out under the lock, finished outside it: a listener that calls back into the
        // session while the last events drain gets `Closed` instead of a deadlock.
        let live = self.live.write().unwrap_or_else(|p| p.into_inner()).take();
        let Some(mut live) = live else {
            return Ok(None);
        };
        let engine = live.engine.finish();
        let metrics = live.metrics(engine);
        let events = live.events.take();
        drop(live);
        if let Some(events) = events {
            if events.thread().id() != std::thread::current().id() && events.join().is_err() {
                log::error!("the session's listener panicked");
            }
        }
        log::info!(
            "session closed: {} frame(s) seen, {} scored, {} report(s) pending",
            metrics.engine.seen,
            metrics.engine.scored,
            metrics.outbox.pending
        );
        Ok(Some(metrics))
    }
}

impl Live {
    fn metrics(&self, engine: Metrics) -> SessionMetrics {
        SessionMetrics {
            engine,
            outbox: self
                .outbox
                .as_ref()
                .map(|o| o.metrics())
                .unwrap_or_default(),
            reports_lost: self.stats.lost.load(Ordering::Relaxed),
        }
    }
}

/// A stream id goes into every report id and report: 1 to 256 bytes (unchecked without reports).
fn check_stream_id(config: &SessionConfig) -> Result<()> {
    if config.store_reports && (config.stream_id.is_empty() || config.stream_id.len() > 256) {
        return Err(Error::InvalidArgument(format!(
            "a stream id has 1 to 256 bytes, got {}",
            config.stream_id.len()
        )));
    }
    Ok(())
}

impl Drop for Session {
    /// Closes the session (see [`Session::close`]).
    fn drop(&mut self) {
        let _ = self.close();
    }
}
