package dev.prescreen

import java.nio.ByteBuffer

/**
 * The native functions of `libprescreen_android` (mobile/android/src/lib.rs). Only [Screener]
 * calls them, always with a live handle, under its lock.
 */
internal object Native {
    init {
        System.loadLibrary("prescreen_android")
    }

    @JvmStatic
    external fun open(
        modelDir: String,
        policyPath: String,
        outboxDir: String,
        streamId: String,
        backend: Int,
        variant: Int,
        emitScores: Boolean,
        budgetBytes: Long,
        deviceClass: String?,
        inferenceThreads: Int,
        dispatcher: EventDispatcher,
    ): Long

    @JvmStatic
    external fun submitYuv420(
        handle: Long,
        width: Int,
        height: Int,
        y: ByteBuffer?,
        yRowStride: Int,
        u: ByteBuffer?,
        v: ByteBuffer?,
        uvRowStride: Int,
        uvPixelStride: Int,
        rotationDegrees: Int,
        mirror: Boolean,
        matrix: Int,
        range: Int,
        timestampUs: Long,
    ): Int

    /** As [submitYuv420], lending the planes: the native side runs [lease] when done with them. */
    @JvmStatic
    external fun lendYuv420(
        handle: Long,
        width: Int,
        height: Int,
        y: ByteBuffer?,
        yRowStride: Int,
        u: ByteBuffer?,
        v: ByteBuffer?,
        uvRowStride: Int,
        uvPixelStride: Int,
        rotationDegrees: Int,
        mirror: Boolean,
        matrix: Int,
        range: Int,
        timestampUs: Long,
        lease: Screener.Lease,
    ): Int

    @JvmStatic
    external fun submitNv21(
        handle: Long,
        data: ByteArray?,
        width: Int,
        height: Int,
        rotationDegrees: Int,
        mirror: Boolean,
        matrix: Int,
        range: Int,
        timestampUs: Long,
    ): Int

    @JvmStatic
    external fun submitRgba(
        handle: Long,
        buffer: ByteBuffer?,
        width: Int,
        height: Int,
        rowStride: Int,
        rotationDegrees: Int,
        mirror: Boolean,
        timestampUs: Long,
    ): Int

    @JvmStatic
    external fun labels(handle: Long): Array<String>

    @JvmStatic
    external fun categories(handle: Long): Array<String?>

    @JvmStatic
    external fun pendingReports(handle: Long): Array<PendingReport>

    @JvmStatic
    external fun readReport(handle: Long, reportId: String): ByteArray

    @JvmStatic
    external fun ack(handle: Long, reportId: String): Boolean

    @JvmStatic
    external fun metrics(handle: Long): LongArray

    @JvmStatic
    external fun waitIdle(handle: Long)

    @JvmStatic
    external fun finish(handle: Long): LongArray?

    /** Frees the session; throws [IllegalStateException] and keeps it while a call on it runs. */
    @JvmStatic
    external fun free(handle: Long)

    /** Calls running on the handle now (for tests and diagnostics). */
    @JvmStatic
    external fun callsInFlight(handle: Long): Long

    @JvmStatic
    external fun liveObjects(): LongArray

    /**
     * Every number the native side and Kotlin share, as `group.NAME=value` (event kinds, the
     * metrics array order, enum ordinals): the runtime's `host_constants`, for the tests.
     */
    @JvmStatic
    external fun constants(): Array<String>
}
