//! Adapter and device selection, once per process or per engine, shared by every GPU preprocessor.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::error::{GpuError, Result};

/// An opened GPU: adapter, device and queue, plus the device's health.
///
/// Cheap to clone (the wgpu handles are reference counted); open it once and give it to each
/// [`super::GpuPreprocessor`].
#[derive(Clone, Debug)]
pub struct GpuContext {
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    pub(crate) health: Arc<Health>,
    name: String,
    device_type: wgpu::DeviceType,
}

/// Device loss, reported by wgpu's callback.
#[derive(Debug, Default)]
pub(crate) struct Health {
    lost: AtomicBool,
    reason: Mutex<String>,
}

impl Health {
    /// The device-lost error, if the device was lost.
    pub(crate) fn check(&self) -> Result<(), GpuError> {
        if self.lost.load(Ordering::Acquire) {
            let reason = self
                .reason
                .lock()
                .map(|r| r.clone())
                .unwrap_or_else(|_| "unknown".into());
            return Err(GpuError::DeviceLost(reason));
        }
        Ok(())
    }
}

/// Backends worth trying, best first: native ones, then GLES (which needs compute shaders, 3.1).
const BACKENDS: [wgpu::Backends; 2] = [
    wgpu::Backends::VULKAN.union(wgpu::Backends::METAL),
    wgpu::Backends::GL,
];

impl GpuContext {
    /// Opens the best adapter with compute shaders: a discrete GPU, then an integrated one, then a
    /// virtual one, then a CPU implementation (Mesa lavapipe, SwiftShader). `WGPU_BACKEND`
    /// (e.g. `vulkan`) restricts the backends tried.
    pub fn new() -> Result<Self> {
        // Accept adapters that are not fully conformant (lavapipe on older Mesa says so): the
        // start-up self-test, not the driver's claim, decides whether the GPU path is used.
        let flags = wgpu::InstanceFlags::ALLOW_UNDERLYING_NONCOMPLIANT_ADAPTER.with_env();
        let only = wgpu::Backends::from_env();
        let mut best: Option<(u32, wgpu::Adapter)> = None;
        for (tier, backends) in BACKENDS.into_iter().enumerate() {
            let backends = only.map_or(backends, |o| o & backends);
            if backends.is_empty() {
                continue;
            }
            let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
            desc.backends = backends;
            desc.flags = flags;
            let instance = wgpu::Instance::new(desc);
            let adapters = block_on(instance.enumerate_adapters(backends)).unwrap_or_default();
            for adapter in adapters {
                let caps = adapter.get_downlevel_capabilities();
                if !caps.flags.contains(wgpu::DownlevelFlags::COMPUTE_SHADERS) {
                    continue;
                }
                let rank = tier as u32 * 10
                    + match adapter.get_info().device_type {
                        wgpu::DeviceType::DiscreteGpu => 0,
                        wgpu::DeviceType::IntegratedGpu => 1,
                        wgpu::DeviceType::VirtualGpu => 2,
                        wgpu::DeviceType::Cpu => 3,
                        wgpu::DeviceType::Other => 4,
                    };
                if best.as_ref().is_none_or(|(r, _)| rank < *r) {
                    best = Some((rank, adapter));
                }
            }
            if best.is_some() {
                break;
            }
        }
        let (_, adapter) = best.ok_or(GpuError::NoAdapter)?;
        Self::from_adapter(&adapter)
    }

    /// Opens a device on `adapter` with the downlevel limits (phones, GLES), raised to the
    /// adapter's storage-buffer sizes so camera frames fit.
    pub fn from_adapter(adapter: &wgpu::Adapter) -> Result<Self> {
        let info = adapter.get_info();
        let name = format!("{} ({:?}, {:?})", info.name, info.backend, info.device_type);
        let supported = adapter.limits();
        let limits = wgpu::Limits {
            max_storage_buffer_binding_size: supported.max_storage_buffer_binding_size,
            max_buffer_size: supported.max_buffer_size,
            ..wgpu::Limits::downlevel_defaults()
        };
        let desc = wgpu::DeviceDescriptor {
            label: Some("prescreen preprocessing"),
            required_features: wgpu::Features::empty(),
            required_limits: limits,
            memory_hints: wgpu::MemoryHints::Performance,
            ..Default::default()
        };
        let (device, queue) = block_on(adapter.request_device(&desc))
            .ok_or_else(|| GpuError::Device {
                adapter: name.clone(),
                reason: "request_device did not complete".into(),
            })?
            .map_err(|e| GpuError::Device {
                adapter: name.clone(),
                reason: e.to_string(),
            })?;
        let health = Arc::new(Health::default());
        let h = Arc::downgrade(&health);
        device.set_device_lost_callback(move |reason, message| {
            if let Some(h) = h.upgrade() {
                if let Ok(mut r) = h.reason.lock() {
                    *r = format!("{reason:?}: {message}");
                }
                h.lost.store(true, Ordering::Release);
            }
        });
        // Errors outside the preprocessors' error scopes: log them instead of wgpu's default panic.
        device.on_uncaptured_error(Arc::new(|e: wgpu::Error| {
            log::warn!("uncaptured GPU error: {e}");
        }));
        log::info!("GPU preprocessing on {name}");
        Ok(Self {
            device,
            queue,
            health,
            name,
            device_type: info.device_type,
        })
    }

    /// The adapter's name, backend and type, for logs and metrics.
    pub fn adapter_name(&self) -> &str {
        &self.name
    }

    /// True for a software implementation (lavapipe, SwiftShader).
    pub fn is_cpu_adapter(&self) -> bool {
        self.device_type == wgpu::DeviceType::Cpu
    }

    /// How long the GPU may take for one frame's work or readback before it counts as hung.
    pub(crate) const TIMEOUT: Duration = Duration::from_secs(20);

    /// Waits for the device's work up to `submission`, with a timeout.
    pub(crate) fn wait(&self, submission: wgpu::SubmissionIndex) -> Result<(), GpuError> {
        const TIMEOUT: Duration = GpuContext::TIMEOUT;
        self.device
            .poll(wgpu::PollType::Wait {
                submission_index: Some(submission),
                timeout: Some(TIMEOUT),
            })
            .map(|_| ())
            .map_err(|e| match e {
                wgpu::PollError::Timeout => GpuError::Timeout(TIMEOUT.as_millis() as u64),
                other => GpuError::DeviceLost(other.to_string()),
            })?;
        self.health.check()
    }
}

/// Converts a wgpu error into the runtime's.
pub(crate) fn gpu_error(e: wgpu::Error) -> GpuError {
    match e {
        wgpu::Error::OutOfMemory { .. } => GpuError::OutOfMemory,
        wgpu::Error::Validation { description, .. } => GpuError::Validation(description),
        wgpu::Error::Internal { description, .. } => GpuError::Internal(description),
    }
}

/// Drives a wgpu future to completion. On native backends wgpu's futures are ready at once or
/// after the device is polled; this gives up (None) after about two seconds instead of hanging.
pub(crate) fn block_on<F: Future>(future: F) -> Option<F::Output> {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    let start = Instant::now();
    loop {
        if let Poll::Ready(v) = future.as_mut().poll(&mut cx) {
            return Some(v);
        }
        if start.elapsed() > Duration::from_secs(2) {
            return None;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}
