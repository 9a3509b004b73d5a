//! `prescreen eval`: evaluates a model and a policy on a labelled set (prescreen::eval), writes the
//! JSON and HTML reports and the proposed policy, and prints the summary.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use prescreen::eval::{self, report::EvalReport, run::EvalOptions, set::LabelledSet};
use prescreen_runtime::policy::Policy;

use crate::args::{BackendArg, ModelFile};

/// The arguments of `prescreen eval`.
#[derive(clap::Args)]
pub(super) struct EvalArgs {
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
}

impl EvalArgs {
    /// Runs the evaluation as the arguments say.
    pub(super) fn run(self) -> Result<()> {
        let Self {
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
        } = self;
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
