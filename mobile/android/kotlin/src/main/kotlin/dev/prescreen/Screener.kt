package dev.prescreen

import java.nio.ByteBuffer
import java.util.concurrent.atomic.AtomicBoolean
import java.util.concurrent.atomic.AtomicLong
import java.util.concurrent.locks.ReentrantReadWriteLock
import kotlin.concurrent.read
import kotlin.concurrent.write
import kotlinx.coroutines.channels.Channel
import kotlinx.coroutines.channels.awaitClose
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.buffer
import kotlinx.coroutines.flow.callbackFlow

/**
 * Screens one live stream on the device: frames go in through the `submit` functions (from the
 * camera's analysis thread; they never wait on inference), flagged segments come out as
 * [ScreenerEvent]s, and each closed segment's report waits in a durable outbox until the app
 * uploads it with its own networking ([pendingReports], [readReport], [ack]).
 *
 * Thread-safe: every function may be called from any thread. [close] is idempotent; any other call
 * after it, a submit included (or a submit racing with it), throws [IllegalStateException], as iOS
 * throws `PrescreenError.Closed`. Errors throw the [PrescreenException] subclasses documented on
 * each function.
 *
 * ```
 * Screener.open(ScreenerConfig(modelDir, policyPath, outboxDir, streamId)) { event ->
 *     if (event is ScreenerEvent.ReportQueued) uploadLater(event.reportId)
 * }.use { screener ->
 *     // per camera frame:
 *     screener.submitNv21(bytes, width, height, rotationDegrees, timestampUs)
 * }
 * ```
 */
class Screener private constructor(
    private var handle: Long,
    private val dispatcher: EventDispatcher,
) : AutoCloseable {
    private val lock = ReentrantReadWriteLock()
    private val closing = AtomicBoolean(false)

    /** The model's labels, in the order of [ScreenerEvent.Scored.scores]. */
    val labels: List<String> = call { Native.labels(it).toList() }

    /**
     * Each label's moderation category under the policy, in [labels] order: one of Amazon
     * Rekognition's level-1 names (as reports carry it), or `null` for a label the policy does not
     * flag or gives no category.
     */
    val categories: List<String?> = call { Native.categories(it).toList() }

    /**
     * Every event, as a [Flow] for coroutine users (in addition to the listener given to [open]).
     * Each collector gets the events that happen while it collects; the flow completes when the
     * screener is closed. Events are buffered without bound, so a slow collector never delays the
     * screener or loses a segment.
     */
    val events: Flow<ScreenerEvent> = callbackFlow {
        val subscriber = EventDispatcher.Subscriber({ trySend(it) }, { channel.close() })
        dispatcher.subscribe(subscriber)
        awaitClose { dispatcher.unsubscribe(subscriber) }
    }.buffer(Channel.UNLIMITED)

    private inline fun <T> call(f: (Long) -> T): T = lock.read {
        val h = handle
        check(h != 0L) { "the screener is closed" }
        f(h)
    }

    /**
     * A submit's outcome. Never [SubmitResult.REJECTED] or [SubmitResult.CLOSED]: the native side
     * throws for a malformed frame and for a closed screener, as for every other call.
     */
    private fun result(code: Int): SubmitResult = SubmitResult.entries[code]

    /**
     * Offers an Android `YUV_420_888` frame (CameraX `ImageProxy` / Camera2 `Image` planes) without
     * copying it in Kotlin: the planes are read in place, bounds-checked against each buffer's
     * capacity. The buffers must be direct and must not be written while this runs; they are free
     * again when it returns.
     *
     * @param rotationDegrees the clockwise rotation that makes the frame upright (0, 90, 180, 270;
     *   `ImageInfo.rotationDegrees`)
     * @param timestampUs the camera's monotonic timestamp in microseconds
     * @throws InvalidFrameException for a malformed frame (it is counted as rejected)
     * @throws IllegalStateException after [close]
     */
    @JvmOverloads
    fun submitYuv420(
        width: Int,
        height: Int,
        y: ByteBuffer,
        yRowStride: Int,
        u: ByteBuffer,
        v: ByteBuffer,
        uvRowStride: Int,
        uvPixelStride: Int,
        rotationDegrees: Int,
        timestampUs: Long,
        mirror: Boolean = false,
        matrix: ColorMatrix = ColorMatrix.BT601,
        range: ColorRange = ColorRange.FULL,
    ): SubmitResult = result(
        call {
            Native.submitYuv420(
                it, width, height, y, yRowStride, u, v, uvRowStride, uvPixelStride,
                rotationDegrees, mirror, matrix.ordinal, range.ordinal, timestampUs,
            )
        },
    )

    /**
     * Lends an Android `YUV_420_888` frame (a Camera2 `Image`, a CameraX `ImageProxy`) to the
     * screener instead of having it copied: a frame taken for scoring is read in place on the
     * screener's worker thread, so this call costs the same whatever the frame size (a copied 1080p
     * frame is 3.1 MB on the camera thread).
     *
     * [release] runs exactly once, when the screener no longer reads the planes: before this
     * returns for a frame it does not take (skipped, malformed, closed: also when this throws), and
     * later, on the worker thread or the thread replacing or closing, for one it takes. Close the
     * image there (`release = image::close`). Until then the planes must not be written, and the
     * image must stay open. The screener keeps at most three lent frames at once (one waiting, one
     * being scored, and one during a submit that replaces the waiting one), so the camera's image
     * pool needs three images for it besides those the app keeps (`ImageReader` `maxImages`,
     * CameraX `STRATEGY_BLOCK_PRODUCER` with `setImageQueueDepth`). [release] must only release:
     * it may run inside this call or inside [close].
     *
     * @throws InvalidFrameException for a malformed frame (it is counted as rejected; released)
     * @throws IllegalStateException after [close] (released)
     */
    @JvmOverloads
    fun lendYuv420(
        width: Int,
        height: Int,
        y: ByteBuffer,
        yRowStride: Int,
        u: ByteBuffer,
        v: ByteBuffer,
        uvRowStride: Int,
        uvPixelStride: Int,
        rotationDegrees: Int,
        timestampUs: Long,
        mirror: Boolean = false,
        matrix: ColorMatrix = ColorMatrix.BT601,
        range: ColorRange = ColorRange.FULL,
        release: Runnable,
    ): SubmitResult {
        val lease = Lease(release)
        try {
            return result(
                call {
                    Native.lendYuv420(
                        it, width, height, y, yRowStride, u, v, uvRowStride, uvPixelStride,
                        rotationDegrees, mirror, matrix.ordinal, range.ordinal, timestampUs, lease,
                    )
                },
            )
        } catch (t: Throwable) {
            // The native side releases on every path it reaches; a closed screener never gets
            // there. A lease released already stays so.
            lease.once()
            throw t
        }
    }

    /**
     * Offers an NV21 frame in a byte array (Camera1 previews, tightly packed: `width * height`
     * luma bytes, then interleaved V/U rows). The array is read in place; it may be reused when this
     * returns.
     *
     * @throws InvalidFrameException for a malformed frame (it is counted as rejected)
     * @throws IllegalStateException after [close]
     */
    @JvmOverloads
    fun submitNv21(
        data: ByteArray,
        width: Int,
        height: Int,
        rotationDegrees: Int,
        timestampUs: Long,
        mirror: Boolean = false,
        matrix: ColorMatrix = ColorMatrix.BT601,
        range: ColorRange = ColorRange.FULL,
    ): SubmitResult = result(
        call {
            Native.submitNv21(
                it, data, width, height, rotationDegrees, mirror, matrix.ordinal, range.ordinal,
                timestampUs,
            )
        },
    )

    /**
     * Offers a packed RGBA frame in a direct buffer (`ImageAnalysis.OUTPUT_IMAGE_FORMAT_RGBA_8888`,
     * or a `Bitmap` copied with `copyPixelsToBuffer`), `rowStride` bytes per row.
     *
     * @throws InvalidFrameException for a malformed frame (it is counted as rejected)
     * @throws IllegalStateException after [close]
     */
    @JvmOverloads
    fun submitRgba(
        buffer: ByteBuffer,
        width: Int,
        height: Int,
        rowStride: Int,
        rotationDegrees: Int,
        timestampUs: Long,
        mirror: Boolean = false,
    ): SubmitResult = result(
        call {
            Native.submitRgba(it, buffer, width, height, rowStride, rotationDegrees, mirror, timestampUs)
        },
    )

    /**
     * Reports waiting for delivery, oldest first, including those an earlier screener left in the
     * same outbox.
     */
    fun pendingReports(): List<PendingReport> = call { Native.pendingReports(it).toList() }

    /**
     * The JSON of a pending report (schema `prescreen.segment-report/1`), to upload with the app's
     * own HTTP stack, using its id as the idempotency key.
     *
     * @throws UnknownReportException when no pending report has this id
     * @throws StorageException when the file cannot be read
     */
    fun readReport(reportId: String): ByteArray = call { Native.readReport(it, reportId) }

    /**
     * Removes a delivered report from the outbox. Returns false when no report had this id (for
     * example, acked already).
     *
     * @throws IllegalArgumentException for a string that is not a report id
     */
    fun ack(reportId: String): Boolean = call { Native.ack(it, reportId) }

    /** A snapshot of the counters. */
    fun metrics(): Metrics = call { Metrics.fromNative(Native.metrics(it)) }

    /**
     * Blocks until every frame taken so far has been scored and its events handed to the events
     * thread. For replaying recorded streams and for tests; a live camera never needs it.
     */
    fun waitIdle() = call { Native.waitIdle(it) }

    /**
     * Scores the frame still waiting, closes open segments and stores their reports, delivers the
     * last events, completes [events] and frees the native side. Idempotent: later calls return at
     * once. Calls racing with it either finish normally or throw [IllegalStateException].
     */
    override fun close() {
        if (!closing.compareAndSet(false, true)) return
        // Finished under the read lock, so the listener may still call in while the last events
        // drain (it then gets IllegalStateException); freed under the write lock, which waits for
        // every call in flight.
        try {
            val final = lock.read { handle.takeIf { it != 0L }?.let { Native.finish(it) } }
            finalMetrics = final?.let { Metrics.fromNative(it) }
        } finally {
            lock.write {
                Native.free(handle)
                handle = 0
            }
            dispatcher.complete()
        }
    }

    /** The metrics at [close] (null before). */
    @Volatile
    var finalMetrics: Metrics? = null
        private set

    /**
     * The release of one lent frame: runs the app's release once, however often it is run (the
     * native side runs it when the engine drops the frame; [lendYuv420] when the call failed before
     * the native side took it).
     */
    internal class Lease(private val release: Runnable) : Runnable {
        private val done = AtomicBoolean(false)

        /** Run by the native side when the engine drops the frame. */
        override fun run() {
            if (!once()) nativeRepeats.incrementAndGet()
        }

        /** Runs the app's release unless it ran already; true when this call ran it. */
        fun once(): Boolean = done.compareAndSet(false, true).also { if (it) release.run() }

        companion object {
            /** Native runs of a lease already released: a bug if ever above 0 (the tests check). */
            val nativeRepeats = AtomicLong()
        }
    }

    companion object {
        /**
         * Opens a screener: loads and verifies the model (checksum, inputs and outputs, golden
         * self-test), reads the policy, opens the outbox and starts the worker and events threads.
         *
         * @param listener called on the events thread for every event (optional: see [events])
         * @throws ModelLoadException, PolicyException, StorageException, GpuUnavailableException
         * @throws IllegalArgumentException for an empty stream id, a negative budget or a thread
         *   count outside 1 to 16
         */
        @JvmStatic
        @JvmOverloads
        fun open(config: ScreenerConfig, listener: ScreenerListener? = null): Screener {
            val dispatcher = EventDispatcher(listener)
            val handle = Native.open(
                config.modelDir, config.policyPath, config.outboxDir, config.streamId,
                config.backend.ordinal, config.variant.ordinal, config.emitScores,
                config.outboxBudgetBytes, config.deviceClass, config.inferenceThreads, dispatcher,
            )
            return Screener(handle, dispatcher)
        }

        /**
         * `[sessions alive, JNI global references held, bytes on the native heap]` of the native
         * library in this process, for leak checks and diagnostics. The heap figure counts every
         * allocation of the library's Rust code (model, engine buffers, outbox), not the JVM's.
         */
        @JvmStatic
        fun nativeLiveObjects(): LongArray = Native.liveObjects()
    }
}
