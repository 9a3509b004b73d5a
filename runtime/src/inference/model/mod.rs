//! Loading a model with tract and running it.
//!
//! [`Model::load`] reads the file once, checks its sha256 against the manifest, parses it with
//! tract, checks its inputs and outputs against the manifest, optimises it once, and runs the
//! manifest's golden self-test: a model that computes the wrong scores is refused, whatever the
//! reason (a corrupt file, a tract regression, a quantized graph tract gets wrong). A [`Model`] is
//! shared between threads; each worker opens its own [`Runner`], which owns the input tensor the
//! preprocessor writes into, so running a frame allocates nothing but tract's own activations.
//!
//! This file is the loader. `runner` holds the [`Runner`] that runs the plan, `golden` the golden
//! inputs the self-test feeds it; the graph passes the loader applies are in
//! `crate::inference::rewrite`.

use std::io::Cursor;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::DimLike;
use tract_onnx::tract_hir::infer::Factoid;

use crate::error::{Error, Result};
use crate::inference::qconv::Kernel;
use crate::inference::rewrite::{self, Rewritten};
use crate::manifest::{Layout, Manifest, Variant};

mod golden;
mod runner;

pub use golden::golden_input;
pub use runner::{NodeTime, OpTime, Runner, Scores};

/// Largest model file accepted, in bytes.
pub const MAX_MODEL_BYTES: u64 = 1 << 30;

/// Most inference threads a model accepts ([`LoadOptions::threads`]).
pub const MAX_THREADS: usize = 16;

/// How a model is run. The default, one thread, is what the mobile bindings use: a phone streaming
/// video has the camera, encoder and UI competing for its cores, and one inference thread keeps
/// prescreen's share predictable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadOptions {
    /// Threads inference may use (1 to [`MAX_THREADS`]). More than one starts a private thread
    /// pool for this model: each run starts on one of its threads while the calling thread waits,
    /// tract's matrix products and prescreen's kernels share their work among them, and the pool's
    /// other threads stay awake while a run lasts (yielding their cores whenever they have nothing
    /// to do) and sleep between runs.
    pub threads: usize,
    /// How a quantized (QDQ) file's convolutions run: [`IntegerKernels::Auto`] by default.
    pub integer_kernels: IntegerKernels,
    /// Whether the depthwise convolutions that stay in f32 run on prescreen's own kernel
    /// (`crate::inference::qconv::FloatDepthwise`) or on tract's. Either computes the same convolution; the
    /// sums' order differs. The default is measured per architecture: on x86-64 prescreen's (tract's
    /// generic kernel took 9.6 of nsfwjs's 21.4 ms, prescreen's takes 3.1), on aarch64 tract's (its
    /// NEON kernel: nsfwjs float 149 M guest instructions per inference against 188 M and more with
    /// prescreen's; README, "Both models, side by side").
    pub float_depthwise: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            threads: 1,
            integer_kernels: IntegerKernels::Auto,
            float_depthwise: cfg!(target_arch = "x86_64"),
        }
    }
}

/// How the loader runs a quantized (QDQ) file's convolutions ([`LoadOptions::integer_kernels`]).
/// A float file has none, and every choice loads it the same way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum IntegerKernels {
    /// As integer convolutions (u8 × s8 summed in i32) on the fastest SIMD kernel this CPU runs,
    /// detected at load: x86-64 with AVX-512 VNNI, aarch64 with the int8 matrix multiply or the
    /// dot product extension. On a CPU with none of them tract runs the convolutions with its f32
    /// kernels, which are faster there than the portable integer kernel.
    #[default]
    Auto,
    /// As integer convolutions on the portable (scalar) kernel, whatever the CPU: the same outputs
    /// as every SIMD kernel, bit for bit, at a fraction of their speed. For tests, so that the
    /// graph rewrite and the integer arithmetic run on every machine.
    Portable,
    /// With tract's f32 kernels even where an integer kernel could run them: for comparisons.
    Off,
}

impl IntegerKernels {
    /// The kernel the integer convolutions will run on, or `None` when they stay with tract.
    fn kernel(self) -> Option<Kernel> {
        match self {
            IntegerKernels::Auto => Kernel::detect(),
            IntegerKernels::Portable => Some(Kernel::Portable),
            IntegerKernels::Off => None,
        }
    }
}

type Plan = TypedSimplePlan;

/// A verified, optimised model, ready to open runners on. Cheap to clone and share.
#[derive(Clone)]
pub struct Model {
    inner: Arc<Inner>,
}

struct Inner {
    manifest: Manifest,
    variant: Variant,
    path: PathBuf,
    sha256: String,
    plan: Arc<Plan>,
    threads: usize,
    /// The plan's thread pool, when `threads` is above 1: each run is started on one of its
    /// threads (see [`Runner::run`]).
    pool: Option<Arc<rayon::ThreadPool>>,
    /// Taken by each run on `pool` for its duration: runners of one model run on its pool in turn.
    turn: std::sync::Mutex<()>,
    integer_convolutions: usize,
    float_depthwise: usize,
    fused_pairs: usize,
    residual_adds: usize,
    max_pools: usize,
    /// What the integer convolutions run on; `None` when there are none.
    kernel: Option<Kernel>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("id", &self.inner.manifest.id)
            .field("variant", &self.inner.variant)
            .field("path", &self.inner.path)
            .finish()
    }
}

impl Model {
    /// Loads, verifies and optimises the `variant` file of `manifest`, then runs the golden
    /// self-test; `options` says how it runs ([`LoadOptions::default`]: one thread, the fastest
    /// integer kernel this CPU has).
    pub fn load(manifest: &Manifest, variant: Variant, options: &LoadOptions) -> Result<Self> {
        if !(1..=MAX_THREADS).contains(&options.threads) {
            return Err(Error::InvalidArgument(format!(
                "threads must be 1 to {MAX_THREADS}, got {}",
                options.threads
            )));
        }
        let mut phases = Phases::start();
        let entry = manifest.file(variant)?;
        let path = manifest.dir().join(&entry.path);
        let bytes = read_limited(&path)?;
        let sha256 = hex(&Sha256::digest(&bytes));
        if !sha256.eq_ignore_ascii_case(&entry.sha256) {
            return Err(Error::Checksum {
                path,
                actual: sha256,
                expected: entry.sha256.clone(),
            });
        }
        phases.mark("read and check");
        let kernel = options.integer_kernels.kernel();
        let Built {
            plan,
            pool,
            integer_convolutions,
            float_depthwise,
            fused_pairs,
            residual_adds,
            max_pools,
        } = build_plan(manifest, &path, bytes, options, kernel, &mut phases)?;
        let model = Model {
            inner: Arc::new(Inner {
                manifest: manifest.clone(),
                variant,
                path,
                sha256,
                plan,
                threads: options.threads,
                pool,
                turn: std::sync::Mutex::new(()),
                integer_convolutions,
                float_depthwise,
                fused_pairs,
                residual_adds,
                max_pools,
                kernel: kernel.filter(|_| integer_convolutions > 0),
            }),
        };
        model.self_test()?;
        phases.mark("self-test");
        log::debug!("load phases: {phases}");
        log::info!(
            "loaded model {} {} ({}) from {}",
            manifest.id,
            manifest.version,
            variant,
            model.inner.path.display()
        );
        Ok(model)
    }

    /// [`Model::load`] from a folder holding `model.toml` and the fetched files.
    pub fn load_dir(
        dir: impl AsRef<Path>,
        variant: Variant,
        options: &LoadOptions,
    ) -> Result<Self> {
        Self::load(&Manifest::load(dir)?, variant, options)
    }

    /// Threads inference uses ([`LoadOptions::threads`]).
    pub fn threads(&self) -> usize {
        self.inner.threads
    }

    /// The manifest the model was loaded with.
    pub fn manifest(&self) -> &Manifest {
        &self.inner.manifest
    }

    /// Which file was loaded.
    pub fn variant(&self) -> Variant {
        self.inner.variant
    }

    /// sha256 of the loaded file.
    pub fn sha256(&self) -> &str {
        &self.inner.sha256
    }

    /// How many of the model's convolutions run as integer convolutions
    /// ([`LoadOptions::integer_kernels`]); 0 for a float file, with [`IntegerKernels::Off`], or
    /// with [`IntegerKernels::Auto`] on a CPU without an integer kernel.
    pub fn integer_convolutions(&self) -> usize {
        self.inner.integer_convolutions
    }

    /// How many depthwise convolutions run in f32 on prescreen's own kernel
    /// ([`LoadOptions::float_depthwise`]): the float file's, and those a QDQ file keeps in float.
    pub fn float_depthwise_convolutions(&self) -> usize {
        self.inner.float_depthwise
    }

    /// How many `QuantizeLinear → DequantizeLinear` pairs of a QDQ file run as the f32 arithmetic
    /// they stand for (rounding and clamping to the integer grid) rather than as tract's
    /// quantized operators; those around the integer convolutions are not counted (the integer
    /// rewrite consumes them). 0 for a float file.
    pub fn fused_quantize_pairs(&self) -> usize {
        self.inner.fused_pairs
    }

    /// How many residual adds of a QDQ file run with their sum's quantize/dequantize pair as one
    /// operator shared over the model's threads (those pairs are not in
    /// [`fused_quantize_pairs`](Self::fused_quantize_pairs)). 0 for a float file and for tract's
    /// kernels alone.
    pub fn residual_adds(&self) -> usize {
        self.inner.residual_adds
    }

    /// How many f32 max pools run on prescreen's own kernel rather than tract's (the same values
    /// bit for bit; every 2-D one over a channel-first image without dilation): open_nsfw has one.
    pub fn max_pools(&self) -> usize {
        self.inner.max_pools
    }

    /// The kernel the integer convolutions run on (`"avx512-vnni"`, `"neon-i8mm"`,
    /// `"neon-dotprod"`, `"portable"`), chosen at load; `None` when there are none.
    pub fn integer_kernel(&self) -> Option<&'static str> {
        self.inner.kernel.map(Kernel::name)
    }

    /// Path of the loaded file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Opens a runner (per-worker state and input buffer). Runners are not shared between threads;
    /// open one on the thread that runs it.
    pub fn runner(&self) -> Result<Runner> {
        let state = self
            .inner
            .plan
            .spawn()
            .map_err(|e| Error::Inference(format!("{e:#}")))?;
        let shape = self.inner.manifest.input.shape();
        Ok(Runner {
            model: self.clone(),
            state,
            input: Arc::new(Tensor::zero::<f32>(&shape).map_err(tract_err)?),
        })
    }

    fn self_test(&self) -> Result<()> {
        let manifest = &self.inner.manifest;
        let Some(expect) = manifest.golden_for(self.inner.variant) else {
            return Err(Error::ModelMismatch {
                path: self.inner.path.clone(),
                reason: format!(
                    "the manifest has no golden output for the {} file",
                    self.inner.variant
                ),
            });
        };
        let mut runner = self.runner()?;
        golden_input(&manifest.golden.input, &manifest.input, runner.input_mut())?;
        let actual = match runner.run() {
            Ok(scores) => scores.probabilities,
            Err(Error::BadOutput(values)) => values,
            Err(e) => return Err(e),
        };
        if !expect.matches(&actual) {
            return Err(Error::GoldenMismatch {
                path: self.inner.path.clone(),
                actual,
                expected: expect.output.clone(),
                tolerance: expect.tolerance,
            });
        }
        Ok(())
    }
}

fn tract_err(e: impl std::fmt::Display) -> Error {
    Error::Inference(e.to_string())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn read_limited(path: &Path) -> Result<Vec<u8>> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    crate::files::read_regular(path, MAX_MODEL_BYTES).map_err(|e| match crate::files::TooLarge::of(
        &e,
    ) {
        Some(t) => Error::ModelTooLarge {
            path: path.to_path_buf(),
            size: t.size,
            limit: t.limit,
        },
        None => io(e),
    })
}

/// Parses, checks and optimises. tract is fed a file that passed its checksum, but tract is a large
/// parser: a panic in it becomes a load error, never an abort of the host app.
/// What [`build_plan`] made.
struct Built {
    plan: Arc<Plan>,
    pool: Option<Arc<rayon::ThreadPool>>,
    integer_convolutions: usize,
    float_depthwise: usize,
    fused_pairs: usize,
    residual_adds: usize,
    max_pools: usize,
}

fn build_plan(
    manifest: &Manifest,
    path: &Path,
    bytes: Vec<u8>,
    options: &LoadOptions,
    kernel: Option<Kernel>,
    phases: &mut Phases,
) -> Result<Built> {
    let threads = options.threads;
    let load = |reason: String| Error::ModelLoad {
        path: path.to_path_buf(),
        reason,
    };
    let mismatch = |reason: String| Error::ModelMismatch {
        path: path.to_path_buf(),
        reason,
    };
    let result = catch_unwind(AssertUnwindSafe(|| -> Result<Built> {
        let onnx = tract_onnx::onnx();
        let mut proto = onnx
            .proto_model_for_read(&mut Cursor::new(bytes))
            .map_err(|e| load(format!("{e:#}")))?;
        phases.mark("proto");
        let source = rewrite::Source::read(&onnx, &mut proto, kernel);
        phases.mark("source");
        let model = onnx
            .model_for_proto_model(&proto)
            .map_err(|e| load(format!("{e:#}")))?;
        drop(proto);
        phases.mark("parse");
        check_io(manifest, &model).map_err(mismatch)?;
        let spec = &manifest.input;
        let fact = f32::fact(spec.shape());
        let typed = model
            .with_input_fact(0, fact.into())
            .and_then(|m| m.into_typed())
            .map_err(|e| {
                mismatch(format!(
                    "input shape {:?} does not fit the model: {e:#}",
                    spec.shape()
                ))
            })?;
        phases.mark("type");
        let out = typed.output_fact(0).map_err(|e| load(format!("{e:#}")))?;
        let out_shape: Option<Vec<usize>> = out.shape.as_concrete().map(|s| s.to_vec());
        if out.datum_type != f32::datum_type()
            || out_shape.as_deref() != Some(&manifest.output.shape[..])
        {
            return Err(mismatch(format!(
                "output is {:?} {:?}, manifest says f32 {:?}",
                out.datum_type, out.shape, manifest.output.shape
            )));
        }
        let executor = (threads > 1).then(|| {
            tract_linalg::multithread::Executor::multithread_with_name(threads, "prescreen-infer")
        });
        let pool = match &executor {
            Some(tract_linalg::multithread::Executor::MultiThread(pool)) => Some(pool.clone()),
            _ => None,
        };
        let run_options = RunOptions {
            executor,
            ..RunOptions::default()
        };
        let Rewritten {
            model: typed,
            integer_convolutions,
            float_depthwise,
            fused_pairs,
            residual_adds,
            max_pools,
            decluttered,
        } = rewrite::apply(typed, source, options.float_depthwise).map_err(load)?;
        phases.mark("rewrite");
        // A graph the rewrite decluttered (`Rewritten::decluttered`) only needs tract's codegen:
        // declutter it again, as `into_optimized` does, and the loader pays for the whole graph
        // twice (a twentieth of open_nsfw int8's load) for the same outputs at the same speed.
        let optimized = if decluttered {
            let mut typed = typed;
            typed.optimize().map(|()| typed)
        } else {
            typed.into_optimized()
        };
        phases.mark("optimise");
        let plan = optimized
            .and_then(|m| m.into_runnable_with_options(&run_options))
            .map_err(|e| load(format!("{e:#}")))?;
        phases.mark("plan");
        Ok(Built {
            plan,
            pool,
            integer_convolutions,
            float_depthwise,
            fused_pairs,
            residual_adds,
            max_pools,
        })
    }));
    result.unwrap_or_else(|_| Err(load("tract panicked while loading the model".into())))
}

fn check_io(manifest: &Manifest, model: &InferenceModel) -> std::result::Result<(), String> {
    let inputs = model.input_outlets().map_err(|e| e.to_string())?;
    let outputs = model.output_outlets().map_err(|e| e.to_string())?;
    if inputs.len() != 1 || outputs.len() != 1 {
        return Err(format!(
            "model has {} inputs and {} outputs, expected 1 and 1",
            inputs.len(),
            outputs.len()
        ));
    }
    let input_name = &model.node(inputs[0].node).name;
    if input_name != &manifest.input.name {
        return Err(format!(
            "input is named {input_name:?}, manifest says {:?}",
            manifest.input.name
        ));
    }
    let out_name = model
        .outlet_label(outputs[0])
        .unwrap_or(&model.node(outputs[0].node).name);
    if out_name != manifest.output.name {
        return Err(format!(
            "output is named {out_name:?}, manifest says {:?}",
            manifest.output.name
        ));
    }
    let fact = model.input_fact(0).map_err(|e| e.to_string())?;
    if let Some(dt) = fact.datum_type.concretize() {
        if dt != f32::datum_type() {
            return Err(format!("input is {dt:?}, manifest says f32"));
        }
    }
    // Every dimension the model fixes must agree with the manifest (the batch is usually free).
    let want = manifest.input.shape();
    if let Some(rank) = fact.shape.rank().concretize() {
        if rank as usize != want.len() {
            return Err(format!(
                "input has rank {rank}, manifest layout {:?} needs 4",
                manifest.input.layout
            ));
        }
        for (axis, dim) in fact.shape.dims().enumerate() {
            if let Some(d) = dim.concretize().and_then(|d| d.to_usize().ok()) {
                if d != want[axis] {
                    let layout = if manifest.input.layout == Layout::Nhwc {
                        "NHWC"
                    } else {
                        "NCHW"
                    };
                    return Err(format!(
                        "input axis {axis} is {d}, manifest ({layout}) says {}",
                        want[axis]
                    ));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;

/// Wall-clock time per loading phase, for the debug log (where a load's time goes).
struct Phases {
    last: std::time::Instant,
    marks: Vec<(&'static str, std::time::Duration)>,
}

impl Phases {
    fn start() -> Self {
        Phases {
            last: std::time::Instant::now(),
            marks: Vec::new(),
        }
    }

    /// Ends the phase called `name` now.
    fn mark(&mut self, name: &'static str) {
        let now = std::time::Instant::now();
        self.marks.push((name, now - self.last));
        self.last = now;
    }
}

impl std::fmt::Display for Phases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (name, took)) in self.marks.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            write!(f, "{sep}{name} {:.1} ms", took.as_secs_f64() * 1e3)?;
        }
        Ok(())
    }
}
