//! `prescreen`: the desktop harness. Screen images, folders and `.y4m` streams with the real model,
//! run the demo on the sample stream, write the sample stream to a file, or receive reports.
//!
//! This file holds the command line and its dispatch; each subcommand lives in its own module with
//! its arguments, and the arguments and screening runs they share live in `args`, `run`,
//! `engine_run` and `progress`.

mod args;
mod bench_infer;
mod demo;
mod engine_run;
mod eval;
mod ingest;
mod make_eval_set;
mod make_stream;
mod progress;
mod run;
mod screen;
mod soak;

use anyhow::Result;
use clap::{Parser, Subcommand};

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

#[derive(Subcommand)]
enum Command {
    /// Time inference alone on the manifest's golden input, as benches/side_by_side.py runs it next
    /// to onnxruntime: load time to the first result, then the median of `--runs` runs. Prints one
    /// JSON object (times in ms, memory in KiB from /proc/self/status).
    BenchInfer(bench_infer::BenchInferArgs),
    /// Soak the live engine: a long stream (the frames' clock, as fast as the engine goes) with
    /// segments, reports, uploads to a loopback receiver and acknowledgements, sampling resident
    /// memory, file descriptors and threads. Fails when anything grows after the warm-up or a
    /// report is lost.
    Soak(soak::SoakArgs),
    /// Screen an image, a folder of images, or a .y4m video; print per-frame scores and timings.
    Screen(screen::ScreenArgs),
    /// Screen the sample stream: real photographs filmed by a simulated hand-held camera,
    /// 1080p NV12 at 30 fps.
    Demo(demo::DemoArgs),
    /// Write the sample stream to a .y4m file (I420), to screen it later or with other tools.
    MakeStream(make_stream::MakeStreamArgs),
    /// Evaluate a model and a policy on a labelled set, the way a safety team does: the set's
    /// streams through the real engine (frames' clock, faster than real time) and its images
    /// through the same screener. Writes OUT/eval.json, OUT/eval.html (self-contained) and
    /// OUT/proposed-policy.toml (thresholds meeting --target-recall with the fewest false flags).
    Eval(eval::EvalArgs),
    /// Write a labelled set that can live anywhere (no explicit content): `redness`, streams and
    /// images with red intervals for the test classifier; `benign`, the sample photographs made
    /// hard (blur, low resolution, tints, crops, compression) and the sample stream, for the
    /// false-flag rates of a real model; `degraded`, the same content out of focus (streams with
    /// motion blur and defocus, heavily blurred photographs, thumbnails blown up), for the
    /// false-flag rates with and without the policy's quality gate.
    MakeEvalSet(make_eval_set::MakeEvalSetArgs),
    /// Receive segment reports: the reference server (`POST /v1/reports`), for development and
    /// the demo. Validates each report, stores new ones as DIR/<report_id>.json, prints one line
    /// per new report, and runs until killed.
    Ingest(ingest::IngestArgs),
}

fn main() -> Result<()> {
    // The runtime's warnings (quarantined files, evictions, retries, lost reports) are shown by
    // default; RUST_LOG chooses more or less (e.g. RUST_LOG=info, RUST_LOG=off).
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .format_timestamp(None)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Screen(args) => args.run(),
        Command::Demo(args) => args.run(),
        Command::MakeStream(args) => args.run(),
        Command::Ingest(args) => args.run(),
        Command::Eval(args) => args.run(),
        Command::MakeEvalSet(args) => args.run(),
        Command::Soak(args) => args.run(),
        Command::BenchInfer(args) => args.run(),
    }
}
