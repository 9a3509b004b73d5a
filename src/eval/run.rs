//! Runs an evaluation: every stream of a labelled set through the real engine (the preprocessing,
//! model, sampling, scene gate, smoothing and segmenter that phones run), every still image
//! through the same scorer, then the metrics of this module's siblings over what came out.
//!
//! The clock is the frames' own: each frame is submitted, then the engine is waited on until it
//! is idle, so every frame the policy samples is scored and an evaluation runs as fast as the
//! engine goes, with results that do not depend on the machine's speed (only `cost` does).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use base64::Engine as _;
use prescreen_runtime::frame::{ColorMatrix, ColorRange, Frame, PixelFormat};
use prescreen_runtime::inference::model::Model;
use prescreen_runtime::manifest::InputSpec;
use prescreen_runtime::policy::Policy;
use prescreen_runtime::preprocess::backend::Backend;
use prescreen_runtime::preprocess::CpuPreprocessor;
use prescreen_runtime::stream::engine::{Engine, EngineOptions, Event, EventSink, Thumbnail};
use prescreen_runtime::stream::sampling::Signature;
use prescreen_runtime::stream::scorer::Scorer;
use prescreen_runtime::stream::segmenter::SegmentEvent;

use super::report::{
    Cost, CurvePoint, EvalReport, Example, ExampleKind, FrameFigures, LabelReport,
    LabelledInterval, ModelInfo, PolicyInfo, PredictedSegment, Proposal, ReliabilityBin,
    ScoreTrace, SegmentFigures, SetInfo, Settings, StreamReport, Thresholds, REPORT_FORMAT,
    REPORT_VERSION,
};
use super::segments::{evaluate_segments, Interval, StreamSegments};
use super::set::{LabelledSet, LabelledStream, StreamSource};
use super::{calibration, curves, poisson, sweep};
use crate::framegen::OwnedFrame;
use crate::y4m::Y4mReader;

/// How an evaluation measures. The defaults are what `prescreen eval` uses.
#[derive(Clone, Debug)]
pub struct EvalOptions {
    /// A segment matches a ground-truth interval when it covers at least this fraction of it.
    pub min_overlap: f64,
    /// The segment recall the threshold sweep must reach.
    pub target_recall: f64,
    /// Bins of the reliability diagram and the histograms.
    pub bins: usize,
    /// Grid step of the threshold sweep.
    pub sweep_step: f64,
    /// Confidence of the false-flag rate's interval.
    pub confidence: f64,
    /// Where frames are preprocessed.
    pub backend: Backend,
    /// Run the streams again through the engine under the proposed thresholds, and report what
    /// that run measured next to the sweep's replay.
    pub verify_proposals: bool,
    /// Worst false flags and misses kept per kind, with thumbnails.
    pub examples_per_kind: usize,
    /// Longer side of the thumbnails, in pixels.
    pub thumbnail_size: u32,
}

impl Default for EvalOptions {
    fn default() -> Self {
        Self {
            min_overlap: 0.5,
            target_recall: 0.9,
            bins: 10,
            sweep_step: 0.05,
            confidence: 0.95,
            backend: Backend::Cpu,
            verify_proposals: true,
            examples_per_kind: 6,
            thumbnail_size: 160,
        }
    }
}

impl EvalOptions {
    /// Refuses settings no metric is defined for.
    pub fn check(&self) -> Result<()> {
        if !(self.min_overlap > 0.0 && self.min_overlap <= 1.0) {
            bail!("--min-overlap must be in (0, 1]");
        }
        if !(0.0..=1.0).contains(&self.target_recall) {
            bail!("--target-recall must be in [0, 1]");
        }
        if !(1..=curves::MAX_BINS).contains(&self.bins) {
            bail!("--bins must be in [1, {}]", curves::MAX_BINS);
        }
        if !(self.sweep_step >= 0.001 && self.sweep_step <= 1.0) {
            bail!("--sweep-step must be in [0.001, 1]");
        }
        if !(self.confidence > 0.0 && self.confidence < 1.0) {
            bail!("the confidence must be in (0, 1)");
        }
        if !(16..=1024).contains(&self.thumbnail_size) {
            bail!("the thumbnail size must be in [16, 1024]");
        }
        Ok(())
    }
}

/// Where the inputs came from, as the report names them.
pub struct Sources<'a> {
    /// The set's path as given.
    pub set: &'a str,
    /// The policy file's path as given.
    pub policy: &'a str,
}

/// What one stream gave.
struct StreamRun {
    name: String,
    duration_us: i64,
    seen: u64,
    scored: u64,
    low_quality: u64,
    busy: Duration,
    /// `(relative timestamp, scores in model order)` of every scored frame.
    scores: Vec<(i64, Vec<f32>)>,
    segments: Vec<RunSegment>,
    /// Per truth (index in the stream's truths): the best score seen inside it and a thumbnail of
    /// that frame.
    truth_best: Vec<Option<(f32, Thumbnail)>>,
}

struct RunSegment {
    label: String,
    start_us: i64,
    end_us: i64,
    opened_us: i64,
    peak: f32,
    thumbnail: Option<Thumbnail>,
}

/// Calls `f` on every frame of a stream, in order, with timestamps as the source gives them.
fn for_each_stream_frame(
    stream: &LabelledStream,
    mut f: impl FnMut(&OwnedFrame) -> Result<()>,
) -> Result<()> {
    match &stream.source {
        StreamSource::Y4m(path) => {
            let mut reader =
                Y4mReader::open(path).with_context(|| format!("opening {}", path.display()))?;
            while let Some(frame) = reader
                .next_frame()
                .with_context(|| format!("reading {}", path.display()))?
            {
                f(&frame)?;
            }
        }
        StreamSource::Sequence { folder, fps } => {
            let mut files: Vec<_> = std::fs::read_dir(folder)
                .with_context(|| format!("listing {}", folder.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| is_image(p))
                .collect();
            files.sort();
            if files.is_empty() {
                bail!("no images in the sequence {}", folder.display());
            }
            for (i, path) in files.iter().enumerate() {
                let mut frame = image_frame(path)?;
                frame.timestamp_us = (i as f64 * 1e6 / fps).round() as i64;
                f(&frame)?;
            }
        }
    }
    Ok(())
}

/// Whether a path names a PNG or JPEG file, by its extension.
pub fn is_image(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| ["png", "jpg", "jpeg"].contains(&e.to_ascii_lowercase().as_str()))
}

fn image_frame(path: &Path) -> Result<OwnedFrame> {
    let rgb = crate::images::load_rgb(path)?;
    let (w, h) = rgb.dimensions();
    OwnedFrame::from_rgb(
        rgb.as_raw(),
        w,
        h,
        PixelFormat::Rgb8,
        ColorMatrix::Bt601,
        ColorRange::Full,
    )
    .with_context(|| format!("image {}", path.display()))
}

/// Makes upright RGB thumbnails the way the engine makes its evidence.
struct Thumbnailer {
    size: u32,
    cached: Option<(u32, u32, CpuPreprocessor)>,
    tensor: Vec<f32>,
}

impl Thumbnailer {
    fn new(size: u32) -> Self {
        Self {
            size,
            cached: None,
            tensor: vec![],
        }
    }

    fn make(&mut self, frame: &Frame<'_>) -> Option<Thumbnail> {
        let (w, h) = frame.upright_size();
        let s = self.size as f64 / w.max(h) as f64;
        let tw = ((w as f64 * s).round() as u32).max(1);
        let th = ((h as f64 * s).round() as u32).max(1);
        if !matches!(&self.cached, Some((cw, ch, _)) if (*cw, *ch) == (tw, th)) {
            self.cached = Some((
                tw,
                th,
                CpuPreprocessor::new(&InputSpec::upright_rgb(tw, th)),
            ));
        }
        let (_, _, pre) = self.cached.as_mut()?;
        self.tensor.resize(tw as usize * th as usize * 3, 0.0);
        pre.run(frame, &mut self.tensor).ok()?;
        Some(Thumbnail {
            timestamp_us: frame.timestamp_us(),
            width: tw,
            height: th,
            rgb: self
                .tensor
                .iter()
                .map(|v| v.round().clamp(0.0, 255.0) as u8)
                .collect(),
        })
    }
}

/// A thumbnail as base64 JPEG (quality 80).
fn jpeg_base64(t: &Thumbnail) -> Option<String> {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 80)
        .encode(&t.rgb, t.width, t.height, image::ExtendedColorType::Rgb8)
        .ok()?;
    Some(base64::engine::general_purpose::STANDARD.encode(out))
}

/// Runs one stream through a new engine under `policy`.
fn run_stream(
    model: &Model,
    policy: &Policy,
    options: &EvalOptions,
    stream: &LabelledStream,
    thumbs: &mut Thumbnailer,
) -> Result<StreamRun> {
    let (tx, events) = mpsc::channel();
    let sink: EventSink = Box::new(move |e| drop(tx.send(e)));
    let engine_options = EngineOptions {
        emit_scores: true,
        backend: options.backend,
    };
    let engine = Engine::start(model, policy, engine_options, sink)
        .with_context(|| format!("starting the engine for {}", stream.name))?;
    let labels = engine.labels().to_vec();
    let mut run = StreamRun {
        name: stream.name.clone(),
        duration_us: 0,
        seen: 0,
        scored: 0,
        low_quality: 0,
        busy: Duration::ZERO,
        scores: vec![],
        segments: vec![],
        truth_best: vec![None; stream.truths.len()],
    };
    let mut first: Option<i64> = None;
    let mut last_rel = 0i64;
    let mut opened: BTreeMap<u64, i64> = BTreeMap::new();
    let mut drain =
        |run: &mut StreamRun, first: Option<i64>, current: Option<(&Frame<'_>, i64)>| {
            while let Ok(event) = events.try_recv() {
                match event {
                    Event::Scored {
                        timestamp_us,
                        scores,
                    } => {
                        let rel = timestamp_us - first.unwrap_or(timestamp_us);
                        // The frame just submitted: keep a thumbnail when it is the best so far of a
                        // ground-truth interval it lies in (a miss's evidence).
                        if let Some((frame, cur)) = current.filter(|(_, cur)| *cur == rel) {
                            for (i, t) in stream.truths.iter().enumerate() {
                                let Some(l) = labels.iter().position(|l| *l == t.label) else {
                                    continue;
                                };
                                let inside = (t.start_us..t.end_us).contains(&cur);
                                let better = run.truth_best[i]
                                    .as_ref()
                                    .is_none_or(|(best, _)| scores[l] > *best);
                                if inside && better {
                                    if let Some(thumb) = thumbs.make(frame) {
                                        run.truth_best[i] = Some((scores[l], thumb));
                                    }
                                }
                            }
                        }
                        run.scores.push((rel, scores));
                    }
                    Event::Segment(SegmentEvent::Opened(s), _) => {
                        opened.insert(s.id, s.end_us);
                    }
                    Event::Segment(SegmentEvent::Closed(s), thumbnails) => {
                        let base = first.unwrap_or(0);
                        run.segments.push(RunSegment {
                            label: s.label.to_string(),
                            start_us: s.start_us - base,
                            end_us: s.end_us - base,
                            opened_us: opened.remove(&s.id).unwrap_or(s.end_us) - base,
                            peak: s.peak,
                            thumbnail: thumbnails.into_iter().next(),
                        });
                    }
                    Event::Segment(SegmentEvent::Updated(_), _) => {}
                    Event::Error(e) => log::warn!("engine ({}): {e}", stream.name),
                    Event::ReportQueued { .. } => {}
                }
            }
        };
    let mut frames = 0u64;
    let fed = for_each_stream_frame(stream, |owned| {
        let frame = owned
            .frame()
            .with_context(|| format!("a frame of {}", stream.name))?;
        let t = frame.timestamp_us();
        let base = *first.get_or_insert(t);
        let rel = t - base;
        frames += 1;
        last_rel = rel;
        engine.submit(&frame);
        engine.wait_idle();
        drain(&mut run, first, Some((&frame, rel)));
        Ok(())
    });
    let metrics = engine.finish();
    drain(&mut run, first, None);
    fed?;
    if first.is_none() {
        bail!("the stream {} has no frame", stream.name);
    }
    // Through the end of the last frame: the mean frame interval after the last timestamp. A
    // frame rate's timestamps are truncated to microseconds, so round up (30 fps: 600 frames
    // last exactly 20 s).
    run.duration_us = if frames > 1 {
        (last_rel as f64 * frames as f64 / (frames - 1) as f64 - 1e-3).ceil() as i64
    } else {
        1_000_000 / 30
    };
    run.seen = metrics.seen;
    run.scored = metrics.scored;
    run.low_quality = metrics.low_quality;
    run.busy = metrics.submit.total() + metrics.preprocess.total() + metrics.infer.total();
    if metrics.failed > 0 || metrics.rejected > 0 {
        bail!(
            "{}: {} frame(s) failed and {} were rejected by the engine",
            stream.name,
            metrics.failed,
            metrics.rejected
        );
    }
    Ok(run)
}

/// Scores of every still image, in the set's order, and how many the policy's quality gate
/// skipped: those score 0 for every label, as the engine never flags a frame it skips.
fn score_images(
    model: &Model,
    policy: &Policy,
    set: &LabelledSet,
    options: &EvalOptions,
) -> Result<(Vec<Vec<f32>>, u64)> {
    if set.images.is_empty() {
        return Ok((vec![], 0));
    }
    let mut scorer = Scorer::new(model, options.backend)?;
    let mut signature = Signature::default();
    let mut skipped = 0;
    let labels = model.manifest().output.labels.len();
    let scores = set
        .images
        .iter()
        .map(|image| {
            let owned = image_frame(&image.path)?;
            let frame = owned.frame().with_context(|| image.name.clone())?;
            if policy.quality.rejects(&signature.compute(&frame)) {
                skipped += 1;
                return Ok(vec![0.0; labels]);
            }
            Ok(scorer.score(&frame)?.scores.probabilities)
        })
        .collect::<Result<_>>()?;
    Ok((scores, skipped))
}

/// Evaluates `model` under `policy` on `set`.
pub fn evaluate(
    model: &Model,
    policy: &Policy,
    set: &LabelledSet,
    sources: &Sources<'_>,
    options: &EvalOptions,
) -> Result<EvalReport> {
    options.check()?;
    let manifest = model.manifest();
    let model_labels = manifest.output.labels.clone();
    set.check_labels(&model_labels)?;
    policy.check_labels(&manifest.id, &model_labels)?;
    let labels: Vec<String> = policy.labels.keys().cloned().collect();
    let index = |label: &str| model_labels.iter().position(|l| l == label);

    let mut thumbs = Thumbnailer::new(options.thumbnail_size);
    let mut runs = Vec::with_capacity(set.streams.len());
    for stream in &set.streams {
        runs.push(run_stream(model, policy, options, stream, &mut thumbs)?);
    }
    let (image_scores, images_low_quality) = score_images(model, policy, set, options)?;

    let mut label_reports = Vec::new();
    let mut examples = Vec::new();
    for label in &labels {
        let li = index(label).context("policy label missing from the model")?;
        let enter = policy.labels[label].enter;
        // Frame level: scored stream frames, then images.
        let mut pairs: Vec<(f32, bool)> = Vec::new();
        for (run, stream) in runs.iter().zip(&set.streams) {
            for (t, scores) in &run.scores {
                let truth = stream
                    .truths
                    .iter()
                    .any(|i| i.label == *label && (i.start_us..i.end_us).contains(t));
                pairs.push((scores[li], truth));
            }
        }
        for (image, scores) in set.images.iter().zip(&image_scores) {
            pairs.push((scores[li], image.labels.contains(label)));
        }
        let frames = frame_figures(&pairs, enter, options.bins)?;
        let segments = segment_figures(label, &runs, set, options)?;
        let proposal = propose(label, li, &runs, set, policy, options)?;
        label_reports.push(LabelReport {
            label: label.clone(),
            frames,
            segments,
            proposal,
        });
        examples.extend(label_examples(
            label,
            li,
            enter,
            &runs,
            set,
            &image_scores,
            options,
        )?);
    }
    if options.verify_proposals {
        verify(model, policy, set, options, &mut label_reports)?;
    }

    let stream_reports = runs
        .iter()
        .zip(&set.streams)
        .map(|(run, stream)| stream_report(run, stream, &labels, &model_labels))
        .collect();
    let stream_seconds = runs.iter().map(|r| r.duration_us).sum::<i64>() as f64 / 1e6;
    let frames_scored = runs.iter().map(|r| r.scored).sum::<u64>();
    let busy: Duration = runs.iter().map(|r| r.busy).sum();
    let per_second = |v: f64| (stream_seconds > 0.0).then(|| v / stream_seconds);
    Ok(EvalReport {
        format: REPORT_FORMAT.into(),
        version: REPORT_VERSION,
        model: ModelInfo {
            id: manifest.id.clone(),
            version: manifest.version.clone(),
            variant: model.variant().to_string(),
            sha256: model.sha256().to_string(),
            labels: model_labels.clone(),
        },
        policy: PolicyInfo {
            path: sources.policy.into(),
            version: policy.version.clone(),
            thresholds: labels
                .iter()
                .map(|l| Thresholds {
                    label: l.clone(),
                    enter: policy.labels[l].enter,
                    exit: policy.labels[l].exit,
                })
                .collect(),
        },
        set: SetInfo {
            path: sources.set.into(),
            streams: set.streams.len(),
            images: set.images.len(),
        },
        settings: Settings {
            min_overlap: options.min_overlap,
            target_recall: options.target_recall,
            bins: options.bins,
            sweep_step: options.sweep_step,
            confidence: options.confidence,
        },
        labels: label_reports,
        streams: stream_reports,
        cost: Cost {
            stream_seconds,
            frames_seen: runs.iter().map(|r| r.seen).sum(),
            frames_scored,
            frames_scored_per_stream_second: per_second(frames_scored as f64),
            engine_ms_per_stream_second: per_second(busy.as_secs_f64() * 1e3),
            images_scored: image_scores.len() as u64 - images_low_quality,
            frames_low_quality: runs.iter().map(|r| r.low_quality).sum(),
            images_low_quality,
        },
        examples,
    })
}

fn frame_figures(pairs: &[(f32, bool)], enter: f32, bins: usize) -> Result<FrameFigures> {
    let positives = pairs.iter().filter(|p| p.1).count() as u64;
    let negatives = pairs.len() as u64 - positives;
    let both = positives > 0 && negatives > 0;
    let pr_curve = if positives > 0 {
        curves::pr_curve(pairs)?
            .into_iter()
            .map(|p| CurvePoint {
                threshold: p.threshold.is_finite().then_some(p.threshold),
                x: p.recall,
                y: p.precision,
            })
            .collect()
    } else {
        vec![]
    };
    let roc_curve = if both {
        curves::roc_curve(pairs)?
            .into_iter()
            .map(|p| CurvePoint {
                threshold: p.threshold.is_finite().then_some(p.threshold),
                x: p.false_positive_rate,
                y: p.true_positive_rate,
            })
            .collect()
    } else {
        vec![]
    };
    let cal = (!pairs.is_empty())
        .then(|| calibration::calibration(pairs, bins))
        .transpose()?;
    let hist = curves::score_histograms(pairs, bins)?;
    let negatives_at_enter = pairs.iter().filter(|p| !p.1 && p.0 >= enter).count() as u64;
    let positives_below_enter = pairs.iter().filter(|p| p.1 && p.0 < enter).count() as u64;
    Ok(FrameFigures {
        positives,
        negatives,
        average_precision: (positives > 0)
            .then(|| curves::average_precision(pairs))
            .transpose()?,
        roc_auc: both.then(|| curves::roc_auc(pairs)).transpose()?,
        expected_calibration_error: cal.as_ref().map(|c| c.expected_calibration_error),
        maximum_calibration_error: cal.as_ref().map(|c| c.maximum_calibration_error),
        negatives_at_enter,
        false_flag_rate_at_enter: (negatives > 0)
            .then(|| negatives_at_enter as f64 / negatives as f64),
        positives_below_enter,
        pr_curve,
        roc_curve,
        reliability: cal
            .map(|c| {
                c.bins
                    .into_iter()
                    .map(|b| ReliabilityBin {
                        lower: b.lower,
                        upper: b.upper,
                        count: b.count,
                        mean_score: b.mean_score,
                        positive_rate: b.positive_rate,
                    })
                    .collect()
            })
            .unwrap_or_default(),
        histogram_positives: hist.positives,
        histogram_negatives: hist.negatives,
    })
}

fn interval(start: i64, end: i64) -> Interval {
    Interval::new(start.max(0) as u64, end.max(start).max(0) as u64)
}

/// Microseconds of `[0, duration)` outside every interval (sorted, non-overlapping).
fn clean_us(duration: i64, truths: &[Interval]) -> u64 {
    let covered: u64 = truths
        .iter()
        .map(|t| {
            t.end_us
                .min(duration.max(0) as u64)
                .saturating_sub(t.start_us)
        })
        .sum();
    (duration.max(0) as u64).saturating_sub(covered)
}

fn segment_figures(
    label: &str,
    runs: &[StreamRun],
    set: &LabelledSet,
    options: &EvalOptions,
) -> Result<SegmentFigures> {
    let mut streams = Vec::new();
    let mut latencies = Vec::new();
    let mut clean = 0u64;
    for (run, stream) in runs.iter().zip(&set.streams) {
        let truths: Vec<Interval> = stream
            .truths
            .iter()
            .filter(|t| t.label == label)
            .map(|t| interval(t.start_us, t.end_us))
            .collect();
        let mut segs: Vec<&RunSegment> = run.segments.iter().filter(|s| s.label == label).collect();
        segs.sort_by_key(|s| (s.start_us, s.end_us));
        latencies.extend(opening_latencies(&truths, &segs, options.min_overlap));
        clean += clean_us(run.duration_us, &truths);
        streams.push(StreamSegments {
            truths,
            predictions: segs
                .iter()
                .map(|s| interval(s.start_us, s.end_us))
                .collect(),
        });
    }
    let r = evaluate_segments(&streams, options.min_overlap)?;
    latencies.sort_unstable();
    let rank = |p: f64| {
        super::segments::nearest_rank_percentile(&latencies, p)
            .ok()
            .map(|v| v as f64 / 1e3)
    };
    let rate = (clean > 0)
        .then(|| poisson::false_flag_rate(r.false_flags, clean, options.confidence))
        .transpose()?;
    Ok(SegmentFigures {
        truths: r.truths,
        segments: r.predictions,
        matched_truths: r.matched_truths,
        matched_segments: r.matched_predictions,
        precision: r.precision,
        recall: r.recall,
        fragmentation: r.fragmentation,
        latency_median_ms: rank(50.0),
        latency_p95_ms: rank(95.0),
        false_flags: r.false_flags,
        clean_hours: clean as f64 / 3.6e9,
        false_flags_per_hour: rate.as_ref().map(|r| r.per_hour),
        false_flags_per_hour_lower: rate.as_ref().map(|r| r.lower_per_hour),
        false_flags_per_hour_upper: rate.as_ref().map(|r| r.upper_per_hour),
    })
}

/// For each truth matched by a segment (sorted by start): from the truth's start to the
/// `SegmentOpened` of its earliest-starting matching segment, 0 when that came first. The same
/// matching rule as [`evaluate_segments`].
fn opening_latencies(truths: &[Interval], segs: &[&RunSegment], min_overlap: f64) -> Vec<u64> {
    truths
        .iter()
        .filter_map(|t| {
            let duration = t.duration_us() as f64;
            segs.iter()
                .find(|s| {
                    let overlap = t.overlap_us(&interval(s.start_us, s.end_us));
                    overlap > 0 && overlap as f64 / duration >= min_overlap
                })
                .map(|s| (s.opened_us.max(0) as u64).saturating_sub(t.start_us))
        })
        .collect()
}

/// The sweep's frames of one label and stream: every scored frame with its truth.
fn sweep_frames(
    label: &str,
    li: usize,
    run: &StreamRun,
    stream: &LabelledStream,
) -> Vec<sweep::Frame> {
    run.scores
        .iter()
        .map(|(t, scores)| sweep::Frame {
            timestamp_us: (*t).max(0) as u64,
            score: scores[li],
            truth: stream
                .truths
                .iter()
                .any(|i| i.label == label && (i.start_us..i.end_us).contains(t)),
        })
        .collect()
}

fn propose(
    label: &str,
    li: usize,
    runs: &[StreamRun],
    set: &LabelledSet,
    policy: &Policy,
    options: &EvalOptions,
) -> Result<Option<Proposal>> {
    let frames: Vec<Vec<sweep::Frame>> = runs
        .iter()
        .zip(&set.streams)
        .map(|(run, stream)| sweep_frames(label, li, run, stream))
        .collect();
    if !frames.iter().flatten().any(|f| f.truth) {
        return Ok(None);
    }
    let config = sweep::SweepConfig {
        step: options.sweep_step,
        min_off_us: policy.segments.merge_gap_ms * 1000,
        frame_duration_us: (1e6 / policy.sampling.base_fps.max(0.1)).round() as u64,
        min_overlap: options.min_overlap,
        target_recall: options.target_recall,
    };
    let result = sweep::sweep(&frames, &config)?;
    Ok(result.best_row().map(|row| Proposal {
        enter: row.enter,
        exit: row.exit,
        replay_recall: row.report.recall.unwrap_or(0.0),
        replay_false_flags: row.report.false_flags,
        engine_recall: None,
        engine_false_flags: None,
        engine_false_flags_per_hour: None,
    }))
}

/// The policy with the proposed thresholds in place of the original ones (`watch` lowered to
/// `exit` where it was above it).
pub fn proposed_policy(policy: &Policy, labels: &[LabelReport]) -> Policy {
    let mut p = policy.clone();
    for l in labels {
        if let (Some(prop), Some(lp)) = (&l.proposal, p.labels.get_mut(&l.label)) {
            lp.enter = prop.enter;
            lp.exit = prop.exit;
            lp.watch = lp.watch.min(prop.exit);
        }
    }
    p
}

/// Runs the streams again under the proposed thresholds and records what the engine measured.
fn verify(
    model: &Model,
    policy: &Policy,
    set: &LabelledSet,
    options: &EvalOptions,
    labels: &mut [LabelReport],
) -> Result<()> {
    if labels.iter().all(|l| l.proposal.is_none()) {
        return Ok(());
    }
    let proposed = proposed_policy(policy, labels);
    let mut thumbs = Thumbnailer::new(options.thumbnail_size);
    let mut runs = Vec::new();
    for stream in &set.streams {
        runs.push(run_stream(model, &proposed, options, stream, &mut thumbs)?);
    }
    for l in labels.iter_mut() {
        let figures = segment_figures(&l.label, &runs, set, options)?;
        if let Some(p) = &mut l.proposal {
            p.engine_recall = figures.recall;
            p.engine_false_flags = Some(figures.false_flags);
            p.engine_false_flags_per_hour = figures.false_flags_per_hour;
        }
    }
    Ok(())
}

fn label_examples(
    label: &str,
    li: usize,
    enter: f32,
    runs: &[StreamRun],
    set: &LabelledSet,
    image_scores: &[Vec<f32>],
    options: &EvalOptions,
) -> Result<Vec<Example>> {
    let mut false_flags = Vec::new();
    let mut misses = Vec::new();
    for (run, stream) in runs.iter().zip(&set.streams) {
        let truths: Vec<(usize, Interval)> = stream
            .truths
            .iter()
            .enumerate()
            .filter(|(_, t)| t.label == label)
            .map(|(i, t)| (i, interval(t.start_us, t.end_us)))
            .collect();
        let segs: Vec<&RunSegment> = run.segments.iter().filter(|s| s.label == label).collect();
        for s in &segs {
            let iv = interval(s.start_us, s.end_us);
            if truths.iter().all(|(_, t)| t.overlap_us(&iv) == 0) {
                false_flags.push(Example {
                    kind: ExampleKind::FalseFlag,
                    label: label.into(),
                    source: run.name.clone(),
                    start_us: s.start_us,
                    end_us: s.end_us,
                    score: s.peak,
                    thumbnail_jpeg_base64: s.thumbnail.as_ref().and_then(jpeg_base64),
                });
            }
        }
        for (i, t) in &truths {
            let matched =
                !opening_latencies(std::slice::from_ref(t), &segs, options.min_overlap).is_empty();
            if !matched {
                let best = run.truth_best[*i].as_ref();
                misses.push(Example {
                    kind: ExampleKind::Miss,
                    label: label.into(),
                    source: run.name.clone(),
                    start_us: t.start_us as i64,
                    end_us: t.end_us as i64,
                    score: best.map_or(0.0, |b| b.0),
                    thumbnail_jpeg_base64: best.and_then(|b| jpeg_base64(&b.1)),
                });
            }
        }
    }
    // Worst first: the most confident false flags, the misses that scored lowest.
    false_flags.sort_by(|a, b| b.score.total_cmp(&a.score));
    misses.sort_by(|a, b| a.score.total_cmp(&b.score));
    let mut flagged: Vec<(f32, usize)> = Vec::new();
    let mut missed: Vec<(f32, usize)> = Vec::new();
    for (i, (image, scores)) in set.images.iter().zip(image_scores).enumerate() {
        let s = scores[li];
        let positive = image.labels.iter().any(|l| l == label);
        if !positive && s >= enter {
            flagged.push((s, i));
        } else if positive && s < enter {
            missed.push((s, i));
        }
    }
    flagged.sort_by(|a, b| b.0.total_cmp(&a.0));
    missed.sort_by(|a, b| a.0.total_cmp(&b.0));
    let n = options.examples_per_kind;
    let mut thumbs = Thumbnailer::new(options.thumbnail_size);
    let mut image_example = |kind, (score, i): (f32, usize)| -> Result<Example> {
        let image = &set.images[i];
        let owned = image_frame(&image.path)?;
        let frame = owned.frame().with_context(|| image.name.clone())?;
        Ok(Example {
            kind,
            label: label.into(),
            source: image.name.clone(),
            start_us: 0,
            end_us: 0,
            score,
            thumbnail_jpeg_base64: thumbs.make(&frame).as_ref().and_then(jpeg_base64),
        })
    };
    let mut out: Vec<Example> = false_flags.into_iter().take(n).collect();
    out.extend(misses.into_iter().take(n));
    for (kind, images) in [
        (ExampleKind::FlaggedImage, flagged),
        (ExampleKind::MissedImage, missed),
    ] {
        for image in images.into_iter().take(n) {
            out.push(image_example(kind, image)?);
        }
    }
    Ok(out)
}

fn stream_report(
    run: &StreamRun,
    stream: &LabelledStream,
    labels: &[String],
    model_labels: &[String],
) -> StreamReport {
    StreamReport {
        name: run.name.clone(),
        duration_us: run.duration_us,
        frames_seen: run.seen,
        frames_scored: run.scored,
        truths: stream
            .truths
            .iter()
            .map(|t| LabelledInterval {
                label: t.label.clone(),
                start_us: t.start_us,
                end_us: t.end_us,
            })
            .collect(),
        segments: run
            .segments
            .iter()
            .map(|s| PredictedSegment {
                label: s.label.clone(),
                start_us: s.start_us,
                end_us: s.end_us,
                opened_us: s.opened_us,
                peak: s.peak,
                matched: stream.truths.iter().any(|t| {
                    t.label == s.label
                        && interval(t.start_us, t.end_us)
                            .overlap_us(&interval(s.start_us, s.end_us))
                            > 0
                }),
            })
            .collect(),
        traces: labels
            .iter()
            .filter_map(|l| {
                let li = model_labels.iter().position(|m| m == l)?;
                Some(ScoreTrace {
                    label: l.clone(),
                    points: run.scores.iter().map(|(t, s)| (*t, s[li])).collect(),
                })
            })
            .collect(),
    }
}

/// The proposed policy as TOML: the original file with the proposed `enter`/`exit` (and `watch`
/// where it was above the new `exit`), its version suffixed with `-eval`, under a comment with
/// what the evaluation measured for it.
pub fn proposed_policy_toml(original_text: &str, report: &EvalReport) -> Result<String> {
    let mut doc: toml::Table = toml::from_str(original_text).context("re-reading the policy")?;
    let mut comment = format!(
        "# Proposed by `prescreen eval` for model {} {} ({}) on the set {}:\n\
         # thresholds with segment recall >= {} and the fewest false flags (sweep step {}).\n",
        report.model.id,
        report.model.version,
        report.model.variant,
        report.set.path,
        report.settings.target_recall,
        report.settings.sweep_step
    );
    for l in &report.labels {
        let Some(p) = &l.proposal else {
            comment.push_str(&format!(
                "# {}: no proposal (no positive stream frame, or no pair reaches the target)\n",
                l.label
            ));
            continue;
        };
        comment.push_str(&format!(
            "# {}: enter {:.3}, exit {:.3}; replay: recall {:.3}, {} false flag(s)",
            l.label, p.enter, p.exit, p.replay_recall, p.replay_false_flags
        ));
        if let (Some(r), Some(f)) = (p.engine_recall, p.engine_false_flags) {
            comment.push_str(&format!("; engine: recall {r:.3}, {f} false flag(s)"));
            if let Some(h) = p.engine_false_flags_per_hour {
                comment.push_str(&format!(" ({h:.2} per clean stream-hour)"));
            }
        }
        comment.push('\n');
        if let Some(toml::Value::Table(labels)) = doc.get_mut("labels") {
            if let Some(toml::Value::Table(t)) = labels.get_mut(&l.label) {
                let watch = t
                    .get("watch")
                    .and_then(toml::Value::as_float)
                    .unwrap_or(0.0);
                t.insert("enter".into(), round3(p.enter).into());
                t.insert("exit".into(), round3(p.exit).into());
                t.insert(
                    "watch".into(),
                    round3(watch.min(p.exit as f64) as f32).into(),
                );
            }
        }
    }
    if let Some(toml::Value::String(v)) = doc.get_mut("version") {
        v.push_str("-eval");
    }
    let body = toml::to_string(&doc).context("writing the policy")?;
    // What we write must load as a policy.
    Policy::parse(&body).map_err(|e| anyhow::anyhow!("the proposed policy does not load: {e}"))?;
    Ok(comment + &body)
}

fn round3(v: f32) -> f64 {
    (v as f64 * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(start: i64, end: i64, opened: i64) -> RunSegment {
        RunSegment {
            label: "red".into(),
            start_us: start,
            end_us: end,
            opened_us: opened,
            peak: 0.9,
            thumbnail: None,
        }
    }

    /// Latency runs from the truth's start to the opening of its first matching segment, not to
    /// the segment's start (which pre-roll moves earlier); a segment that covers too little of
    /// the truth is not a match.
    #[test]
    fn opening_latency_counts_to_the_opening_of_a_matching_segment() {
        let truths = [Interval::new(1_000_000, 2_000_000)];
        let small = seg(1_000_000, 1_100_000, 1_050_000);
        let late = seg(1_200_000, 2_000_000, 1_400_000);
        let got = opening_latencies(&truths, &[&small, &late], 0.5);
        assert_eq!(got, vec![400_000]);
        let early = seg(500_000, 2_000_000, 900_000);
        assert_eq!(opening_latencies(&truths, &[&early], 0.5), vec![0]);
        assert!(opening_latencies(&truths, &[&small], 0.5).is_empty());
    }

    #[test]
    fn clean_time_is_the_stream_outside_the_truths() {
        let truths = [Interval::new(1, 3), Interval::new(5, 20)];
        assert_eq!(clean_us(10, &truths), 10 - 2 - 5);
        assert_eq!(clean_us(10, &[]), 10);
    }

    #[test]
    fn frame_figures_count_flags_at_enter_and_leave_undefined_metrics_out() {
        let pairs = [(0.9, false), (0.2, false), (0.6, true), (0.95, true)];
        let f = frame_figures(&pairs, 0.8, 10).unwrap();
        assert_eq!((f.positives, f.negatives), (2, 2));
        assert_eq!(f.negatives_at_enter, 1);
        assert_eq!(f.positives_below_enter, 1);
        assert_eq!(f.false_flag_rate_at_enter, Some(0.5));
        assert_eq!(f.roc_auc, Some(0.75));
        let clean = frame_figures(&[(0.1, false), (0.85, false)], 0.8, 10).unwrap();
        assert_eq!(clean.average_precision, None);
        assert_eq!(clean.roc_auc, None);
        assert!(clean.pr_curve.is_empty());
        assert_eq!(clean.false_flag_rate_at_enter, Some(0.5));
        assert_eq!(clean.histogram_negatives.iter().sum::<u64>(), 2);
    }

    #[test]
    fn options_refuse_settings_without_a_meaning() {
        assert!(EvalOptions::default().check().is_ok());
        for bad in [
            EvalOptions {
                min_overlap: 0.0,
                ..Default::default()
            },
            EvalOptions {
                target_recall: 1.5,
                ..Default::default()
            },
            EvalOptions {
                bins: 0,
                ..Default::default()
            },
            EvalOptions {
                sweep_step: f64::NAN,
                ..Default::default()
            },
            EvalOptions {
                confidence: 1.0,
                ..Default::default()
            },
        ] {
            assert!(bad.check().is_err());
        }
    }
}
