//! `prescreen bench-infer`: times inference alone on the manifest's golden input and prints one
//! JSON object, for benches/side_by_side.py.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use prescreen::soak::proc_status as proc_status_kib;
use prescreen::stats::{ms, summarize};
use prescreen_runtime::inference::model::golden_input;

use crate::args::ModelFile;

/// The arguments of `prescreen bench-infer`.
#[derive(clap::Args)]
pub(super) struct BenchInferArgs {
    #[command(flatten)]
    file: ModelFile,
    /// Timed runs after the first result.
    #[arg(long, default_value_t = 30)]
    runs: usize,
    /// Also time every node and print, on stderr, the time per run of each kind of operator
    /// (tract's optimised graph), largest first.
    #[arg(long)]
    profile: bool,
    /// Also time every node and print, on stderr, the `N` slowest, each with its name and what
    /// its operator says of itself (shapes, kernel, wires).
    #[arg(long, value_name = "N", default_value_t = 0)]
    nodes: usize,
}

impl BenchInferArgs {
    /// Runs the benchmark as the arguments say.
    pub(super) fn run(self) -> Result<()> {
        let Self {
            file,
            runs,
            profile,
            nodes,
        } = self;
        bench_infer(&file, runs, profile, nodes)
    }
}

fn bench_infer(file: &ModelFile, runs: usize, profile: bool, nodes: usize) -> Result<()> {
    if runs == 0 {
        bail!("--runs must be at least 1");
    }
    let rss_before = proc_status_kib("VmRSS");
    let started = Instant::now();
    let model = file.load()?;
    let mut runner = model.runner()?;
    let m = model.manifest();
    golden_input(&m.golden.input, &m.input, runner.input_mut())?;
    let first = runner.run()?;
    let load = started.elapsed();
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        let scores = runner.run()?;
        times.push(t.elapsed());
        if scores != first {
            bail!("inference is not deterministic: {scores:?} after {first:?}");
        }
    }
    let s = summarize(&times);
    if profile {
        let ops = runner.profile(runs)?;
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
    if nodes > 0 {
        let times = runner.profile_nodes(runs)?;
        eprintln!(
            "slowest nodes per run ({runs} runs, {} of {}):",
            nodes.min(times.len()),
            times.len()
        );
        for t in times.iter().take(nodes) {
            eprintln!(
                "  {:>9.3} ms  {:<24} {}  [{}]",
                ms(t.per_run),
                t.op,
                t.name,
                t.info
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
        "residual_adds": model.residual_adds(),
        "max_pools": model.max_pools(),
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
