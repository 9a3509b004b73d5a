//! JNI bindings of the prescreen runtime: the native half of the Kotlin class `dev.prescreen.Screener`
//! (`kotlin/src/main/kotlin/dev/prescreen/`).
//!
//! A thin adapter: every function converts Java arguments to the host-facing types of
//! `prescreen_runtime::session` (the same ones the iOS binding converts), calls [`Session`], and
//! converts the result: frames become a [`HostFrame`] for [`Session::submit_host`], events arrive
//! as [`HostEvent`]s flattened by their [`EventKind`](prescreen_runtime::session::EventKind)
//! number, metrics as the [`MetricsSummary`] array, and enum ordinals are decoded by the runtime's
//! code tables (which `Native.constants` exports, so a Kotlin test checks every number Kotlin
//! keeps). Every entry point goes through [`ffi`], which catches panics, turns errors into the
//! Kotlin exception of their [`ErrorKind`] and returns a neutral value, so nothing undefined
//! crosses the boundary. The Kotlin side owns the handle's lifetime: it calls `free` exactly once,
//! under a write lock that waits for every call in flight, so a handle is never used after it is
//! freed. The native side checks that too: each call on a handle is counted while it runs, and
//! `free` refuses (`IllegalStateException`, the session kept) while any is, so a broken lock shows
//! as an exception and a kept session, not as memory freed under a running call.
//!
//! Frames are read where they lie: direct `ByteBuffer`s through their address and capacity (every
//! plane is bounds-checked against its capacity by the runtime's frame validation), `byte[]`s
//! through a critical section. The engine copies what it keeps before `submit` returns.
//!
//! Events reach Kotlin on the session's events thread, attached to the JVM once (and detached when
//! it ends), by calling `EventDispatcher.onNativeEvent` on a global reference that is released
//! when the session closes.

use std::alloc::{GlobalAlloc, Layout, System};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};

use jni::objects::{
    GlobalRef, JByteArray, JByteBuffer, JClass, JLongArray, JObject, JObjectArray, JString, JValue,
    ReleaseMode,
};
use jni::sys::{jboolean, jint, jlong, JNI_FALSE, JNI_TRUE};
use jni::{JNIEnv, JavaVM};

use prescreen_runtime::frame::{FrameError, PixelFormat, PlaneKind};
use prescreen_runtime::session::{
    backend_from_code, color_matrix_from_code, color_range_from_code, host_constants,
    variant_from_code, FrameMeta, HostEvent, HostFrame, HostPixels, HostPlane, HostSegment,
    LentFrame, MetricsSummary, Session, SessionConfig, SessionEvent, SessionMetrics,
};
use prescreen_runtime::{Error, ErrorKind};

/// Sessions alive in this process (opened and not yet freed).
static LIVE_SESSIONS: AtomicI64 = AtomicI64::new(0);
/// Bytes the library's Rust code holds on the heap (tract, the engine, the outbox, ...).
static HEAP_BYTES: AtomicI64 = AtomicI64::new(0);

/// The system allocator, counting the bytes live in [`HEAP_BYTES`] so apps and leak tests can read
/// the library's native memory (`Screener.nativeLiveObjects`). Two relaxed atomic adds per
/// allocation; the engine does not allocate per frame in steady state.
struct CountingAllocator;

// SAFETY: every call forwards to `System` with the caller's arguments unchanged; the counter is a
// side effect that never touches the memory.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is (the caller upholds `GlobalAlloc::alloc`'s contract).
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            HEAP_BYTES.fetch_add(layout.size() as i64, Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            HEAP_BYTES.fetch_add(layout.size() as i64, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as is.
        unsafe { System.dealloc(ptr, layout) };
        HEAP_BYTES.fetch_sub(layout.size() as i64, Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded as is.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            HEAP_BYTES.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;
/// JNI global references this library holds.
static GLOBAL_REFS: AtomicI64 = AtomicI64::new(0);

/// What a native call can fail with: a runtime error, or a Java exception already thrown by a JNI
/// call (which must propagate as it is).
enum Failure {
    Runtime(Error),
    Jni(jni::errors::Error),
    /// A call the handle's state forbids now (`IllegalStateException`).
    State(String),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Runtime(e)
    }
}

impl From<jni::errors::Error> for Failure {
    fn from(e: jni::errors::Error) -> Self {
        Failure::Jni(e)
    }
}

type Outcome<T> = std::result::Result<T, Failure>;

/// The Java class thrown for each kind of error (all have a `(String)` constructor).
fn exception_class(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidFrame => "dev/prescreen/InvalidFrameException",
        ErrorKind::InvalidArgument => "java/lang/IllegalArgumentException",
        ErrorKind::ModelLoad => "dev/prescreen/ModelLoadException",
        ErrorKind::Policy => "dev/prescreen/PolicyException",
        ErrorKind::GpuUnavailable => "dev/prescreen/GpuUnavailableException",
        ErrorKind::Storage => "dev/prescreen/StorageException",
        ErrorKind::UnknownReport => "dev/prescreen/UnknownReportException",
        ErrorKind::Closed => "java/lang/IllegalStateException",
        ErrorKind::Internal => "dev/prescreen/PrescreenException",
    }
}

/// Runs one native call: catches panics, throws errors as Kotlin exceptions, and returns `T`'s
/// neutral value when anything went wrong (Java ignores it: an exception is pending).
fn ffi<'l, T: Default>(env: &mut JNIEnv<'l>, f: impl FnOnce(&mut JNIEnv<'l>) -> Outcome<T>) -> T {
    let result = catch_unwind(AssertUnwindSafe(|| f(env)));
    let (class, message) = match result {
        Ok(Ok(value)) => return value,
        Ok(Err(Failure::Runtime(e))) => (exception_class(e.kind()), e.to_string()),
        Ok(Err(Failure::State(message))) => ("java/lang/IllegalStateException", message),
        Ok(Err(Failure::Jni(e))) => {
            if env.exception_check().unwrap_or(false) {
                return T::default();
            }
            match e {
                jni::errors::Error::NullPtr(what) | jni::errors::Error::NullDeref(what) => (
                    "java/lang/NullPointerException",
                    format!("null argument: {what}"),
                ),
                other => ("dev/prescreen/PrescreenException", format!("JNI: {other}")),
            }
        }
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            log::error!("panic in prescreen native code: {what}");
            (
                "dev/prescreen/PrescreenException",
                format!("internal error in native code: {what}"),
            )
        }
    };
    if !env.exception_check().unwrap_or(true) && env.throw_new(class, &message).is_err() {
        log::error!("could not throw {class}");
    }
    T::default()
}

/// The native side of a Kotlin `Screener`.
struct Handle {
    session: Session,
    /// Calls running on this handle ([`Call`]); `free` refuses while any is.
    calls: AtomicUsize,
}

/// One call on a [`Handle`], counted in [`Handle::calls`] from [`handle`] until it is dropped at
/// the end of the call.
struct Call<'a>(&'a Handle);

impl std::ops::Deref for Call<'_> {
    type Target = Handle;

    fn deref(&self) -> &Handle {
        self.0
    }
}

impl Drop for Call<'_> {
    fn drop(&mut self) {
        self.0.calls.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        LIVE_SESSIONS.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The handle behind a `jlong` from Kotlin, counted as a call in flight until the result drops.
///
/// # Safety
/// `handle` must be 0 or a value returned by `open` and not yet passed to `free`; the Kotlin
/// `Screener` guarantees this with its lock (every call under the read lock, `free` under the
/// write lock, and the handle zeroed there).
unsafe fn handle<'a>(handle: jlong) -> Outcome<Call<'a>> {
    if handle == 0 {
        return Err(Error::Closed.into());
    }
    // SAFETY: per this function's contract the pointer came from `Box::into_raw` in `open` and
    // the box is alive for the duration of the call.
    let handle = unsafe { &*(handle as *const Handle) };
    handle.calls.fetch_add(1, Ordering::AcqRel);
    Ok(Call(handle))
}

/// Calls running on a handle, read without counting this one (for `free` and `callsInFlight`).
///
/// # Safety
/// `handle` must be a non-zero value returned by `open` and not yet freed.
unsafe fn running_calls(handle: jlong) -> usize {
    // SAFETY: per this function's contract the box is alive; only its counter is read.
    unsafe { &*(handle as *const Handle) }
        .calls
        .load(Ordering::Acquire)
}

/// A JNI global reference, counted in [`GLOBAL_REFS`].
struct Counted(GlobalRef);

impl Counted {
    fn new(env: &JNIEnv<'_>, object: &JObject<'_>) -> Outcome<Self> {
        let global = env.new_global_ref(object)?;
        GLOBAL_REFS.fetch_add(1, Ordering::Relaxed);
        Ok(Self(global))
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        GLOBAL_REFS.fetch_sub(1, Ordering::Relaxed);
    }
}

fn string(env: &mut JNIEnv<'_>, s: &JString<'_>) -> Outcome<String> {
    if s.is_null() {
        return Err(jni::errors::Error::NullPtr("string argument").into());
    }
    Ok(env.get_string(s)?.into())
}

/// One event flattened for `onNativeEvent(kind, longs, floats, text, detail)`.
struct Flat {
    kind: i32,
    longs: Vec<i64>,
    floats: Vec<f32>,
    text: Option<String>,
    detail: Option<String>,
}

fn flat_segment(kind: i32, s: HostSegment) -> Flat {
    Flat {
        kind,
        // id, start, end, peak time, frames scored, stream start
        longs: vec![
            s.id as i64,
            s.start_us,
            s.end_us,
            s.peak_us,
            i64::from(s.frames_scored),
            s.stream_start_us,
        ],
        floats: vec![s.peak, s.mean],
        text: Some(s.label),
        detail: None,
    }
}

fn flatten(event: HostEvent) -> Flat {
    let kind = event.kind().code();
    let text = |text: String, detail: Option<String>, longs: Vec<i64>| Flat {
        kind,
        longs,
        floats: vec![],
        text: Some(text),
        detail,
    };
    match event {
        HostEvent::SegmentOpened(s)
        | HostEvent::SegmentUpdated(s)
        | HostEvent::SegmentClosed(s) => flat_segment(kind, s),
        HostEvent::ReportQueued { report_id, label } => text(report_id, Some(label), vec![]),
        HostEvent::Scored {
            timestamp_us,
            scores,
        } => Flat {
            kind,
            longs: vec![timestamp_us],
            floats: scores,
            text: None,
            detail: None,
        },
        HostEvent::ReportStored { report_id } | HostEvent::ReportEvicted { report_id } => {
            text(report_id, None, vec![])
        }
        HostEvent::ThumbnailsDropped { report_id, count } => {
            text(report_id, None, vec![i64::from(count)])
        }
        HostEvent::Quarantined {
            file: subject,
            reason,
        }
        | HostEvent::DeadLettered {
            report_id: subject,
            reason,
        } => text(subject, Some(reason), vec![]),
        HostEvent::Error { message } => text(message, None, vec![]),
    }
}

/// Calls `dispatcher.onNativeEvent(...)` on the current (attached) thread, in a local frame so the
/// long-lived events thread never accumulates local references.
fn deliver(env: &mut JNIEnv<'_>, dispatcher: &JObject<'_>, flat: Flat) -> Outcome<()> {
    env.with_local_frame(8, |env| -> Outcome<()> {
        let longs = env.new_long_array(flat.longs.len() as i32)?;
        env.set_long_array_region(&longs, 0, &flat.longs)?;
        let floats = env.new_float_array(flat.floats.len() as i32)?;
        env.set_float_array_region(&floats, 0, &flat.floats)?;
        let text = match &flat.text {
            Some(t) => JObject::from(env.new_string(t)?),
            None => JObject::null(),
        };
        let detail = match &flat.detail {
            Some(t) => JObject::from(env.new_string(t)?),
            None => JObject::null(),
        };
        env.call_method(
            dispatcher,
            "onNativeEvent",
            "(I[J[FLjava/lang/String;Ljava/lang/String;)V",
            &[
                JValue::Int(flat.kind),
                JValue::Object(&longs),
                JValue::Object(&floats),
                JValue::Object(&text),
                JValue::Object(&detail),
            ],
        )?;
        Ok(())
    })
}

/// The session's listener: forwards each event to the Kotlin dispatcher from the events thread.
fn listener(vm: JavaVM, dispatcher: Counted) -> Box<dyn FnMut(SessionEvent) + Send> {
    Box::new(move |event| {
        let delivered = catch_unwind(AssertUnwindSafe(|| -> Outcome<()> {
            // Attached once for the thread's life; jni detaches it when the thread ends.
            let mut env = vm.attach_current_thread_permanently()?;
            let result = deliver(&mut env, dispatcher.0.as_obj(), flatten(event.into()));
            if env.exception_check().unwrap_or(false) {
                // The Kotlin dispatcher catches the listener's exceptions; anything else is
                // described on stderr and cleared so the thread can go on.
                let _ = env.exception_describe();
                let _ = env.exception_clear();
            }
            result
        }));
        match delivered {
            Ok(Ok(())) => {}
            Ok(Err(_)) => log::error!("a prescreen event could not be delivered to Kotlin"),
            Err(_) => log::error!("panic while delivering a prescreen event"),
        }
    })
}

/// `Native.open(...)`: loads the model and policy, opens the outbox, starts the session; returns
/// the handle.
#[no_mangle]
pub extern "system" fn Java_dev_prescreen_Native_open<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    model_dir: JString<'l>,
    policy_path: JString<'l>,
    outbox_dir: JString<'l>,
    stream_id: JString<'l>,
    backend_code: jint,
    variant_code: jint,
    emit_scores: jboolean,
    budget_bytes: jlong,
    device_class: JString<'l>,
    inference_threads: jint,
    dispatcher: JObject<'l>,
) -> jlong {
    init_logging();
    ffi(&mut env, |env| {
        let mut config = SessionConfig::new(
            PathBuf::from(string(env, &model_dir)?),
            PathBuf::from(string(env, &policy_path)?),
            PathBuf::from(string(env, &outbox_dir)?),
            string(env, &stream_id)?,
        );
        config.backend = backend_from_code(backend_code.into())?;
        config.variant = variant_from_code(variant_code.into())?;
        config.emit_scores = emit_scores == JNI_TRUE;
        config.outbox_budget_bytes = u64::try_from(budget_bytes).map_err(|_| {
            Error::InvalidArgument(format!("outbox budget {budget_bytes} is negative"))
        })?;
        if !device_class.is_null() {
            config.device_class = Some(string(env, &device_class)?);
        }
        config.inference_threads = usize::try_from(inference_threads).map_err(|_| {
            Error::InvalidArgument(format!("inference threads {inference_threads} is negative"))
        })?;
        if dispatcher.is_null() {
            return Err(jni::errors::Error::NullPtr("dispatcher").into());
        }
        let listener = listener(env.get_java_vm()?, Counted::new(env, &dispatcher)?);
        let session = Session::open(&config, listener)?;
        LIVE_SESSIONS.fetch_add(1, Ordering::Relaxed);
        Ok(Box::into_raw(Box::new(Handle {
            session,
            calls: AtomicUsize::new(0),
        })) as jlong)
    })
}

/// Time, orientation and colour of a frame as Kotlin passes them (colour as `ColorMatrix` /
/// `ColorRange` ordinals).
fn meta(
    timestamp_us: jlong,
    rotation: jint,
    mirror: jboolean,
    matrix: jint,
    range: jint,
) -> Result<FrameMeta, FrameError> {
    Ok(FrameMeta {
        timestamp_us,
        rotation_degrees: rotation.into(),
        mirror: mirror == JNI_TRUE,
        color_matrix: color_matrix_from_code(matrix.into())?,
        color_range: color_range_from_code(range.into())?,
    })
}

/// The bytes of a direct `ByteBuffer`, from its address to its capacity.
///
/// The slice is valid while the buffer is reachable, which the caller's local reference ensures for
/// the duration of the native call. The app must not write the buffer during `submit` (documented
/// on the Kotlin side).
fn direct<'b>(
    env: &JNIEnv<'_>,
    buffer: &'b JByteBuffer<'_>,
    plane: PlaneKind,
) -> Result<&'b [u8], FrameError> {
    let unavailable = |reason| FrameError::PlaneUnavailable { plane, reason };
    if buffer.is_null() {
        return Err(unavailable("the buffer is null"));
    }
    let (Ok(address), Ok(capacity)) = (
        env.get_direct_buffer_address(buffer),
        env.get_direct_buffer_capacity(buffer),
    ) else {
        return Err(unavailable(
            "not a direct ByteBuffer (allocateDirect is needed)",
        ));
    };
    if address.is_null() {
        return Err(unavailable(
            "not a direct ByteBuffer (allocateDirect is needed)",
        ));
    }
    // SAFETY: the JVM guarantees that a direct buffer's memory spans `capacity` bytes from
    // `address` while the buffer is alive; it is alive for this call (see above).
    Ok(unsafe { std::slice::from_raw_parts(address, capacity) })
}

/// A `YUV_420_888` frame as `submitYuv420` and `lendYuv420` pass it: Y, U and V buffers with
/// their strides, and the frame's meta (or why it could not be read).
struct Yuv420<'b, 'l> {
    width: jint,
    height: jint,
    planes: [&'b JByteBuffer<'l>; 3],
    y_row_stride: jint,
    uv_row_stride: jint,
    uv_pixel_stride: jint,
    meta: Result<FrameMeta, FrameError>,
}

impl<'b, 'l> Yuv420<'b, 'l> {
    /// The host frame, each plane's bytes read by `bytes` (in place for a submit, lent for a
    /// lend).
    fn frame<'a>(
        self,
        mut bytes: impl FnMut(&'b JByteBuffer<'l>, PlaneKind) -> Result<&'a [u8], FrameError>,
    ) -> Result<HostFrame<'a>, FrameError> {
        let [y, u, v] = self.planes;
        let chroma = |data| HostPlane {
            data,
            row_stride: self.uv_row_stride.into(),
            pixel_stride: self.uv_pixel_stride.into(),
        };
        Ok(HostFrame {
            width: self.width.into(),
            height: self.height.into(),
            pixels: HostPixels::Yuv420 {
                y: HostPlane::new(bytes(y, PlaneKind::Y)?, self.y_row_stride.into()),
                u: chroma(bytes(u, PlaneKind::U)?),
                v: chroma(bytes(v, PlaneKind::V)?),
            },
            meta: self.meta?,
        })
    }
}

/// Submits a frame the runtime's one host entry: a frame that could not be described (a null or
/// heap buffer, a bad code) is counted and thrown the same way as a malformed one. Returns the
/// `SubmitResult` ordinal.
fn submit_with(handle: &Handle, frame: Result<HostFrame<'_>, FrameError>) -> Outcome<jint> {
    Ok(handle.session.submit_host(frame)?.code())
}

/// `Native.submitYuv420(...)`: Android's `YUV_420_888` planes as direct buffers with strides.
#[no_mangle]
pub extern "system" fn Java_dev_prescreen_Native_submitYuv420<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    handle_ptr: jlong,
    width: jint,
    height: jint,
    y: JByteBuffer<'l>,
    y_row_stride: jint,
    u: JByteBuffer<'l>,
    v: JByteBuffer<'l>,
    uv_row_stride: jint,
    uv_pixel_stride: jint,
    rotation: jint,
    mirror: jboolean,
    matrix: jint,
    range: jint,
    timestamp_us: jlong,
) -> jint {
    ffi(&mut env, |env| {
        // SAFETY: the Kotlin Screener passes a live handle (see `handle`).
        let handle = unsafe { handle(handle_ptr)? };
        let frame = Yuv420 {
            width,
            height,
            planes: [&y, &u, &v],
            y_row_stride,
            uv_row_stride,
            uv_pixel_stride,
            meta: meta(timestamp_us, rotation, mirror, matrix, range),
        }
        .frame(|buffer, plane| direct(env, buffer, plane));
        submit_with(&handle, frame)
    })
}

/// The lease of a frame lent by `lendYuv420`: the Kotlin `Lease` whose `run()` closes the camera
/// image, and global references to the plane buffers, so their memory stays reachable however
/// the app drops its own references. Dropped by the engine exactly once, when it is done with the
/// frame, on whichever thread that is (the submitting thread, the worker, or the one closing).
struct JavaLease {
    vm: JavaVM,
    release: Counted,
    _planes: [Counted; 3],
}

impl Drop for JavaLease {
    fn drop(&mut self) {
        let released = catch_unwind(AssertUnwindSafe(|| -> Outcome<()> {
            // A JVM thread (the submitting one) is attached already; the worker thread is attached
            // once for its life, as the events thread is.
            let mut env = self.vm.attach_current_thread_permanently()?;
            let result = env.call_method(self.release.0.as_obj(), "run", "()V", &[]);
            if env.exception_check().unwrap_or(false) {
                // `Lease.run` lets nothing escape but the app's own release failing: describe it
                // on stderr and clear it, so the engine's thread (or the submit) goes on.
                let _ = env.exception_describe();
                let _ = env.exception_clear();
            }
            result?;
            Ok(())
        }));
        if !matches!(released, Ok(Ok(()))) {
            log::error!("a lent camera frame's release failed (its image may stay open)");
        }
    }
}

/// The bytes of a direct `ByteBuffer` held by a global reference, for a frame lent beyond the call.
///
/// # Safety
/// The memory must stay valid and unchanged until the global reference drops: memory from
/// `allocateDirect` lives as long as its buffer object (which the reference keeps); an `Image`
/// plane's memory lives until the image is closed, which the lease's release does, after the
/// reference's last use. The Kotlin API documents that the app must not write a lent frame.
unsafe fn direct_lent(
    env: &JNIEnv<'_>,
    buffer: &JByteBuffer<'_>,
    plane: PlaneKind,
) -> Result<&'static [u8], FrameError> {
    let bytes = direct(env, buffer, plane)?;
    // SAFETY: per this function's contract the bytes outlive the lease that refers to them.
    Ok(unsafe { std::slice::from_raw_parts(bytes.as_ptr(), bytes.len()) })
}

/// `Native.lendYuv420(...)`: as `submitYuv420`, but the engine keeps the planes instead of copying
/// them and runs `lease` (a Kotlin `Lease`) when done with them; every path out of here, an error
/// included, runs it exactly once (now, or later from the engine).
#[no_mangle]
pub extern "system" fn Java_dev_prescreen_Native_lendYuv420<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    handle_ptr: jlong,
    width: jint,
    height: jint,
    y: JByteBuffer<'l>,
    y_row_stride: jint,
    u: JByteBuffer<'l>,
    v: JByteBuffer<'l>,
    uv_row_stride: jint,
    uv_pixel_stride: jint,
    rotation: jint,
    mirror: jboolean,
    matrix: jint,
    range: jint,
    timestamp_us: jlong,
    lease: JObject<'l>,
) -> jint {
    ffi(&mut env, |env| {
        // SAFETY: the Kotlin Screener passes a live handle (see `handle`).
        let handle = unsafe { handle(handle_ptr)? };
        if lease.is_null() {
            return Err(jni::errors::Error::NullPtr("lease").into());
        }
        let lease = JavaLease {
            vm: env.get_java_vm()?,
            release: Counted::new(env, &lease)?,
            _planes: [
                Counted::new(env, &y)?,
                Counted::new(env, &u)?,
                Counted::new(env, &v)?,
            ],
        };
        let frame = Yuv420 {
            width,
            height,
            planes: [&y, &u, &v],
            y_row_stride,
            uv_row_stride,
            uv_pixel_stride,
            meta: meta(timestamp_us, rotation, mirror, matrix, range),
        }
        // SAFETY: `lease` holds each buffer and closes the image only when the engine drops it
        // (see `direct_lent`).
        .frame(|buffer, plane| unsafe { direct_lent(env, buffer, plane) });
        match frame {
            // SAFETY: the planes stay valid until `lease` drops (see above).
            Ok(frame) => Ok(handle
                .session
                .lend_host(unsafe { LentFrame::new(frame, lease) })?
                .code()),
            Err(e) => {
                // Released before the error is thrown, as the Kotlin API promises.
                drop(lease);
                submit_with(&handle, Err(e))
            }
        }
    })
}

/// `Native.submitNv21(...)`: an NV21 `byte[]` (Camera1 preview, tightly packed).
#[no_mangle]
pub extern "system" fn Java_dev_prescreen_Native_submitNv21<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    handle_ptr: jlong,
    data: JByteArray<'l>,
    width: jint,
    height: jint,
    rotation: jint,
    mirror: jboolean,
    matrix: jint,
    range: jint,
    timestamp_us: jlong,
) -> jint {
    ffi(&mut env, |env| {
        // SAFETY: the Kotlin Screener passes a live handle (see `handle`).
        let handle = unsafe { handle(handle_ptr)? };
        let meta = match meta(timestamp_us, rotation, mirror, matrix, range) {
            Ok(meta) => meta,
            Err(e) => return submit_with(&handle, Err(e)),
        };
        if data.is_null() {
            let e = FrameError::PlaneUnavailable {
                plane: PlaneKind::Y,
                reason: "the array is null",
            };
            return submit_with(&handle, Err(e));
        }
        // SAFETY: inside the critical section no JNI function is called (the engine only reads the
        // bytes and copies what it keeps); the elements are released when `bytes` drops, before
        // any exception is thrown.
        let bytes = unsafe { env.get_array_elements_critical(&data, ReleaseMode::NoCopyBack)? };
        // SAFETY: i8 and u8 have the same size and alignment; the slice lives as long as `bytes`.
        let bytes: &[u8] =
            unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<u8>(), bytes.len()) };
        let frame = HostFrame {
            width: width.into(),
            height: height.into(),
            pixels: HostPixels::Nv21Packed(bytes),
            meta,
        };
        submit_with(&handle, Ok(frame))
    })
}

/// `Native.submitRgba(...)`: packed RGBA (an `android.graphics.Bitmap` copied to a direct buffer,
/// or `ImageAnalysis.OUTPUT_IMAGE_FORMAT_RGBA_8888`).
#[no_mangle]
pub extern "system" fn Java_dev_prescreen_Native_submitRgba<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    handle_ptr: jlong,
    buffer: JByteBuffer<'l>,
    width: jint,
    height: jint,
    row_stride: jint,
    rotation: jint,
    mirror: jboolean,
    timestamp_us: jlong,
) -> jint {
    ffi(&mut env, |env| {
        // SAFETY: the Kotlin Screener passes a live handle (see `handle`).
        let handle = unsafe { handle(handle_ptr)? };
        let frame = direct(env, &buffer, PlaneKind::Packed).map(|data| HostFrame {
            width: width.into(),
            height: height.into(),
            pixels: HostPixels::Packed {
                format: PixelFormat::Rgba8,
                plane: HostPlane::new(data, row_stride.into()),
            },
            meta: FrameMeta {
                timestamp_us,
                rotation_degrees: rotation.into(),
                mirror: mirror == JNI_TRUE,
                ..FrameMeta::default()
            },
        });
        submit_with(&handle, frame)
    })
}

/// `Native.labels(handle)`: the model's labels in score order.
#[no_mangle]
pub extern "system" fn Java_dev_prescreen_Native_labels<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    handle_ptr: jlong,
) -> JObjectArray<'l> {
    ffi(&mut env, |env| {
        // SAFETY: the Kotlin Screener passes a live handle (see `handle`).
        let handle = unsafe { handle(handle_ptr)? };
        let labels = handle.session.labels();
        string_array(env, labels.iter().map(|l| Some(l.as_str())))
    })
}

/// A Java `String[]` of `items`, `null` where an item is `None`.
fn string_array<'l, 'a>(
    env: &mut JNIEnv<'l>,
    items: impl ExactSizeIterator<Item = Option<&'a str>>,
) -> Outcome<JObjectArray<'l>> {
    let array = env.new_object_array(items.len() as i32, "java/lang/String", JObject::null())?;
    for (i, item) in items.enumerate() {
        if let Some(item) = item {
            let s = env.new_string(item)?;
            env.set_object_array_element(&array, i as i32, &s)?;
            // Freed at once: a long array must not outgrow the call's local reference capacity.
            env.delete_local_ref(s)?;
        }
    }
    Ok(array)
}

/// `Native.categories(handle)`: each label's moderation category under the policy, in score
/// order; `null` for a label the policy does not flag or gives no category.
#[no_mangle]
pub extern "system" fn Java_dev_prescreen_Native_categories<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    handle_ptr: jlong,
) -> JObjectArray<'l> {
    ffi(&mut env, |env| {
        // SAFETY: the Kotlin Screener passes a live handle (see `handle`).
        let handle = unsafe { handle(handle_ptr)? };
        let categories = handle.session.categories();
        string_array(env, categories.iter().map(|c| c.map(|c| c.name())))
    })
}

/// `Native.pendingReports(handle)`: `PendingReport` objects, oldest first.
#[no_mangle]
pub extern "system" fn Java_dev_prescreen_Native_pendingReports<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    handle_ptr: jlong,
) -> JObjectArray<'l> {
    ffi(&mut env, |env| {
        // SAFETY: the Kotlin Screener passes a live handle (see `handle`).
        let handle = unsafe { handle(handle_ptr)? };
        let pending = handle.session.pending_reports()?;
        let class = env.find_class("dev/prescreen/PendingReport")?;
        let array = env.new_object_array(pending.len() as i32, &class, JObject::null())?;
        for (i, p) in pending.iter().enumerate() {
            env.with_local_frame(4, |env| -> Outcome<()> {
                let id = env.new_string(&p.report_id)?;
                let report = env.new_object(
                    &class,
                    "(Ljava/lang/String;JJ)V",
                    &[
                        JValue::Object(&id),
                        JValue::Long(p.bytes as i64),
                        JValue::Long(p.created_unix_millis as i64),
                    ],
                )?;
                env.set_object_array_element(&array, i as i32, &report)?;
                Ok(())
            })?;
        }
        Ok(array)
    })
}

/// `Native.readReport(handle, id)`: the report's JSON bytes.
#[no_mangle]
pub extern "system" fn Java_dev_prescreen_Native_readReport<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    handle_ptr: jlong,
    report_id: JString<'l>,
) -> JByteArray<'l> {
    ffi(&mut env, |env| {
        // SAFETY: the Kotlin Screener passes a live handle (see `handle`).
        let handle = unsafe { handle(handle_ptr)? };
        let id = string(env, &report_id)?;
        let bytes = handle.session.read_report(&id)?;
        Ok(env.byte_array_from_slice(&bytes)?)
    })
}

/// `Native.ack(handle, id)`: removes a delivered report; false if it was not pending.
#[no_mangle]
pub extern "system" fn Java_dev_prescreen_Native_ack<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    handle_ptr: jlong,
    report_id: JString<'l>,
) -> jboolean {
    ffi(&mut env, |env| {
        // SAFETY: the Kotlin Screener passes a live handle (see `handle`).
        let handle = unsafe { handle(handle_ptr)? };
        let id = string(env, &report_id)?;
        Ok(if handle.session.ack(&id)? {
            JNI_TRUE
        } else {
            JNI_FALSE
        })
    })
}

/// The [`MetricsSummary`] array of a snapshot (its order is `MetricsSummary::FIELDS`, which
/// Kotlin's `Metrics.fromNative` reads; `Native.constants` exports it).
fn metrics_array<'l>(env: &mut JNIEnv<'l>, m: &SessionMetrics) -> Outcome<JLongArray<'l>> {
    let values = MetricsSummary::from(m).to_array();
    let array = env.new_long_array(values.len() as i32)?;
    env.set_long_array_region(&array, 0, &values)?;
    Ok(array)
}

/// `Native.metrics(handle)`: a flattened [`SessionMetrics`] snapshot.
#[no_mangle]
pub extern "system" fn Java_dev_prescreen_Native_metrics<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    handle_ptr: jlong,
) -> JLongArray<'l> {
    ffi(&mut env, |env| {
        // SAFETY: the Kotlin Screener passes a live handle (see `handle`).
        let handle = unsafe { handle(handle_ptr)? };
        let m = handle.session.metrics()?;
        metrics_array(env, &m)
    })
}

/// `Native.waitIdle(handle)`: blocks until every frame taken so far has been scored.
#[no_mangle]
pub extern "system" fn Java_dev_prescreen_Native_waitIdle<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    handle_ptr: jlong,
) {
    ffi(&mut env, |_env| {
        // SAFETY: the Kotlin Screener passes a live handle (see `handle`).
        let handle = unsafe { handle(handle_ptr)? };
        Ok(handle.session.wait_idle()?)
    })
}

/// `Native.finish(handle)`: closes the session (scores what waits, closes segments, stores their
/// reports, delivers the last events); returns the final metrics, or null if already closed.
#[no_mangle]
pub extern "system" fn Java_dev_prescreen_Native_finish<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    handle_ptr: jlong,
) -> JLongArray<'l> {
    ffi(&mut env, |env| {
        // SAFETY: the Kotlin Screener passes a live handle (see `handle`).
        let handle = unsafe { handle(handle_ptr)? };
        match handle.session.close()? {
            Some(m) => metrics_array(env, &m),
            None => Ok(JLongArray::from(JObject::null())),
        }
    })
}

/// `Native.free(handle)`: releases the native session. Called once, by `Screener.close`, under its
/// write lock. Throws `IllegalStateException` and keeps the session while a call on the handle is
/// still running (the lock makes that impossible; this catches a broken lock).
#[no_mangle]
pub extern "system" fn Java_dev_prescreen_Native_free<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    handle_ptr: jlong,
) {
    ffi(&mut env, |_env| {
        if handle_ptr != 0 {
            // SAFETY: the pointer came from `Box::into_raw` in `open` and has not been freed: the
            // Kotlin Screener calls `free` once (and again only after a refusal, below).
            let calls = unsafe { running_calls(handle_ptr) };
            if calls > 0 {
                log::error!("free refused: {calls} native call(s) still running on the screener");
                return Err(Failure::State(format!(
                    "the screener cannot be freed while {calls} native call(s) on it are running"
                )));
            }
            // SAFETY: as above; no call is running on it, and the Kotlin Screener forgets it now.
            drop(unsafe { Box::from_raw(handle_ptr as *mut Handle) });
        }
        Ok(())
    })
}

/// `Native.callsInFlight(handle)`: calls running on the handle now (not counting this one), for
/// tests and diagnostics.
#[no_mangle]
pub extern "system" fn Java_dev_prescreen_Native_callsInFlight<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    handle_ptr: jlong,
) -> jlong {
    ffi(&mut env, |_env| {
        if handle_ptr == 0 {
            return Err(Error::Closed.into());
        }
        // SAFETY: a live handle, as for every call (see `handle`).
        Ok(unsafe { running_calls(handle_ptr) } as jlong)
    })
}

/// `Native.liveObjects()`: `[sessions alive, JNI global references held, heap bytes held]`, for
/// leak checks and diagnostics.
#[no_mangle]
pub extern "system" fn Java_dev_prescreen_Native_liveObjects<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
) -> JLongArray<'l> {
    ffi(&mut env, |env| {
        let values = [
            LIVE_SESSIONS.load(Ordering::Relaxed),
            GLOBAL_REFS.load(Ordering::Relaxed),
            HEAP_BYTES.load(Ordering::Relaxed),
        ];
        let array = env.new_long_array(values.len() as i32)?;
        env.set_long_array_region(&array, 0, &values)?;
        Ok(array)
    })
}

/// `Native.constants()`: every number the runtime and Kotlin share, as `group.NAME=value` strings
/// ([`host_constants`]): event kinds, the metrics array order, and the enum codes. Kotlin's tests
/// compare them with its own constants.
#[no_mangle]
pub extern "system" fn Java_dev_prescreen_Native_constants<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
) -> JObjectArray<'l> {
    ffi(&mut env, |env| {
        let lines: Vec<String> = host_constants()
            .into_iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect();
        string_array(env, lines.iter().map(|l| Some(l.as_str())))
    })
}

/// Routes the `log` facade to logcat on Android (once); elsewhere the host installs a logger.
fn init_logging() {
    #[cfg(target_os = "android")]
    android_logger::init_once(
        android_logger::Config::default()
            .with_max_level(log::LevelFilter::Info)
            .with_tag("prescreen"),
    );
}
