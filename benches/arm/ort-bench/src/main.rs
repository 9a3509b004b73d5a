//! onnxruntime's own shared library, run the way `prescreen bench-infer` runs prescreen: the
//! manifest's file and golden input, the first result (load time), then `--runs` timed runs, one
//! JSON line with the same fields. `benches/arm/instructions.py --onnxruntime` runs it under qemu
//! next to prescreen's aarch64 harness and counts both programs' guest instructions.
//!
//! ```text
//! ort-bench --lib libonnxruntime.so --model-dir models/nsfwjs --variant int8 --runs 3
//! ```
//!
//! The output is checked against the manifest's golden output within its tolerance, so a wrong
//! input or a broken library fails instead of being timed.

use std::error::Error;
use std::path::{Path, PathBuf};
use std::time::Instant;

use ort::environment::Environment;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::Tensor;
use serde::Deserialize;

type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// What this program reads of a `model.toml` (runtime/src/manifest.rs has the whole schema).
#[derive(Deserialize)]
struct Manifest {
    files: Vec<File>,
    input: Input,
    golden: Golden,
}

#[derive(Deserialize)]
struct File {
    variant: String,
    path: PathBuf,
}

#[derive(Deserialize)]
struct Input {
    layout: String,
    width: usize,
    height: usize,
    channels: usize,
}

#[derive(Deserialize)]
struct Golden {
    input: String,
    expect: Vec<Expect>,
}

#[derive(Deserialize)]
struct Expect {
    variant: String,
    output: Vec<f32>,
    tolerance: f32,
}

struct Args {
    lib: PathBuf,
    model_dir: PathBuf,
    variant: String,
    runs: usize,
    threads: usize,
}

fn parse_args() -> Result<Args> {
    let mut args = std::env::args().skip(1);
    let (mut lib, mut model_dir, mut variant) = (None, None, "float".to_string());
    let (mut runs, mut threads) = (30, 1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--lib" => lib = Some(PathBuf::from(value()?)),
            "--model-dir" => model_dir = Some(PathBuf::from(value()?)),
            "--variant" => variant = value()?,
            "--runs" => runs = value()?.parse()?,
            "--threads" => threads = value()?.parse()?,
            _ => return Err(format!("unknown argument {flag:?} (see the source's header)").into()),
        }
    }
    if runs == 0 || threads == 0 {
        return Err("--runs and --threads must be at least 1".into());
    }
    Ok(Args {
        lib: lib.ok_or("--lib (onnxruntime's shared library) is required")?,
        model_dir: model_dir.ok_or("--model-dir is required")?,
        variant,
        runs,
        threads,
    })
}

/// The manifest's golden input pattern, as `prescreen_runtime::inference::model::golden_input` writes it
/// (NHWC): value `k = (7a + 13b + 29c) mod 251` at row a, column b, channel c.
fn golden_input(kind: &str, input: &Input) -> Result<Vec<f32>> {
    let value: fn(usize) -> f32 = match kind {
        "ramp-v1" => |k| k as f32 - 125.0,
        "ramp-unit-v1" => |k| k as f32 / 250.0,
        _ => return Err(format!("unknown golden input {kind:?}").into()),
    };
    if input.layout != "NHWC" {
        return Err(format!("layout {:?}: only NHWC is written here", input.layout).into());
    }
    let mut out = Vec::with_capacity(input.height * input.width * input.channels);
    for a in 0..input.height {
        for b in 0..input.width {
            for c in 0..input.channels {
                out.push(value((a * 7 + b * 13 + c * 29) % 251));
            }
        }
    }
    Ok(out)
}

/// A field of /proc/self/status in KiB (Linux; `None` elsewhere).
fn status_kib(field: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(field)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

fn open(env: &Environment, path: &Path, threads: usize) -> ort::Result<Session> {
    Session::builder(env)?
        .with_optimization_level(GraphOptimizationLevel::All)?
        .with_intra_threads(threads)?
        .with_inter_threads(1)?
        .commit_from_file(path)
}

/// The nearest-rank quantile, as the harness's `stats::summarize` takes it.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let n = sorted.len();
    let rank = ((n as f64 * q).ceil() as usize).clamp(1, n);
    sorted[rank - 1]
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let manifest: Manifest =
        toml::from_str(&std::fs::read_to_string(args.model_dir.join("model.toml"))?)?;
    let file = manifest
        .files
        .iter()
        .find(|f| f.variant == args.variant)
        .ok_or_else(|| format!("no {} file in the manifest", args.variant))?;
    let path = args.model_dir.join(&file.path);
    let expect = manifest
        .golden
        .expect
        .iter()
        .find(|e| e.variant == args.variant)
        .ok_or_else(|| format!("no golden output for {}", args.variant))?;
    let data = golden_input(&manifest.golden.input, &manifest.input)?;
    let shape = [
        1,
        manifest.input.height,
        manifest.input.width,
        manifest.input.channels,
    ];

    let rss_before = status_kib("VmRSS");
    let started = Instant::now();
    let env = ort::init_from(&args.lib)?.build()?;
    let mut session = open(&env, &path, args.threads)?;
    let x = Tensor::from_array((shape, data))?;
    let first = session.run(ort::inputs![&x])?[0]
        .try_extract_tensor::<f32>()?
        .1
        .to_vec();
    let load = started.elapsed();
    let off = first
        .iter()
        .zip(&expect.output)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    if first.len() != expect.output.len() || off > expect.tolerance {
        return Err(format!(
            "output {first:?} is not the golden {:?} (max |d| {off}, tolerance {})",
            expect.output, expect.tolerance
        )
        .into());
    }
    let mut ms = Vec::with_capacity(args.runs);
    for _ in 0..args.runs {
        let t = Instant::now();
        let out = session.run(ort::inputs![&x])?;
        ms.push(t.elapsed().as_secs_f64() * 1e3);
        drop(out);
    }
    ms.sort_by(f64::total_cmp);
    let json = serde_json::json!({
        "engine": "onnxruntime",
        "variant": args.variant,
        "threads": args.threads,
        "runs": args.runs,
        "file_bytes": std::fs::metadata(&path)?.len(),
        "load_to_first_result_ms": load.as_secs_f64() * 1e3,
        "median_ms": quantile(&ms, 0.5),
        "p95_ms": quantile(&ms, 0.95),
        "rss_before_load_kib": rss_before,
        "peak_rss_kib": status_kib("VmHWM"),
        "output": first,
    });
    println!("{json}");
    Ok(())
}
