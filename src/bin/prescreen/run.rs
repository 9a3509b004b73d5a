//! Screening every frame with the scorer (`screen` and `demo` without `--policy`): per-frame
//! scores, optional JSON lines, and the stage timings printed at the end.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use prescreen::framegen::OwnedFrame;
use prescreen::stats::{ms, summarize};
use prescreen_runtime::stream::scorer::Scorer;

use crate::args::ModelArgs;

/// Collected per-frame timings and scores.
pub(super) struct Run {
    scorer: Scorer,
    json: Option<Box<dyn Write>>,
    validate: Vec<Duration>,
    preprocess: Vec<Duration>,
    infer: Vec<Duration>,
    /// GPU stages of frames preprocessed on the GPU: upload, dispatch, readback.
    gpu: [Vec<Duration>; 3],
    pub(super) labels: Vec<String>,
    max_scores: Vec<f32>,
    pub(super) frames: usize,
}

impl Run {
    pub(super) fn new(args: &ModelArgs) -> Result<Self> {
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
        let scorer = Scorer::new(&model, args.backend.into())?;
        let pre = scorer.preprocessor();
        match pre.adapter_name() {
            Some(adapter) => eprintln!("preprocessing on the GPU: {adapter}"),
            None => match pre.gpu_error() {
                Some(e) => eprintln!("preprocessing on the CPU (GPU unavailable: {e})"),
                None => eprintln!("preprocessing on the CPU"),
            },
        }
        Ok(Self {
            scorer,
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
    pub(super) fn screen(&mut self, owned: &OwnedFrame, source: &str) -> Result<Vec<f32>> {
        let t0 = Instant::now();
        let frame = owned
            .frame()
            .with_context(|| format!("frame from {source}"))?;
        let validated = t0.elapsed();
        let out = self.scorer.score(&frame)?;
        self.validate.push(validated);
        self.preprocess.push(out.preprocess);
        self.infer.push(out.infer);
        // Upload, dispatch and readback on the GPU (built with the `gpu` feature).
        #[cfg(feature = "gpu")]
        let gpu = self
            .scorer
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
                "backend": self.scorer.active_backend().to_string(),
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

    pub(super) fn finish(mut self) -> Result<()> {
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
        let pre = self.scorer.preprocessor();
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
