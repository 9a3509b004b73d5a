//! GPU buffers: growable buffers reused across frames, the per-frame slot and the signature
//! kernel's buffers, plane upload ranges, and the readback mapping a reader waits on.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::context::GpuContext;
use super::params::PARAM_WORDS;
use crate::error::{GpuError, Result};

/// A buffer that grows (never shrinks) to the largest size asked for.
#[derive(Debug)]
pub(super) struct Grow {
    buffer: Option<wgpu::Buffer>,
    usage: wgpu::BufferUsages,
    label: &'static str,
}

impl Grow {
    pub(super) fn new(label: &'static str, usage: wgpu::BufferUsages) -> Self {
        Self {
            buffer: None,
            usage,
            label,
        }
    }

    /// Makes the buffer at least `size` bytes; true when it was (re)allocated.
    pub(super) fn ensure(&mut self, device: &wgpu::Device, size: u64) -> bool {
        let size = size.max(16);
        if self.buffer.as_ref().is_some_and(|b| b.size() >= size) {
            return false;
        }
        // Some headroom, so slowly growing sizes do not reallocate every frame.
        let size = (size + size / 8).next_multiple_of(256);
        self.buffer = Some(device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(self.label),
            size,
            usage: self.usage,
            mapped_at_creation: false,
        }));
        true
    }

    pub(super) fn get(&self) -> &wgpu::Buffer {
        self.buffer
            .as_ref()
            .expect("ensure() is called before get()")
    }
}

/// What a slot's filter tables were computed for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct GeometryKey {
    pub(super) yuv: bool,
    pub(super) width: u32,
    pub(super) height: u32,
    pub(super) src: [u64; 4],
    pub(super) resized: (u32, u32),
}

/// Offsets of the filter tables in the taps buffer and the rows they read.
#[derive(Clone, Debug, Default)]
pub(super) struct TapsLayout {
    pub(super) words: [u32; 12],
    pub(super) luma_rows: std::ops::Range<usize>,
    pub(super) chroma_rows: std::ops::Range<usize>,
    /// The source columns the horizontal taps read (the vertical pass's, when it goes first).
    pub(super) columns: std::ops::Range<usize>,
}

/// Where a readback stands, as wgpu's map callback reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MapState {
    /// `map_async` was called; its callback has not run yet.
    Pending,
    /// Mapped: the readback can be read.
    Mapped,
    /// wgpu refused the mapping.
    Failed,
}

/// The state of one readback's mapping, set by its callback and waited for by the reader.
///
/// wgpu runs a map callback on whichever thread's `poll` dequeued the mapping, after that poll
/// has let go of the device's locks. Preprocessors share one device ([`GpuContext`]), so another
/// thread's poll can take this readback's mapping and call its callback a moment after our own
/// wait for the GPU has returned: the GPU is done, the buffer is mapped, the callback not yet
/// run. Reading the state once at that point failed the frame (and moved the stream to the CPU);
/// [`MapSignal::wait`] waits for the callback itself.
#[derive(Debug)]
pub(super) struct MapSignal {
    state: Mutex<MapState>,
    changed: Condvar,
}

impl MapSignal {
    pub(super) fn new() -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(MapState::Pending),
            changed: Condvar::new(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MapState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts mapping `buffer` for reading; the callback reports to this signal.
    pub(super) fn map(self: &Arc<Self>, buffer: &wgpu::Buffer) {
        *self.lock() = MapState::Pending;
        let signal = Arc::clone(self);
        buffer.map_async(wgpu::MapMode::Read, .., move |r| {
            *signal.lock() = if r.is_ok() {
                MapState::Mapped
            } else {
                MapState::Failed
            };
            signal.changed.notify_all();
        });
    }

    /// Waits until the callback has run (polling the device, which runs it when the mapping is
    /// still queued on it), at most the context's GPU timeout.
    pub(super) fn wait(&self, ctx: &GpuContext, what: &str) -> Result<(), GpuError> {
        let deadline = Instant::now() + GpuContext::TIMEOUT;
        loop {
            {
                let state = self.lock();
                match *state {
                    MapState::Mapped => return Ok(()),
                    MapState::Failed => {
                        return Err(GpuError::Map(format!("{what} could not be mapped")))
                    }
                    MapState::Pending => {}
                }
                let now = Instant::now();
                if now >= deadline {
                    return Err(GpuError::Timeout(GpuContext::TIMEOUT.as_millis() as u64));
                }
                // Woken at once when another thread runs the callback; otherwise poll again soon.
                let slice = (deadline - now).min(Duration::from_millis(1));
                drop(self.changed.wait_timeout(state, slice));
            }
            ctx.device
                .poll(wgpu::PollType::Poll)
                .map_err(|e| GpuError::DeviceLost(e.to_string()))?;
            ctx.health.check()?;
        }
    }
}

/// One frame's worth of buffers.
#[derive(Debug)]
pub(super) struct Slot {
    pub(super) params: wgpu::Buffer,
    pub(super) src: Grow,
    pub(super) taps: Grow,
    pub(super) inter: Grow,
    pub(super) out: wgpu::Buffer,
    pub(super) readback: wgpu::Buffer,
    pub(super) bind_groups: Option<(wgpu::BindGroup, wgpu::BindGroup)>,
    pub(super) key: Option<GeometryKey>,
    pub(super) layout: TapsLayout,
    pub(super) mapping: Arc<MapSignal>,
    pub(super) submission: Option<wgpu::SubmissionIndex>,
    pub(super) upload: Duration,
    pub(super) submitted_at: Option<Instant>,
}

impl Slot {
    pub(super) fn new(device: &wgpu::Device, out_bytes: u64) -> Self {
        let storage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST;
        Self {
            params: device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("params"),
                size: PARAM_WORDS as u64 * 4,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }),
            src: Grow::new("planes", storage),
            taps: Grow::new("taps", storage),
            inter: Grow::new("rows", wgpu::BufferUsages::STORAGE),
            out: device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("tensor"),
                size: out_bytes,
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            }),
            readback: device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("tensor readback"),
                size: out_bytes,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }),
            bind_groups: None,
            key: None,
            layout: TapsLayout::default(),
            mapping: MapSignal::new(),
            submission: None,
            upload: Duration::ZERO,
            submitted_at: None,
        }
    }
}

/// Buffers of the signature kernel.
#[cfg(feature = "testing")]
#[derive(Debug)]
pub(super) struct SignatureBuffers {
    pub(super) params: wgpu::Buffer,
    pub(super) src: Grow,
    pub(super) cells: wgpu::Buffer,
    pub(super) readback: wgpu::Buffer,
    pub(super) mapping: Arc<MapSignal>,
    pub(super) bind_group: Option<wgpu::BindGroup>,
}

/// A byte range of a plane to upload: `rows` rows of `row_bytes` from `start`, `stride` apart.
#[derive(Clone, Copy, Debug)]
pub(super) struct Upload<'a> {
    pub(super) data: &'a [u8],
    pub(super) start: usize,
    pub(super) stride: usize,
    pub(super) rows: usize,
    pub(super) row_bytes: usize,
}

impl Upload<'_> {
    /// Bytes from the first byte of the first row to the last byte of the last row.
    pub(super) fn len(&self) -> usize {
        if self.rows == 0 {
            0
        } else {
            (self.rows - 1) * self.stride + self.row_bytes
        }
    }
}
