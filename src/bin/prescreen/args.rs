//! The arguments several subcommands share: the model file to load and how (`ModelFile`), the
//! screening options of `screen` and `demo` (`ModelArgs`), and the value enums behind them.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::ValueEnum;
use prescreen_runtime::inference::model::{IntegerKernels, LoadOptions, Model};
use prescreen_runtime::manifest::Variant;
use prescreen_runtime::preprocess::backend::Backend;

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
pub(super) enum BackendArg {
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
pub(super) struct ModelFile {
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
    pub(super) fn load(&self) -> Result<Model> {
        let options = LoadOptions {
            threads: self.threads,
            integer_kernels: self.integer_kernels.into(),
            float_depthwise: LoadOptions::default().float_depthwise && !self.tract_depthwise,
        };
        Model::load_dir(&self.model_dir, self.variant.into(), &options).with_context(|| {
            format!(
                "loading the model from {} (run `make model` to fetch it)",
                self.model_dir.display()
            )
        })
    }
}

#[derive(clap::Args)]
pub(super) struct ModelArgs {
    /// Preprocessing backend. `auto` takes a hardware GPU that passes the start-up self-test and
    /// never a software rasteriser (slower than the CPU path). GPU stage times (upload, dispatch,
    /// readback) are printed with the other stages.
    #[arg(long, value_enum, default_value = "auto")]
    pub(super) backend: BackendArg,
    #[command(flatten)]
    pub(super) file: ModelFile,
    /// Write one JSON object per screened frame to this file (`-` for stdout).
    #[arg(long)]
    pub(super) json: Option<PathBuf>,
    /// Screen as the live engine does under this policy (sampling, scene gate, segments) instead of
    /// scoring every frame; prints the segments. E.g. models/policies/nsfwjs.toml.
    #[arg(long)]
    pub(super) policy: Option<PathBuf>,
    /// With --policy: write a timeline of scores, thresholds and segments to this SVG file.
    #[arg(long, requires = "policy")]
    pub(super) timeline: Option<PathBuf>,
    /// With --policy: store a report of every closed segment in this outbox folder (durable; kept
    /// until delivered).
    #[arg(long, requires = "policy")]
    pub(super) outbox: Option<PathBuf>,
    /// With --outbox: when the stream ends, upload the pending reports to this endpoint
    /// (e.g. http://127.0.0.1:8080/v1/reports, as served by `prescreen ingest`).
    #[arg(long, requires = "outbox", conflicts_with = "receiver")]
    pub(super) upload: Option<String>,
    /// With --outbox: start the reference receiver on 127.0.0.1, storing reports in this folder,
    /// and upload to it when the stream ends (what a server would get).
    #[arg(long, requires = "outbox")]
    pub(super) receiver: Option<PathBuf>,
    /// Stream id written into reports (default: `harness-<unix ms>`).
    #[arg(long)]
    pub(super) stream_id: Option<String>,
}
