//! [`GpuPreprocessor`]: drives the pipelines over the buffers, one frame at a time or two in
//! flight, and computes the scene gate's signature.

use std::collections::VecDeque;
use std::num::NonZeroU64;
use std::time::{Duration, Instant};

use super::buffers::{GeometryKey, Slot, TapsLayout, Upload};
#[cfg(feature = "testing")]
use super::buffers::{Grow, MapSignal, SignatureBuffers};
use super::context::{block_on, gpu_error, GpuContext};
#[cfg(feature = "testing")]
use super::params::SIGNATURE_PARAM_WORDS;
use super::params::{params, PARAM_WORDS};
use super::pipelines::{entries, Kernels, WORKGROUP};
use crate::error::{Error, GpuError, Result};
use crate::frame::{Frame, PixelFormat};
use crate::manifest::InputSpec;
use crate::preprocess::geometry::Plan;
use crate::preprocess::kernel::Taps;
#[cfg(feature = "testing")]
use crate::stream::sampling::Signature;

/// How long the last frame spent in each GPU stage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GpuStageTimes {
    /// Filter tables (when the geometry changed), planes and parameters written to the GPU.
    pub upload: Duration,
    /// Encoding, submitting and waiting for the two compute passes and the copy to the readback
    /// buffer (in the pipelined API, only the part not hidden behind the previous frame).
    pub dispatch: Duration,
    /// Mapping the readback buffer and copying the tensor out.
    pub readback: Duration,
}

const SLOTS: usize = 2;

/// Turns frames into model input on a GPU. Keep one per worker: it owns its buffers.
#[derive(Debug)]
pub struct GpuPreprocessor {
    ctx: GpuContext,
    spec: InputSpec,
    kernels: Kernels,
    slots: Vec<Slot>,
    /// Slots submitted and not yet received, oldest first.
    pending: VecDeque<usize>,
    next: usize,
    #[cfg(feature = "testing")]
    signature: SignatureBuffers,
    limit: u64,
    times: GpuStageTimes,
    /// The first failure: a failed preprocessor refuses further work.
    failed: Option<GpuError>,
    /// Readbacks left before an injected failure ([`GpuPreprocessor::inject_failure_after`]).
    #[cfg(feature = "testing")]
    fail_after: Option<u64>,
    params: [u32; PARAM_WORDS],
}

impl GpuPreprocessor {
    /// A preprocessor for the model input `spec` on an opened GPU: compiles the kernels and
    /// allocates the fixed-size buffers.
    pub fn new(ctx: &GpuContext, spec: &InputSpec) -> Result<Self> {
        let device = &ctx.device;
        let scope = ErrorScopes::push(device);
        let kernels = Kernels::new(device);
        let out_bytes = spec.len() as u64 * 4;
        let slots = (0..SLOTS).map(|_| Slot::new(device, out_bytes)).collect();
        #[cfg(feature = "testing")]
        let signature = signature_buffers(device);
        scope.pop()?;
        ctx.health.check()?;
        let limits = device.limits();
        let limit = limits
            .max_storage_buffer_binding_size
            .min(limits.max_buffer_size)
            .min(u32::MAX as u64 / 2);
        Ok(Self {
            ctx: ctx.clone(),
            spec: spec.clone(),
            kernels,
            slots,
            pending: VecDeque::new(),
            next: 0,
            #[cfg(feature = "testing")]
            signature,
            limit,
            times: GpuStageTimes::default(),
            failed: None,
            #[cfg(feature = "testing")]
            fail_after: None,
            params: [0; PARAM_WORDS],
        })
    }

    /// The input this preprocessor produces.
    pub fn spec(&self) -> &InputSpec {
        &self.spec
    }

    /// The GPU it runs on.
    pub fn context(&self) -> &GpuContext {
        &self.ctx
    }

    /// Stage times of the last frame received.
    pub fn stage_times(&self) -> GpuStageTimes {
        self.times
    }

    /// Frames submitted and not yet received (0, 1 or 2).
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }

    /// Makes the GPU path fail (as a lost device would) when the frame after the next `n` is read
    /// back. For fault tests only.
    #[cfg(feature = "testing")]
    pub fn inject_failure_after(&mut self, n: u64) {
        self.fail_after = Some(n);
    }

    /// Writes the model input for `frame` into `out` (length [`InputSpec::len`]), synchronously.
    pub fn run(&mut self, frame: &Frame<'_>, out: &mut [f32]) -> Result<()> {
        if !self.pending.is_empty() {
            return Err(GpuError::Ring("run() while frames are in flight").into());
        }
        self.check_out(out)?;
        self.submit(frame)?;
        self.receive(out)
    }

    /// Uploads `frame` and starts its preprocessing without waiting for it; at most two frames may
    /// be in flight. Take results, oldest first, with [`GpuPreprocessor::receive`].
    ///
    /// Errors: [`GpuError::FrameTooLarge`] leaves the preprocessor usable (run that frame on the
    /// CPU); any other GPU error leaves it failed, and the frames in flight lost.
    pub fn submit(&mut self, frame: &Frame<'_>) -> Result<()> {
        if let Some(e) = &self.failed {
            return Err(e.clone().into());
        }
        if self.pending.len() >= SLOTS {
            return Err(GpuError::Ring("submit() with two frames in flight").into());
        }
        let plan = Plan::new(&self.spec, frame);
        let index = self.next;
        // Sizes first: a frame too large for the device is refused before anything changes.
        let (uploads, src_bytes, inter_words) = self.prepare(index, frame, &plan)?;
        let result = self.submit_to(index, frame, &plan, &uploads, src_bytes, inter_words);
        match result {
            Ok(()) => {
                self.pending.push_back(index);
                self.next = (index + 1) % SLOTS;
                Ok(())
            }
            Err(e) => Err(self.fail(e)),
        }
    }

    /// Waits for the oldest frame in flight and writes its tensor into `out`.
    pub fn receive(&mut self, out: &mut [f32]) -> Result<()> {
        if let Some(e) = &self.failed {
            return Err(e.clone().into());
        }
        self.check_out(out)?;
        let Some(&index) = self.pending.front() else {
            return Err(GpuError::Ring("receive() with no frame in flight").into());
        };
        match self.receive_from(index, out) {
            Ok(()) => {
                self.pending.pop_front();
                Ok(())
            }
            Err(e) => Err(self.fail(e)),
        }
    }

    fn check_out(&self, out: &[f32]) -> Result<()> {
        if out.len() != self.spec.len() {
            return Err(Error::TensorSize {
                expected: self.spec.len(),
                got: out.len(),
            });
        }
        Ok(())
    }

    fn fail(&mut self, e: GpuError) -> Error {
        self.pending.clear();
        self.failed = Some(e.clone());
        e.into()
    }

    /// Filter tables (when the geometry changed) and the plane ranges to upload.
    fn prepare<'f>(
        &mut self,
        index: usize,
        frame: &Frame<'f>,
        plan: &Plan,
    ) -> Result<([Option<Upload<'f>>; 3], u64, u64)> {
        let (w, h) = (frame.width(), frame.height());
        let yuv = frame.format().is_yuv();
        let b = plan.src;
        let key = GeometryKey {
            yuv,
            width: w,
            height: h,
            src: [b.left, b.top, b.width, b.height].map(f64::to_bits),
            resized: (plan.resized_w, plan.resized_h),
        };
        let slot = &mut self.slots[index];
        let mut taps_data = None;
        if slot.key != Some(key) {
            let (rw, rh) = (plan.resized_w, plan.resized_h);
            let filter = self.spec.resize.filter;
            let hx = Taps::for_filter(filter, b.left, b.width, rw, w as usize);
            let vy = Taps::for_filter(filter, b.top, b.height, rh, h as usize);
            let mut data: Vec<i32> = Vec::new();
            let mut words = [0u32; 12];
            let mut append = |t: &Taps, at: usize, data: &mut Vec<i32>| {
                words[at] = data.len() as u32;
                data.extend(t.start.iter().map(|&s| s as i32));
                words[at + 1] = data.len() as u32;
                data.extend_from_slice(&t.weights);
                words[at + 2] = t.width as u32;
            };
            append(&hx, 0, &mut data);
            append(&vy, 3, &mut data);
            let mut chroma_rows = 0..0;
            if yuv {
                let (cw, ch) = frame.chroma_size();
                let chx = Taps::chroma_for_filter(filter, b.left, b.width, rw, cw as usize);
                let cvy = Taps::chroma_for_filter(filter, b.top, b.height, rh, ch as usize);
                append(&chx, 6, &mut data);
                append(&cvy, 9, &mut data);
                chroma_rows = cvy.span();
            }
            slot.layout = TapsLayout {
                words,
                luma_rows: vy.span(),
                chroma_rows,
                columns: hx.span(),
            };
            taps_data = Some(data);
        }
        let layout = &slot.layout;
        let planes = frame.planes();
        let bpp = planes[0].pixel_stride;
        let luma = Upload {
            data: planes[0].data,
            start: layout.luma_rows.start * planes[0].row_stride,
            stride: planes[0].row_stride,
            rows: layout.luma_rows.len(),
            row_bytes: (w as usize - 1) * bpp + if yuv { 1 } else { 3 },
        };
        let (cw, _) = frame.chroma_size();
        let chroma = |i: usize, row_bytes: usize| Upload {
            data: planes[i].data,
            start: layout.chroma_rows.start * planes[i].row_stride,
            stride: planes[i].row_stride,
            rows: layout.chroma_rows.len(),
            row_bytes,
        };
        let cw = cw as usize;
        let uploads = match frame.format() {
            PixelFormat::Nv12 | PixelFormat::Nv21 => [Some(luma), Some(chroma(1, 2 * cw)), None],
            PixelFormat::I420 | PixelFormat::Yuv420 => [
                Some(luma),
                Some(chroma(1, (cw - 1) * planes[1].pixel_stride + 1)),
                Some(chroma(2, (cw - 1) * planes[2].pixel_stride + 1)),
            ],
            _ => [Some(luma), None, None],
        };
        let src_bytes: u64 = uploads
            .iter()
            .flatten()
            .map(|u| u.len().next_multiple_of(4) as u64)
            .sum();
        let rw = plan.resized_w as u64;
        // Words per intermediate sample: one (packed bytes or luma), three (exact packed R, G, B).
        let per_sample = if !yuv && !self.spec.resize.filter.rounds_between_passes() {
            3
        } else {
            1
        };
        let inter_words = if down_first(&self.spec, frame, plan) {
            // Packed RGB, vertical pass first: `resized_h` rows of the columns read across.
            u64::from(plan.resized_h) * layout.columns.len() as u64
        } else {
            per_sample * rw * layout.luma_rows.len() as u64
                + 2 * rw * layout.chroma_rows.len() as u64
        };
        let taps_bytes = taps_data.as_ref().map_or(0, |d| d.len() as u64 * 4);
        let bytes = src_bytes.max(inter_words * 4).max(taps_bytes);
        if bytes > self.limit {
            // Leave the slot's cached tables consistent: recompute next time.
            self.slots[index].key = None;
            return Err(GpuError::FrameTooLarge {
                bytes,
                limit: self.limit,
            }
            .into());
        }
        if let Some(data) = taps_data {
            let slot = &mut self.slots[index];
            let device = &self.ctx.device;
            if slot.taps.ensure(device, taps_bytes) {
                slot.bind_groups = None;
            }
            self.ctx
                .queue
                .write_buffer(slot.taps.get(), 0, bytemuck::cast_slice(&data));
            slot.key = Some(key);
        }
        Ok((uploads, src_bytes, inter_words))
    }

    fn submit_to(
        &mut self,
        index: usize,
        frame: &Frame<'_>,
        plan: &Plan,
        uploads: &[Option<Upload<'_>>; 3],
        src_bytes: u64,
        inter_words: u64,
    ) -> Result<(), GpuError> {
        self.ctx.health.check()?;
        let start = Instant::now();
        let device = &self.ctx.device;
        let queue = &self.ctx.queue;
        let scope = ErrorScopes::push(device);
        let slot = &mut self.slots[index];
        let mut rebind = slot.bind_groups.is_none();
        rebind |= slot.src.ensure(device, src_bytes);
        rebind |= slot.inter.ensure(device, inter_words * 4);
        // Planes, each at a 4-byte-aligned offset, written straight into wgpu's staging memory.
        let mut bases = [0u32; 3];
        if let Some(size) = NonZeroU64::new(src_bytes) {
            let mut view = queue
                .write_buffer_with(slot.src.get(), 0, size)
                .ok_or_else(|| GpuError::Validation("plane upload refused".into()))?;
            let mut at = 0usize;
            for (base, u) in bases.iter_mut().zip(uploads) {
                let Some(u) = u else { continue };
                *base = at as u32;
                let n = u.len();
                let mut dst = view.slice(at..at + n);
                if u.stride == u.row_bytes || u.rows <= 1 {
                    dst.copy_from_slice(&u.data[u.start..u.start + n]);
                } else {
                    // Copy the rows only; the bytes between them are never read.
                    for r in 0..u.rows {
                        let s = u.start + r * u.stride;
                        let d = r * u.stride;
                        dst.slice(d..d + u.row_bytes)
                            .copy_from_slice(&u.data[s..s + u.row_bytes]);
                    }
                }
                at += n.next_multiple_of(4);
            }
        }
        self.params = params(&self.spec, frame, plan, &slot.layout, bases, inter_words);
        queue.write_buffer(&slot.params, 0, bytemuck::cast_slice(&self.params));
        if rebind {
            let k = &self.kernels;
            let first = device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("resample_rows"),
                layout: &k.resample_layout,
                entries: &entries(
                    &slot.params,
                    slot.src.get(),
                    slot.taps.get(),
                    slot.inter.get(),
                ),
            });
            let second = device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("to_tensor"),
                layout: &k.tensor_layout,
                entries: &entries(&slot.params, slot.inter.get(), slot.taps.get(), &slot.out),
            });
            slot.bind_groups = Some((first, second));
        }
        slot.upload = start.elapsed();
        let (first, second) = slot.bind_groups.as_ref().expect("bound above");
        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("preprocess"),
        });
        // One invocation per sample of the first pass's result: the resized width by the source
        // rows read, or (vertical pass first) the source columns read by the resized height.
        let (across, down) = if down_first(&self.spec, frame, plan) {
            (slot.layout.columns.len() as u32, plan.resized_h)
        } else {
            let rows = slot.layout.luma_rows.len() + slot.layout.chroma_rows.len();
            (plan.resized_w, rows as u32)
        };
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("resample_rows"),
                timestamp_writes: None,
            });
            pass.set_pipeline(&self.kernels.resample);
            pass.set_bind_group(0, first, &[]);
            pass.dispatch_workgroups(across.div_ceil(WORKGROUP), down.div_ceil(WORKGROUP), 1);
        }
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("to_tensor"),
                timestamp_writes: None,
            });
            pass.set_pipeline(&self.kernels.tensor);
            pass.set_bind_group(0, second, &[]);
            pass.dispatch_workgroups(
                plan.out_w.div_ceil(WORKGROUP),
                plan.out_h.div_ceil(WORKGROUP),
                1,
            );
        }
        encoder.copy_buffer_to_buffer(&slot.out, 0, &slot.readback, 0, slot.out.size());
        slot.submitted_at = Some(Instant::now());
        let submission = queue.submit([encoder.finish()]);
        slot.mapping.map(&slot.readback);
        slot.submission = Some(submission);
        scope.pop()
    }

    fn receive_from(&mut self, index: usize, out: &mut [f32]) -> Result<(), GpuError> {
        let slot = &mut self.slots[index];
        let waited = Instant::now();
        let submission = slot
            .submission
            .take()
            .ok_or(GpuError::Ring("slot has no submission"))?;
        self.ctx.wait(submission)?;
        let dispatch = match slot.submitted_at.take() {
            // The part of the GPU work the caller waited for (all of it for `run`).
            Some(t) if self.pending.len() == 1 => t.elapsed(),
            _ => waited.elapsed(),
        };
        let read = Instant::now();
        #[cfg(feature = "testing")]
        if let Some(n) = self.fail_after.as_mut() {
            if *n == 0 {
                self.fail_after = None;
                return Err(GpuError::Injected);
            }
            *n -= 1;
        }
        slot.mapping.wait(&self.ctx, "the tensor readback")?;
        {
            let view = slot
                .readback
                .get_mapped_range(..)
                .map_err(|e| GpuError::Map(e.to_string()))?;
            let bytes: &mut [u8] = bytemuck::cast_slice_mut(out);
            bytes.copy_from_slice(&view[..bytes.len()]);
        }
        slot.readback.unmap();
        self.times = GpuStageTimes {
            upload: slot.upload,
            dispatch,
            readback: read.elapsed(),
        };
        self.ctx.health.check()
    }

    /// Computes the scene gate's signature of `frame` on the GPU (equal to [`Signature::compute`]).
    /// Tests only: the engine computes signatures on the CPU, on the camera thread, where an
    /// upload of the frame would cost more than the read it saves.
    #[cfg(feature = "testing")]
    pub fn signature(&mut self, frame: &Frame<'_>, signature: &mut Signature) -> Result<()> {
        if let Some(e) = &self.failed {
            return Err(e.clone().into());
        }
        match self.signature_inner(frame, signature) {
            Ok(()) => Ok(()),
            Err(GpuError::FrameTooLarge { bytes, limit }) => {
                Err(GpuError::FrameTooLarge { bytes, limit }.into())
            }
            Err(e) => Err(self.fail(e)),
        }
    }

    #[cfg(feature = "testing")]
    fn signature_inner(
        &mut self,
        frame: &Frame<'_>,
        signature: &mut Signature,
    ) -> Result<(), GpuError> {
        self.ctx.health.check()?;
        let plane = frame.planes()[0];
        let (w, h) = (frame.width() as usize, frame.height() as usize);
        let bytes_per_sample = if frame.format().is_yuv() { 1 } else { 3 };
        let len = (h - 1) * plane.row_stride + (w - 1) * plane.pixel_stride + bytes_per_sample;
        let size = len.next_multiple_of(4) as u64;
        if size > self.limit {
            return Err(GpuError::FrameTooLarge {
                bytes: size,
                limit: self.limit,
            });
        }
        let device = &self.ctx.device;
        let queue = &self.ctx.queue;
        let scope = ErrorScopes::push(device);
        let sig = &mut self.signature;
        if sig.src.ensure(device, size) || sig.bind_group.is_none() {
            sig.bind_group = Some(device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("signature"),
                layout: &self.kernels.signature_layout,
                entries: &[
                    wgpu::BindGroupEntry {
                        binding: 0,
                        resource: sig.params.as_entire_binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 1,
                        resource: sig.src.get().as_entire_binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 2,
                        resource: sig.cells.as_entire_binding(),
                    },
                ],
            }));
        }
        if let Some(size) = NonZeroU64::new(size) {
            let mut view = queue
                .write_buffer_with(sig.src.get(), 0, size)
                .ok_or_else(|| GpuError::Validation("plane upload refused".into()))?;
            view.slice(..len).copy_from_slice(&plane.data[..len]);
        }
        let kind = match frame.format() {
            PixelFormat::Rgb8 | PixelFormat::Rgba8 => 1,
            PixelFormat::Bgra8 => 2,
            _ => 0,
        };
        let words: [u32; SIGNATURE_PARAM_WORDS] = [
            w as u32,
            h as u32,
            0,
            plane.row_stride as u32,
            plane.pixel_stride as u32,
            kind,
            0,
            0,
        ];
        queue.write_buffer(&sig.params, 0, bytemuck::cast_slice(&words));
        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("signature"),
        });
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("signature"),
                timestamp_writes: None,
            });
            pass.set_pipeline(&self.kernels.signature);
            pass.set_bind_group(0, sig.bind_group.as_ref(), &[]);
            pass.dispatch_workgroups(
                (Signature::WIDTH as u32).div_ceil(WORKGROUP),
                (Signature::HEIGHT as u32).div_ceil(WORKGROUP),
                1,
            );
        }
        encoder.copy_buffer_to_buffer(&sig.cells, 0, &sig.readback, 0, sig.cells.size());
        let submission = queue.submit([encoder.finish()]);
        sig.mapping.map(&sig.readback);
        scope.pop()?;
        self.ctx.wait(submission)?;
        sig.mapping.wait(&self.ctx, "the signature readback")?;
        {
            let view = sig
                .readback
                .get_mapped_range(..)
                .map_err(|e| GpuError::Map(e.to_string()))?;
            let cells: &[u32] = bytemuck::cast_slice(&view);
            signature.cells.clear();
            signature
                .cells
                .extend(cells.iter().map(|&c| c.min(255) as u8));
        }
        sig.readback.unmap();
        Ok(())
    }
}

/// Whether this frame's first pass is the vertical one: packed RGB with a filter that rounds
/// between passes, where PIL goes down first ([`Plan::down_first`]).
fn down_first(spec: &InputSpec, frame: &Frame<'_>, plan: &Plan) -> bool {
    plan.down_first && !frame.format().is_yuv() && spec.resize.filter.rounds_between_passes()
}

/// The signature kernel's buffers (see [`GpuPreprocessor::signature`]).
#[cfg(feature = "testing")]
fn signature_buffers(device: &wgpu::Device) -> SignatureBuffers {
    let cells_bytes = (Signature::WIDTH * Signature::HEIGHT * 4) as u64;
    SignatureBuffers {
        params: device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("signature params"),
            size: SIGNATURE_PARAM_WORDS as u64 * 4,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        }),
        src: Grow::new(
            "signature plane",
            wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
        ),
        cells: device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("signature cells"),
            size: cells_bytes,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        }),
        readback: device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("signature readback"),
            size: cells_bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        }),
        mapping: MapSignal::new(),
        bind_group: None,
    }
}

/// Validation, out-of-memory and internal error scopes around a group of wgpu calls.
struct ErrorScopes([Option<wgpu::ErrorScopeGuard>; 3]);

impl ErrorScopes {
    fn push(device: &wgpu::Device) -> Self {
        Self([
            Some(device.push_error_scope(wgpu::ErrorFilter::Internal)),
            Some(device.push_error_scope(wgpu::ErrorFilter::OutOfMemory)),
            Some(device.push_error_scope(wgpu::ErrorFilter::Validation)),
        ])
    }

    /// Pops the scopes (innermost first); the first error caught, if any.
    fn pop(mut self) -> Result<(), GpuError> {
        let mut first = None;
        for guard in self.0.iter_mut().rev() {
            if let Some(g) = guard.take() {
                match block_on(g.pop()) {
                    Some(Some(e)) => {
                        first.get_or_insert(gpu_error(e));
                    }
                    Some(None) => {}
                    None => {
                        first.get_or_insert(GpuError::Timeout(2000));
                    }
                }
            }
        }
        first.map_or(Ok(()), Err)
    }
}
