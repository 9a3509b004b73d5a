//! `prescreen`: the desktop harness. Screen images, folders and `.y4m` streams with the real model,
//! run the demo on the sample stream, write the sample stream to a file, or receive reports.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use prescreen::eval::{
    self,
    generate::{self, SetKind},
    report::EvalReport,
    run::EvalOptions,
    set::LabelledSet,
};
use prescreen::framegen::OwnedFrame;
use prescreen::ingest::{self, Receiver};
use prescreen::soak::proc_status as proc_status_kib;
use prescreen::stats::{ms, summarize};
use prescreen::stream::SampleStream;
use prescreen::timeline::{self, Series};
use prescreen::y4m::{self, Y4mReader};
use prescreen_runtime::frame::{ColorMatrix, ColorRange, PixelFormat, Rotation};
use prescreen_runtime::inference::model::{golden_input, IntegerKernels, LoadOptions, Model};
use prescreen_runtime::manifest::Variant;
use prescreen_runtime::policy::Policy;
use prescreen_runtime::preprocess::backend::Backend;
use prescreen_runtime::reporting::outbox::{reporting_sink, Outbox, OutboxOptions, ReportingStats};
use prescreen_runtime::reporting::report::{now_unix_millis, ReportContext};
use prescreen_runtime::reporting::upload::{UploadConfig, Uploader};
use prescreen_runtime::stream::engine::{Engine, EngineOptions, Event};
use prescreen_runtime::stream::screener::Screener;
use prescreen_runtime::stream::segmenter::SegmentEvent;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "prescreen",
    version,
    about = "On-device moderation runtime: desktop harness"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum VariantArg {
    Float,
    Int8,
}

impl From<VariantArg> for Variant {
    fn from(v: VariantArg) -> Self {
        match v {
            VariantArg::Float => Variant::Float,
            VariantArg::Int8 => Variant::Int8,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum BackendArg {
    /// A hardware GPU that passes the start-up self-test, else the CPU.
    Auto,
    /// The GPU (an error when none is usable).
    Gpu,
    /// The CPU.
    Cpu,
}

impl From<BackendArg> for Backend {
    fn from(v: BackendArg) -> Self {
        match v {
            BackendArg::Auto => Backend::Auto,
            BackendArg::Gpu => Backend::Gpu,
            BackendArg::Cpu => Backend::Cpu,
        }
    }
}

#[derive(clap::Args)]
struct ModelFile {
    /// Folder with model.toml and the fetched model files.
    #[arg(long, default_value = prescreen::DEFAULT_MODEL_DIR)]
    model_dir: PathBuf,
    /// Which model file to run.
    #[arg(long, value_enum, default_value = "float")]
    variant: VariantArg,
    /// Inference threads (tract's multithreaded matrix products when above 1).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// How an int8 file's convolutions run: `auto`, integer ones on this CPU's SIMD kernel (AVX-512
    /// VNNI, aarch64 i8mm or dotprod; tract's f32 kernels where it has none); `portable`, integer
    /// ones on the scalar kernel; `off`, tract's f32 kernels (for comparisons).
    #[arg(long, value_enum, default_value = "auto")]
    integer_kernels: IntegerKernelsArg,
    /// Run the depthwise convolutions that stay in f32 on tract's kernel where prescreen's is the
    /// default (x86-64), for comparisons.
    #[arg(long)]
    tract_depthwise: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum IntegerKernelsArg {
    Auto,
    Portable,
    Off,
}

impl From<IntegerKernelsArg> for IntegerKernels {
    fn from(k: IntegerKernelsArg) -> Self {
        match k {
            IntegerKernelsArg::Auto => IntegerKernels::Auto,
            IntegerKernelsArg::Portable => IntegerKernels::Portable,
            IntegerKernelsArg::Off => IntegerKernels::Off,
        }
    }
}

impl ModelFile {
    /// Loads, verifies and self-tests the model file.
    fn load(&self) -> Result<Model> {
        let options = LoadOptions {
            threads: self.threads,
            integer_kernels: self.integer_kernels.into(),
            float_depthwise: LoadOptions::default().float_depthwise && !self.tract_depthwise,
        };
        Model::load_dir_with(&self.model_dir, self.variant.into(), &options).with_context(|| {
            format!(
                "loading the model from {} (run `make model` to fetch it)",
                self.model_dir.display()
            )
        })
    }
}

#[derive(clap::Args)]
struct ModelArgs {
    /// Preprocessing backend. `auto` takes a hardware GPU that passes the start-up self-test and
    /// never a software rasteriser (slower than the CPU path). GPU stage times (upload, dispatch,
    /// readback) are printed with the other stages.
    #[arg(long, value_enum, default_value = "auto")]
    backend: BackendArg,
    #[command(flatten)]
    file: ModelFile,
    /// Write one JSON object per screened frame to this file (`-` for stdout).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Screen as the live engine does under this policy (sampling, scene gate, segments) instead of
    /// scoring every frame; prints the segments. E.g. models/policies/nsfwjs.toml.
    #[arg(long)]
    policy: Option<PathBuf>,
    /// With --policy: write a timeline of scores, thresholds and segments to this SVG file.
    #[arg(long, requires = "policy")]
    timeline: Option<PathBuf>,
    /// With --policy: store a report of every closed segment in this outbox folder (durable; kept
    /// until delivered).
    #[arg(long, requires = "policy")]
    outbox: Option<PathBuf>,
    /// With --outbox: when the stream ends, upload the pending reports to this endpoint
    /// (e.g. http://127.0.0.1:8080/v1/reports, as served by `prescreen ingest`).
    #[arg(long, requires = "outbox", conflicts_with = "receiver")]
    upload: Option<String>,
    /// With --outbox: start the reference receiver on 127.0.0.1, storing reports in this folder,
    /// and upload to it when the stream ends (what a server would get).
    #[arg(long, requires = "outbox")]
    receiver: Option<PathBuf>,
    /// Stream id written into reports (default: `harness-<unix ms>`).
    #[arg(long)]
    stream_id: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Time inference alone on the manifest's golden input, as benches/side_by_side.py runs it next
    /// to onnxruntime: load time to the first result, then the median of `--runs` runs. Prints one
    /// JSON object (times in ms, memory in KiB from /proc/self/status).
    BenchInfer {
        #[command(flatten)]
        file: ModelFile,
        /// Timed runs after the first result.
        #[arg(long, default_value_t = 30)]
        runs: usize,
        /// Also time every node and print, on stderr, the time per run of each kind of operator
        /// (tract's optimised graph), largest first.
        #[arg(long)]
        profile: bool,
    },
    /// Soak the live engine: a long stream (the frames' clock, as fast as the engine goes) with
    /// segments, reports, uploads to a loopback receiver and acknowledgements, sampling resident
    /// memory, file descriptors and threads. Fails when anything grows after the warm-up or a
    /// report is lost.
    Soak {
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
    },
    /// Screen an image, a folder of images, or a .y4m video; print per-frame scores and timings.
    Screen {
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
    },
    /// Screen the sample stream: real photographs filmed by a simulated hand-held camera,
    /// 1080p NV12 at 30 fps.
    Demo {
        #[command(flatten)]
        model: ModelArgs,
        /// Seconds each photograph is on screen.
        #[arg(long, default_value_t = 1.0)]
        shot_seconds: f64,
        /// Screen every Nth frame.
        #[arg(long, default_value_t = 1)]
        every: u32,
        /// Tint these intervals of the stream red, in seconds (e.g. `4-7,12-14`): a stream with
        /// known flagged intervals for the test classifier (`--model-dir models/redness`).
        #[arg(long, value_parser = parse_intervals)]
        red: Option<Intervals>,
        /// Blur every frame along the camera's motion over this many pixels (a fast pan): out of
        /// focus frames, which the policy's quality gate keeps from being evidence.
        #[arg(long, default_value_t = 0)]
        motion_blur: u32,
    },
    /// Write the sample stream to a .y4m file (I420), to screen it later or with other tools.
    MakeStream {
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
    },
    /// Evaluate a model and a policy on a labelled set, the way a safety team does: the set's
    /// streams through the real engine (frames' clock, faster than real time) and its images
    /// through the same screener. Writes OUT/eval.json, OUT/eval.html (self-contained) and
    /// OUT/proposed-policy.toml (thresholds meeting --target-recall with the fewest false flags).
    Eval {
        /// The labelled set: a folder with eval-set.toml, or with per-label image folders
        /// (`<label>/`, `clean/`). See README, "Evaluating a model and a policy".
        set: PathBuf,
        #[command(flatten)]
        file: ModelFile,
        /// The policy the engine runs under, e.g. models/policies/nsfwjs.toml.
        #[arg(long)]
        policy: PathBuf,
        /// Folder for the results (created).
        #[arg(long)]
        out: PathBuf,
        /// An earlier eval.json: print and draw the differences from it.
        #[arg(long)]
        baseline: Option<PathBuf>,
        /// Preprocessing backend.
        #[arg(long, value_enum, default_value = "cpu")]
        backend: BackendArg,
        /// A segment matches a ground-truth interval when it covers at least this fraction of it.
        #[arg(long, default_value_t = 0.5)]
        min_overlap: f64,
        /// The segment recall the proposed thresholds must reach.
        #[arg(long, default_value_t = 0.9)]
        target_recall: f64,
        /// Bins of the reliability diagram and the histograms.
        #[arg(long, default_value_t = 10)]
        bins: usize,
        /// Grid step of the threshold sweep.
        #[arg(long, default_value_t = 0.05)]
        sweep_step: f64,
        /// Do not run the streams again under the proposed thresholds (halves the time; the
        /// proposal then carries the sweep's replayed figures only).
        #[arg(long)]
        no_verify: bool,
    },
    /// Write a labelled set that can live anywhere (no explicit content): `redness`, streams and
    /// images with red intervals for the test classifier; `benign`, the sample photographs made
    /// hard (blur, low resolution, tints, crops, compression) and the sample stream, for the
    /// false-flag rates of a real model; `degraded`, the same content out of focus (streams with
    /// motion blur and defocus, heavily blurred photographs, thumbnails blown up), for the
    /// false-flag rates with and without the policy's quality gate.
    MakeEvalSet {
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
    },
    /// Receive segment reports: the reference server (`POST /v1/reports`), for development and
    /// the demo. Validates each report, stores new ones as DIR/<report_id>.json, prints one line
    /// per new report, and runs until killed.
    Ingest {
        /// Address to listen on (port 0 picks a free port).
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        /// Folder the reports are stored in.
        #[arg(long)]
        dir: PathBuf,
    },
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

fn parse_format(s: &str) -> Result<PixelFormat, String> {
    PixelFormat::from_name(s).ok_or_else(|| format!("unknown format {s:?}"))
}

/// Time intervals in seconds, as `--red` takes them (one value, so clap does not split it).
#[derive(Clone, Debug)]
struct Intervals(Vec<(f64, f64)>);

fn parse_intervals(s: &str) -> Result<Intervals, String> {
    s.split(',')
        .map(|part| {
            let (a, b) = part
                .split_once('-')
                .ok_or_else(|| format!("{part:?} is not START-END"))?;
            let (a, b): (f64, f64) = (
                a.trim()
                    .parse()
                    .map_err(|_| format!("bad start in {part:?}"))?,
                b.trim()
                    .parse()
                    .map_err(|_| format!("bad end in {part:?}"))?,
            );
            if a >= 0.0 && b > a {
                Ok((a, b))
            } else {
                Err(format!("{part:?}: need 0 <= START < END"))
            }
        })
        .collect::<Result<_, _>>()
        .map(Intervals)
}

fn parse_rotation(s: &str) -> Result<u32, String> {
    match s.parse::<i32>().ok().and_then(Rotation::from_degrees) {
        Some(r) => Ok(r.degrees()),
        None => Err("rotation must be 0, 90, 180 or 270".into()),
    }
}

/// Collected per-frame timings and scores.
struct Run {
    screener: Screener,
    json: Option<Box<dyn Write>>,
    validate: Vec<Duration>,
    preprocess: Vec<Duration>,
    infer: Vec<Duration>,
    /// GPU stages of frames preprocessed on the GPU: upload, dispatch, readback.
    gpu: [Vec<Duration>; 3],
    labels: Vec<String>,
    max_scores: Vec<f32>,
    frames: usize,
}

impl Run {
    fn new(args: &ModelArgs) -> Result<Self> {
        let started = Instant::now();
        let model = args.file.load()?;
        let m = model.manifest();
        eprintln!(
            "model {} {} ({}, sha256 {}…) loaded and self-tested in {:.0} ms",
            m.id,
            m.version,
            model.variant(),
            &model.sha256()[..12],
            ms(started.elapsed())
        );
        let labels = m.output.labels.clone();
        let json: Option<Box<dyn Write>> = match &args.json {
            None => None,
            Some(p) if p.as_os_str() == "-" => Some(Box::new(std::io::stdout())),
            Some(p) => Some(Box::new(std::io::BufWriter::new(
                std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
            ))),
        };
        let screener = Screener::with_backend(&model, args.backend.into())?;
        let pre = screener.preprocessor();
        match pre.adapter_name() {
            Some(adapter) => eprintln!("preprocessing on the GPU: {adapter}"),
            None => match pre.gpu_error() {
                Some(e) => eprintln!("preprocessing on the CPU (GPU unavailable: {e})"),
                None => eprintln!("preprocessing on the CPU"),
            },
        }
        Ok(Self {
            screener,
            json,
            validate: vec![],
            preprocess: vec![],
            infer: vec![],
            gpu: [vec![], vec![], vec![]],
            max_scores: vec![0.0; labels.len()],
            labels,
            frames: 0,
        })
    }

    /// Validates and screens one frame; returns the scores.
    fn screen(&mut self, owned: &OwnedFrame, source: &str) -> Result<Vec<f32>> {
        let t0 = Instant::now();
        let frame = owned
            .frame()
            .with_context(|| format!("frame from {source}"))?;
        let validated = t0.elapsed();
        let out = self.screener.screen(&frame)?;
        self.validate.push(validated);
        self.preprocess.push(out.preprocess);
        self.infer.push(out.infer);
        // Upload, dispatch and readback on the GPU (built with the `gpu` feature).
        #[cfg(feature = "gpu")]
        let gpu = self
            .screener
            .preprocessor()
            .gpu_stage_times()
            .map(|t| [t.upload, t.dispatch, t.readback]);
        #[cfg(not(feature = "gpu"))]
        let gpu: Option<[Duration; 3]> = None;
        if let Some(t) = gpu {
            for (v, d) in self.gpu.iter_mut().zip(t) {
                v.push(d);
            }
        }
        let p = out.scores.probabilities;
        for (m, v) in self.max_scores.iter_mut().zip(&p) {
            *m = m.max(*v);
        }
        if let Some(json) = &mut self.json {
            let scores: serde_json::Map<String, serde_json::Value> = self
                .labels
                .iter()
                .cloned()
                .zip(p.iter().map(|&v| serde_json::json!(v)))
                .collect();
            let line = serde_json::json!({
                "frame": self.frames,
                "source": source,
                "timestamp_us": frame.timestamp_us(),
                "format": frame.format().name(),
                "width": frame.width(),
                "height": frame.height(),
                "scores": scores,
                "timing_us": {
                    "validate": validated.as_micros() as u64,
                    "preprocess": out.preprocess.as_micros() as u64,
                    "infer": out.infer.as_micros() as u64,
                },
                "backend": self.screener.active_backend().to_string(),
                "gpu_timing_us": gpu.map(|[upload, dispatch, readback]| serde_json::json!({
                    "upload": upload.as_micros() as u64,
                    "dispatch": dispatch.as_micros() as u64,
                    "readback": readback.as_micros() as u64,
                })),
            });
            writeln!(json, "{line}")?;
        }
        self.frames += 1;
        Ok(p)
    }

    fn finish(mut self) -> Result<()> {
        if let Some(json) = &mut self.json {
            json.flush()?;
        }
        eprintln!("\n{} frames screened", self.frames);
        eprintln!("{:<11} {:>10} {:>10}", "stage", "median ms", "p95 ms");
        for (name, v) in [
            ("validate", &self.validate),
            ("preprocess", &self.preprocess),
            ("infer", &self.infer),
        ] {
            let s = summarize(v);
            eprintln!("{name:<11} {:>10.3} {:>10.3}", ms(s.median), ms(s.p95));
            if name == "preprocess" && !self.gpu[0].is_empty() {
                // The GPU part of preprocessing, for the frames it ran on the GPU.
                for (stage, v) in ["upload", "dispatch", "readback"].iter().zip(&self.gpu) {
                    let s = summarize(v);
                    eprintln!("  {stage:<9} {:>10.3} {:>10.3}", ms(s.median), ms(s.p95));
                }
            }
        }
        let pre = self.screener.preprocessor();
        if pre.fallbacks() > 0 {
            eprintln!(
                "GPU failed mid-stream, {} fallback(s) to the CPU: {}",
                pre.fallbacks(),
                pre.gpu_error().map(|e| e.to_string()).unwrap_or_default()
            );
        }
        let maxes: Vec<String> = self
            .labels
            .iter()
            .zip(&self.max_scores)
            .map(|(l, m)| format!("{l} {m:.4}"))
            .collect();
        eprintln!("highest scores: {}", maxes.join(", "));
        Ok(())
    }
}

/// Screening through the live engine: frames replayed in order, each taken frame scored before the
/// next is offered (as a phone keeping up would), segments printed as they close.
struct EngineRun {
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
    fn new(args: &ModelArgs, policy: &Path) -> Result<Self> {
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

    fn submit(&mut self, owned: &OwnedFrame, bar: &ProgressBar) -> Result<()> {
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

    fn finish(mut self, timeline: Option<&Path>) -> Result<()> {
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

fn progress(len: u64) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} frames {per_sec}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// Prints a line above the progress bar, or plainly when the bar is hidden (output not a terminal).
fn say(bar: &ProgressBar, line: String) {
    if bar.is_hidden() {
        println!("{line}");
    } else {
        bar.println(line);
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

fn demo(
    args: &ModelArgs,
    shot_seconds: f64,
    every: u32,
    red: Option<&[(f64, f64)]>,
    motion_blur: u32,
) -> Result<()> {
    let mut stream = SampleStream::new(prescreen::PHOTO_DIR, 1920, 1080, 30, shot_seconds)?
        .with_red_intervals(red.unwrap_or_default())
        .with_motion_blur(motion_blur);
    if let Some(red) = red {
        eprintln!("red intervals (s): {red:?}");
    }
    if motion_blur > 1 {
        eprintln!("motion blur: {motion_blur} px, across in even shots, down in odd ones");
    }
    let total = stream.len();
    if let Some(policy) = &args.policy {
        eprintln!(
            "sample stream: {total} frames of 1920x1080 NV12 at 30 fps, through the live engine"
        );
        let mut run = EngineRun::new(args, policy)?;
        let bar = progress(total as u64);
        for i in 0..total {
            run.submit(&stream.frame(i)?, &bar)?;
            bar.inc(1);
        }
        bar.finish_and_clear();
        return run.finish(args.timeline.as_deref());
    }
    let mut run = Run::new(args)?;
    eprintln!(
        "sample stream: {} photographs, {total} frames of 1920x1080 NV12 at {} fps ({:.0} s), screening every {}",
        total / ((shot_seconds * stream.fps() as f64).round() as u32).max(1),
        stream.fps(),
        total as f64 / stream.fps() as f64,
        every.max(1)
    );
    eprintln!("per shot: the label with the highest mean probability, then each label's highest");
    let labels = run.labels.clone();
    println!("{}", shot_header(&labels));
    let bar = progress(total as u64);
    let (mut shot, mut shot_scores) = (String::new(), Vec::<Vec<f32>>::new());
    let flush = |shot: &str, scores: &[Vec<f32>], bar: &ProgressBar| {
        if !scores.is_empty() {
            say(bar, shot_row(shot, &labels, scores));
        }
    };
    for i in (0..total).step_by(every.max(1) as usize) {
        let name = stream.photo_name(i).to_string();
        if name != shot {
            flush(&shot, &shot_scores, &bar);
            shot = name;
            shot_scores.clear();
        }
        let frame = stream.frame(i)?;
        shot_scores.push(run.screen(&frame, &shot)?);
        bar.set_position(i as u64 + 1);
    }
    flush(&shot, &shot_scores, &bar);
    bar.finish_and_clear();
    run.finish()
}

/// Column width of one label in the demo's per-shot table.
fn label_width(label: &str) -> usize {
    label.len().max(6)
}

/// The demo's per-shot table header: shot, frames, top label, then one column per label.
fn shot_header(labels: &[String]) -> String {
    let mut line = format!("{:<20} {:>6}  {:<8}", "shot", "frames", "top");
    for l in labels {
        line.push_str(&format!(" {l:>w$}", w = label_width(l)));
    }
    line
}

/// One shot's row: how many frames were scored, the label with the highest mean probability
/// over them, and each label's highest probability. `scores` holds one probability vector per
/// frame (at least one), in `labels` order.
fn shot_row(shot: &str, labels: &[String], scores: &[Vec<f32>]) -> String {
    let mut max = vec![0f32; labels.len()];
    let mut sum = vec![0f64; labels.len()];
    for p in scores {
        for (i, &v) in p.iter().enumerate().take(labels.len()) {
            max[i] = max[i].max(v);
            sum[i] += f64::from(v);
        }
    }
    let top = (0..labels.len())
        .max_by(|&a, &b| sum[a].total_cmp(&sum[b]))
        .map_or("-", |i| labels[i].as_str());
    let mut line = format!("{shot:<20} {:>6}  {top:<8}", scores.len());
    for (l, m) in labels.iter().zip(&max) {
        line.push_str(&format!(" {m:>w$.4}", w = label_width(l)));
    }
    line
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

fn ingest(listen: &str, dir: &Path) -> Result<()> {
    let receiver = Receiver::start(listen, dir, Some(ingest::print_new_reports(dir)))?;
    eprintln!(
        "receiving reports at {}, storing them in {} (Ctrl-C to stop)",
        receiver.url(),
        dir.display()
    );
    loop {
        std::thread::park();
    }
}

fn bench_infer(file: &ModelFile, runs: usize, profile: bool) -> Result<()> {
    if runs == 0 {
        bail!("--runs must be at least 1");
    }
    let rss_before = proc_status_kib("VmRSS");
    let started = Instant::now();
    let model = file.load()?;
    let mut session = model.session()?;
    let m = model.manifest();
    golden_input(&m.golden.input, &m.input, session.input_mut())?;
    let first = session.run()?;
    let load = started.elapsed();
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        let scores = session.run()?;
        times.push(t.elapsed());
        if scores != first {
            bail!("inference is not deterministic: {scores:?} after {first:?}");
        }
    }
    let s = summarize(&times);
    if profile {
        let ops = session.profile(runs)?;
        let total: Duration = ops.iter().map(|o| o.per_run).sum();
        eprintln!(
            "per-operator time per run ({} runs, profiled total {:.2} ms):",
            runs,
            ms(total)
        );
        for o in &ops {
            eprintln!(
                "  {:<40} {:>4} nodes {:>9.2} ms {:>5.1}%",
                o.op,
                o.nodes,
                ms(o.per_run),
                100.0 * o.per_run.as_secs_f64() / total.as_secs_f64().max(1e-12)
            );
        }
    }
    let file_bytes = std::fs::metadata(model.path())?.len();
    let out = serde_json::json!({
        "engine": "prescreen",
        "variant": model.variant().name(),
        "threads": model.threads(),
        "integer_convolutions": model.integer_convolutions(),
        "integer_kernel": model.integer_kernel(),
        "float_depthwise_convolutions": model.float_depthwise_convolutions(),
        "fused_quantize_pairs": model.fused_quantize_pairs(),
        "file_bytes": file_bytes,
        "load_to_first_result_ms": ms(load),
        "median_ms": ms(s.median),
        "p95_ms": ms(s.p95),
        "runs": runs,
        "rss_before_load_kib": rss_before,
        "peak_rss_kib": proc_status_kib("VmHWM"),
        "output": first.probabilities,
    });
    println!("{out}");
    Ok(())
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

/// `prescreen eval`: runs the evaluation, writes the JSON, the HTML and the proposed policy, and
/// prints the summary (and the differences from `baseline`).
fn eval(
    set_path: &Path,
    file: &ModelFile,
    policy_path: &Path,
    out: &Path,
    baseline: Option<&Path>,
    options: &EvalOptions,
) -> Result<()> {
    options.check()?;
    // Everything that can be refused is refused before the (long) run.
    let baseline = baseline
        .map(|p| EvalReport::read(p).map_err(anyhow::Error::from))
        .transpose()?;
    let set = LabelledSet::open(set_path)?;
    let policy_text = prescreen_runtime::files::read_regular_text(policy_path, 1 << 20)
        .with_context(|| format!("reading the policy {}", policy_path.display()))?;
    let policy = Policy::parse(&policy_text)
        .map_err(|e| anyhow::anyhow!("policy {}: {e}", policy_path.display()))?;
    let model = file.load()?;
    set.check_labels(&model.manifest().output.labels)?;
    policy.check_labels(&model.manifest().id, &model.manifest().output.labels)?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    eprintln!(
        "evaluating {} ({}) under policy {} on {}: {} stream(s), {} image(s)",
        model.manifest().id,
        model.variant(),
        policy.version,
        set_path.display(),
        set.streams.len(),
        set.images.len()
    );
    let started = Instant::now();
    let sources = eval::run::Sources {
        set: &set_path.display().to_string(),
        policy: &policy_path.display().to_string(),
    };
    let report = eval::run::evaluate(&model, &policy, &set, &sources, options)?;
    let comparison = baseline
        .as_ref()
        .map(|b| eval::compare::compare(&b.figures(), &report.figures()));
    let json = serde_json::to_vec_pretty(&report)?;
    std::fs::write(out.join("eval.json"), json)?;
    std::fs::write(
        out.join("eval.html"),
        eval::html::render(&report, comparison.as_ref()),
    )?;
    std::fs::write(
        out.join("proposed-policy.toml"),
        eval::run::proposed_policy_toml(&policy_text, &report)?,
    )?;
    println!("{}", eval_summary(&report));
    if let Some(c) = &comparison {
        println!(
            "{:<48} {:>12} {:>12} {:>12}",
            "compared with the baseline", "baseline", "now", "delta"
        );
        for r in c.rows.iter().filter(|r| r.delta != 0.0) {
            println!(
                "{:<48} {:>12.4} {:>12.4} {:>+12.4}",
                r.name, r.baseline, r.current, r.delta
            );
        }
        for name in &c.only_in_baseline {
            println!("{name:<48} only in the baseline");
        }
        for name in &c.only_in_current {
            println!("{name:<48} only in this run");
        }
    }
    eprintln!(
        "evaluated in {:.1} s; wrote {}/eval.json, eval.html and proposed-policy.toml",
        started.elapsed().as_secs_f64(),
        out.display()
    );
    Ok(())
}

/// The few lines a person reads first.
fn eval_summary(r: &EvalReport) -> String {
    let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
    let mut s = String::new();
    for l in &r.labels {
        let (fr, sg) = (&l.frames, &l.segments);
        s += &format!(
            "{}: frames {} positive / {} negative: AP {}, ROC AUC {}, ECE {}, false flags at enter {} per frame\n",
            l.label, fr.positives, fr.negatives, f(fr.average_precision), f(fr.roc_auc),
            f(fr.expected_calibration_error), f(fr.false_flag_rate_at_enter)
        );
        s += &format!(
            "{}: segments {} for {} truths: precision {}, recall {}, fragmentation {}, latency median {} ms, p95 {} ms, {} false flag(s) = {} per clean stream-hour [{}, {}]\n",
            l.label, sg.segments, sg.truths, f(sg.precision), f(sg.recall), f(sg.fragmentation),
            f(sg.latency_median_ms), f(sg.latency_p95_ms), sg.false_flags,
            f(sg.false_flags_per_hour), f(sg.false_flags_per_hour_lower), f(sg.false_flags_per_hour_upper)
        );
        if let Some(p) = &l.proposal {
            s += &format!(
                "{}: proposed enter {:.2}, exit {:.2} (replay recall {:.3}, {} false flags; engine recall {}, false flags {})\n",
                l.label, p.enter, p.exit, p.replay_recall, p.replay_false_flags,
                f(p.engine_recall), p.engine_false_flags.map_or("-".into(), |v| v.to_string())
            );
        }
    }
    let c = &r.cost;
    s += &format!(
        "cost: {:.1} s of stream, {} frames scored = {} per stream-second, engine {} ms per stream-second; {} image(s); too blurred or small: {} frame(s), {} image(s)",
        c.stream_seconds, c.frames_scored, f(c.frames_scored_per_stream_second),
        f(c.engine_ms_per_stream_second), c.images_scored, c.frames_low_quality,
        c.images_low_quality
    );
    s
}

fn main() -> Result<()> {
    // The runtime's warnings (quarantined files, evictions, retries, lost reports) are shown by
    // default; RUST_LOG chooses more or less (e.g. RUST_LOG=info, RUST_LOG=off).
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .format_timestamp(None)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Screen {
            input,
            model,
            format,
            rotate,
            limit,
        } => screen(&input, &model, format, rotate, limit),
        Command::Demo {
            model,
            shot_seconds,
            every,
            red,
            motion_blur,
        } => demo(
            &model,
            shot_seconds,
            every,
            red.as_ref().map(|r| &r.0[..]),
            motion_blur,
        ),
        Command::MakeStream {
            output,
            shot_seconds,
            width,
            height,
            motion_blur,
        } => make_stream(&output, shot_seconds, width, height, motion_blur),
        Command::Ingest { listen, dir } => ingest(&listen, &dir),
        Command::Eval {
            set,
            file,
            policy,
            out,
            baseline,
            backend,
            min_overlap,
            target_recall,
            bins,
            sweep_step,
            no_verify,
        } => {
            let options = EvalOptions {
                min_overlap,
                target_recall,
                bins,
                sweep_step,
                backend: backend.into(),
                verify_proposals: !no_verify,
                ..EvalOptions::default()
            };
            eval(&set, &file, &policy, &out, baseline.as_deref(), &options)
        }
        Command::MakeEvalSet {
            output,
            kind,
            width,
            height,
            shot_seconds,
        } => {
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
        Command::Soak {
            frames,
            sample_every,
            workdir,
        } => soak(frames, sample_every, workdir),
        Command::BenchInfer {
            file,
            runs,
            profile,
        } => bench_infer(&file, runs, profile),
    }
}

#[cfg(test)]
mod tests {
    use super::{shot_header, shot_row};

    /// The top label is the one with the highest mean, which need not hold the highest single
    /// score; every column lines up under its header.
    #[test]
    fn the_shot_table_gives_the_top_label_by_mean_and_each_labels_highest() {
        let labels: Vec<String> = ["Drawing", "Hentai", "Neutral", "Porn", "Sexy"]
            .map(String::from)
            .to_vec();
        let scores = [
            vec![0.2, 0.0, 0.8, 0.0, 0.0],
            vec![0.0, 0.0, 0.6, 0.3, 0.1],
            vec![0.0, 0.1, 0.0, 0.9, 0.0],
        ];
        let row = shot_row("coffee", &labels, &scores);
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(
            cells,
            ["coffee", "3", "Neutral", "0.2000", "0.1000", "0.8000", "0.9000", "0.1000"]
        );
        let header = shot_header(&labels);
        assert_eq!(header.len(), row.len());
        for l in &labels {
            let end = header.find(l.as_str()).unwrap() + l.len();
            assert_eq!(
                &row[end - 1..end],
                "0",
                "{l} column ends off its header:\n{header}\n{row}"
            );
        }
        let two = ["sfw".to_string(), "nsfw".to_string()];
        let row = shot_row("page", &two, &[vec![0.75, 0.25]]);
        assert_eq!(
            row.split_whitespace().collect::<Vec<_>>(),
            ["page", "1", "sfw", "0.7500", "0.2500"]
        );
        assert_eq!(shot_header(&two).len(), row.len());
    }
}
