//! Backend choice for preprocessing: GPU when it works, CPU otherwise, with fallback mid-stream.
//!
//! [`Preprocessor`] has the same `run` as [`CpuPreprocessor`]. With [`Backend::Auto`] it uses the GPU
//! (feature `gpu`) when an adapter opens and passes a start-up self-test (known frames compared with
//! [`crate::preprocess::reference`]); a GPU failure later (device lost, validation or out-of-memory
//! error, failed readback) moves that frame and every following one to the CPU, so no frame is lost
//! or produced twice. [`Preprocessor::active_backend`] and [`Preprocessor::fallbacks`] let the engine
//! expose the switch as a metric.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, GpuError, Result};
use crate::frame::Frame;
use crate::manifest::InputSpec;
use crate::preprocess::CpuPreprocessor;

#[cfg(feature = "gpu")]
use crate::preprocess::gpu::{GpuContext, GpuPreprocessor, GpuStageTimes};

/// Which preprocessing backend to use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Backend {
    /// The GPU when a hardware adapter passes the self-test, else the CPU (a software rasteriser
    /// such as lavapipe is never chosen: it is slower than the CPU path).
    #[default]
    Auto,
    /// The GPU, or an error when none passes the self-test (falls back to the CPU only after a
    /// failure mid-stream).
    Gpu,
    /// The CPU only.
    Cpu,
}

impl Backend {
    /// The name used on command lines and in configuration (`auto`, `gpu`, `cpu`).
    pub fn name(self) -> &'static str {
        match self {
            Backend::Auto => "auto",
            Backend::Gpu => "gpu",
            Backend::Cpu => "cpu",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Backend {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "auto" => Ok(Backend::Auto),
            "gpu" => Ok(Backend::Gpu),
            "cpu" => Ok(Backend::Cpu),
            other => Err(format!("unknown backend {other:?} (auto, gpu or cpu)")),
        }
    }
}

/// The backend that preprocesses frames now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ActiveBackend {
    /// The CPU path.
    Cpu,
    /// The GPU path.
    Gpu,
}

impl fmt::Display for ActiveBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ActiveBackend::Cpu => "cpu",
            ActiveBackend::Gpu => "gpu",
        })
    }
}

/// Frames to model input on the chosen backend, with CPU fallback. Keep one per worker.
pub struct Preprocessor {
    cpu: CpuPreprocessor,
    #[cfg(feature = "gpu")]
    gpu: Option<GpuPreprocessor>,
    #[cfg(feature = "gpu")]
    times: Option<GpuStageTimes>,
    requested: Backend,
    fallbacks: u64,
    last_error: Option<GpuError>,
}

impl fmt::Debug for Preprocessor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Preprocessor")
            .field("requested", &self.requested)
            .field("active", &self.active_backend())
            .field("fallbacks", &self.fallbacks)
            .finish_non_exhaustive()
    }
}

impl Preprocessor {
    /// A preprocessor for `spec` on `backend`. [`Backend::Gpu`] fails when no GPU opens or passes
    /// the self-test; [`Backend::Auto`] then uses the CPU (and logs why).
    pub fn new(spec: &InputSpec, backend: Backend) -> Result<Self> {
        let mut p = Self::cpu_only(spec, backend);
        if backend == Backend::Cpu {
            return Ok(p);
        }
        match p.open_gpu(None) {
            Ok(()) => Ok(p),
            Err(e) if backend == Backend::Auto => {
                log::info!("GPU preprocessing unavailable, using the CPU: {e}");
                p.last_error = match e {
                    Error::Gpu(g) => Some(g),
                    _ => None,
                };
                Ok(p)
            }
            Err(e) => Err(e),
        }
    }

    /// Like [`Preprocessor::new`], on an already opened GPU (one context shared by several
    /// workers).
    #[cfg(feature = "gpu")]
    pub fn with_context(spec: &InputSpec, backend: Backend, ctx: &GpuContext) -> Result<Self> {
        let mut p = Self::cpu_only(spec, backend);
        if backend == Backend::Cpu {
            return Ok(p);
        }
        match p.open_gpu(Some(ctx)) {
            Ok(()) => Ok(p),
            Err(Error::Gpu(e)) if backend == Backend::Auto => {
                log::info!("GPU preprocessing unavailable, using the CPU: {e}");
                p.last_error = Some(e);
                Ok(p)
            }
            Err(e) => Err(e),
        }
    }

    fn cpu_only(spec: &InputSpec, requested: Backend) -> Self {
        Self {
            cpu: CpuPreprocessor::new(spec),
            #[cfg(feature = "gpu")]
            gpu: None,
            #[cfg(feature = "gpu")]
            times: None,
            requested,
            fallbacks: 0,
            last_error: None,
        }
    }

    #[cfg(not(feature = "gpu"))]
    fn open_gpu(&mut self, _ctx: Option<()>) -> Result<()> {
        Err(GpuError::NotBuilt.into())
    }

    #[cfg(feature = "gpu")]
    fn open_gpu(&mut self, ctx: Option<&GpuContext>) -> Result<()> {
        let owned;
        let ctx = match ctx {
            Some(c) => c,
            None => {
                owned = GpuContext::new()?;
                &owned
            }
        };
        // A software rasteriser runs the shaders on the CPU, far slower than the CPU path itself
        // (20-40x on lavapipe): `auto` never picks one, `gpu` (tests, CI) may.
        if self.requested == Backend::Auto && ctx.is_cpu_adapter() {
            return Err(GpuError::SoftwareOnly {
                adapter: ctx.adapter_name().to_string(),
            }
            .into());
        }
        let mut gpu = GpuPreprocessor::new(ctx, self.cpu.spec())?;
        self_test::run(&mut gpu)?;
        self.gpu = Some(gpu);
        Ok(())
    }

    /// The input this preprocessor produces.
    pub fn spec(&self) -> &InputSpec {
        self.cpu.spec()
    }

    /// The backend asked for.
    pub fn requested_backend(&self) -> Backend {
        self.requested
    }

    /// The backend that preprocesses the next frame.
    pub fn active_backend(&self) -> ActiveBackend {
        #[cfg(feature = "gpu")]
        if self.gpu.is_some() {
            return ActiveBackend::Gpu;
        }
        ActiveBackend::Cpu
    }

    /// How many times the GPU path failed mid-stream and handed over to the CPU (0 or 1: the CPU
    /// keeps the stream after a failure).
    pub fn fallbacks(&self) -> u64 {
        self.fallbacks
    }

    /// Why the GPU is not in use (it did not open, failed its self-test, or failed mid-stream).
    pub fn gpu_error(&self) -> Option<&GpuError> {
        self.last_error.as_ref()
    }

    /// The GPU adapter in use, if any.
    pub fn adapter_name(&self) -> Option<&str> {
        #[cfg(feature = "gpu")]
        if let Some(g) = &self.gpu {
            return Some(g.context().adapter_name());
        }
        None
    }

    /// Upload, dispatch and readback times of the last frame preprocessed on the GPU.
    #[cfg(feature = "gpu")]
    pub fn gpu_stage_times(&self) -> Option<GpuStageTimes> {
        self.times
    }

    /// Makes the GPU path fail, as a lost device would, when the frame after the next `n` GPU
    /// frames is read back. For fault tests only (the `testing` feature); does nothing on the CPU
    /// path.
    #[cfg(feature = "testing")]
    pub fn inject_failure_after(&mut self, n: u64) {
        #[cfg(feature = "gpu")]
        if let Some(g) = &mut self.gpu {
            g.inject_failure_after(n);
        }
        let _ = n;
    }

    /// Writes the model input for `frame` into `out` (length [`InputSpec::len`]).
    pub fn run(&mut self, frame: &Frame<'_>, out: &mut [f32]) -> Result<()> {
        #[cfg(feature = "gpu")]
        if let Some(gpu) = &mut self.gpu {
            match gpu.run(frame, out) {
                Ok(()) => {
                    self.times = Some(gpu.stage_times());
                    return Ok(());
                }
                // Too large for this device: this frame on the CPU, the GPU stays.
                Err(Error::Gpu(GpuError::FrameTooLarge { bytes, limit })) => {
                    log::debug!("frame needs {bytes} GPU bytes (limit {limit}): CPU path");
                }
                Err(Error::Gpu(e)) => {
                    log::warn!("GPU preprocessing failed, switching to the CPU: {e}");
                    self.gpu = None;
                    self.times = None;
                    self.fallbacks += 1;
                    self.last_error = Some(e);
                }
                // Not a GPU failure (wrong output length): the CPU would refuse it the same way.
                Err(e) => return Err(e),
            }
        }
        self.cpu.run(frame, out)
    }
}

#[cfg(feature = "gpu")]
mod self_test {
    //! The start-up self-test: known frames through the GPU, compared with the scalar reference.

    use super::*;
    use crate::frame::{ColorMatrix, ColorRange, PixelFormat, Plane, Rotation};
    use crate::preprocess::reference;

    fn pattern(n: usize, seed: u32) -> Vec<u8> {
        (0..n as u32)
            .map(|i| {
                let v = i.wrapping_mul(2_654_435_761).wrapping_add(seed) >> 7;
                (v ^ (i / 7)) as u8
            })
            .collect()
    }

    /// Runs the test frames; an error names the case and the largest difference.
    pub(super) fn run(gpu: &mut GpuPreprocessor) -> Result<()> {
        let spec = gpu.spec().clone();
        let tolerance = spec
            .affine()
            .iter()
            .map(|(s, _)| s.abs())
            .fold(0.0, f32::max)
            * 1.0001;
        let mut out = vec![0f32; spec.len()];
        // NV12 with padded strides, rotated and mirrored; a BGRA frame with an odd size.
        let (w, h) = (97u32, 61u32);
        let (cw, ch) = (w.div_ceil(2) as usize, h.div_ceil(2) as usize);
        let y = pattern((w as usize + 3) * h as usize, 1);
        let uv = pattern((2 * cw + 5) * ch, 2);
        let nv12 = Frame::nv12(
            w,
            h,
            Plane::new(&y, w as usize + 3),
            Plane::new(&uv, 2 * cw + 5),
        )?
        .with_color(ColorMatrix::Bt709, ColorRange::Limited)
        .with_orientation(Rotation::R90, true);
        let bgra = pattern((w as usize * 4 + 8) * h as usize, 3);
        let bgra = Frame::packed(PixelFormat::Bgra8, w, h, &bgra, w as usize * 4 + 8)?
            .with_orientation(Rotation::R180, false);
        for (case, frame) in [("nv12", nv12), ("bgra", bgra)] {
            gpu.run(&frame, &mut out)?;
            let want = reference::preprocess(&frame, &spec);
            let max_diff =
                out.iter()
                    .zip(&want)
                    .map(|(a, b)| (a - b).abs())
                    .fold(
                        0.0f32,
                        |m, d| if d.is_nan() { f32::INFINITY } else { m.max(d) },
                    );
            if max_diff > tolerance {
                return Err(GpuError::SelfTest {
                    adapter: gpu.context().adapter_name().to_string(),
                    case,
                    max_diff,
                }
                .into());
            }
        }
        Ok(())
    }
}
