package dev.prescreen

/** Where frames are preprocessed. Passed to native code by ordinal (checked by `ConstantsTest`). */
enum class Backend {
    /** A hardware GPU that passes the start-up self-test, else the CPU. */
    AUTO,

    /** The GPU, or [GpuUnavailableException] at [Screener.open] when none passes the self-test. */
    GPU,

    /** The CPU only. */
    CPU,
}

/** Which of the model's files runs. Passed to native code by ordinal (checked by `ConstantsTest`). */
enum class ModelVariant {
    /** The float32 model. */
    FLOAT,

    /** The int8-quantized model. */
    INT8,
}

/** The Y'CbCr matrix of a YUV frame. Passed to native code by ordinal (checked by `ConstantsTest`). */
enum class ColorMatrix {
    /** BT.601 (most camera preview streams). */
    BT601,

    /** BT.709 (HD video). */
    BT709,
}

/** The range of a YUV frame's samples. Passed to native code by ordinal (checked by `ConstantsTest`). */
enum class ColorRange {
    /** Video range: Y in 16-235, chroma in 16-240. */
    LIMITED,

    /** Full range: 0-255 (JPEG, most Android camera YUV_420_888 output). */
    FULL,
}

/**
 * How to open a [Screener].
 *
 * @property modelDir the model's folder (its `model.toml` and the files it names)
 * @property policyPath the policy file
 * @property outboxDir where reports wait for delivery; reports left there by an earlier screener
 *   stay pending
 * @property streamId an opaque id of the stream, part of every report (not user data)
 */
data class ScreenerConfig(
    val modelDir: String,
    val policyPath: String,
    val outboxDir: String,
    val streamId: String,
    val backend: Backend = Backend.AUTO,
    val variant: ModelVariant = ModelVariant.FLOAT,
    /** Deliver a [ScreenerEvent.Scored] for every scored frame. */
    val emitScores: Boolean = false,
    /** Bytes the pending reports may take on disk. */
    val outboxBudgetBytes: Long = 32L shl 20,
    /** Written into reports; by default the OS and CPU architecture. */
    val deviceClass: String? = null,
    /**
     * Threads inference may use, 1 to 16. The default, 1, leaves the other cores to the camera,
     * encoder and UI; more threads lower latency only where cores are idle.
     */
    val inferenceThreads: Int = 1,
)

/**
 * What happened to a submitted frame. The ordinals up to [SKIPPED_QUALITY] are the runtime's
 * `SubmitOutcome` codes (checked by `ConstantsTest`).
 */
enum class SubmitResult {
    /** Taken for scoring. */
    ACCEPTED,

    /** Taken for scoring; a frame still waiting was dropped for it. */
    ACCEPTED_DROPPING_PREVIOUS,

    /** Not due at the policy's sampling rate. */
    SKIPPED_RATE,

    /** Same scene as the last scored frame. */
    SKIPPED_GATE,

    /**
     * Too blurred or too small to judge (the policy's `quality` gate): not scored, so it neither
     * opens nor extends a segment.
     */
    SKIPPED_QUALITY,

    /**
     * Malformed. Never returned by a submit, which throws [InvalidFrameException]; reported by
     * `ScreenerAnalyzer`, which catches it.
     */
    REJECTED,

    /**
     * The screener is closed. Never returned by a submit, which throws [IllegalStateException];
     * reported by `ScreenerAnalyzer`, which catches it.
     */
    CLOSED,
}

/**
 * A flagged segment as known when an event is emitted. Times are the frames' timestamps in
 * microseconds.
 *
 * @property label the label flagged
 * @property startUs start, with the policy's pre-roll
 * @property endUs end: the last frame above `exit` (plus post-roll once closed)
 * @property peak the highest smoothed score
 * @property peakUs the time of the peak
 * @property mean the mean smoothed score over the frames scored inside the segment
 * @property framesScored frames scored inside the segment
 */
data class Segment(
    /** Sequence number of the segment in this stream, from 1. */
    val id: Long,
    val label: String,
    val startUs: Long,
    val endUs: Long,
    val peak: Float,
    val peakUs: Long,
    val mean: Float,
    val framesScored: Int,
    /** Timestamp of the stream's first scored frame. */
    val streamStartUs: Long,
)

/** What a [Screener] tells the app, on its events thread, in order. */
sealed class ScreenerEvent {
    /** A run above the label's `enter` threshold lasted the minimum duration. */
    data class SegmentOpened(val segment: Segment) : ScreenerEvent()

    /** The peak of an open segment moved. */
    data class SegmentUpdated(val segment: Segment) : ScreenerEvent()

    /** The segment ended; its report follows as [ReportQueued]. */
    data class SegmentClosed(val segment: Segment) : ScreenerEvent()

    /** A closed segment's report is durably in the outbox: see [Screener.pendingReports]. */
    data class ReportQueued(val reportId: String, val label: String) : ScreenerEvent()

    /** The scores of one frame, in [Screener.labels] order (with [ScreenerConfig.emitScores]). */
    class Scored(val timestampUs: Long, val scores: FloatArray) : ScreenerEvent() {
        override fun toString() = "Scored(timestampUs=$timestampUs, scores=${scores.contentToString()})"
    }

    /** A report was written to the outbox. */
    data class ReportStored(val reportId: String) : ScreenerEvent()

    /** The outbox budget removed a report's thumbnails (its metadata stays pending). */
    data class ThumbnailsDropped(val reportId: String, val count: Int) : ScreenerEvent()

    /** The outbox budget removed a whole report. */
    data class ReportEvicted(val reportId: String) : ScreenerEvent()

    /** A file in the outbox was not a valid report and was set aside. */
    data class Quarantined(val file: String, val reason: String) : ScreenerEvent()

    /** A report was refused for good by a server (desktop uploader only). */
    data class DeadLettered(val reportId: String, val reason: String) : ScreenerEvent()

    /** A frame could not be scored or a report not stored yet; the screener goes on. */
    data class Error(val message: String) : ScreenerEvent()
}

/** Receives a [Screener]'s events on its events thread (never the camera thread). */
fun interface ScreenerListener {
    /** Called once per event, in order. Exceptions thrown here are logged and ignored. */
    fun onEvent(event: ScreenerEvent)
}

/** A report waiting for delivery: read it with [Screener.readReport], then [Screener.ack] it. */
class PendingReport(
    /** The report's id, also the idempotency key for the server. */
    val reportId: String,
    /** Its size in bytes. */
    val bytes: Long,
    /** When it was written, in Unix milliseconds. */
    val createdUnixMillis: Long,
) {
    override fun toString() = "PendingReport($reportId, $bytes bytes)"
}

/**
 * A screener's counters: the runtime's `MetricsSummary`, field for field (iOS's `ScreenerMetrics`
 * has the same fields). Every frame submitted ends in exactly one of `rejected`, `rateSkipped`,
 * `gated`, `lowQuality`, `dropped`, `scored`, `failed`. Latencies are in microseconds.
 *
 * @property seen frames submitted
 * @property rejected malformed frames
 * @property rateSkipped frames not due at the policy's sampling rate
 * @property gated frames skipped by the scene gate (same scene as the last scored one)
 * @property lowQuality frames skipped by the quality gate (too blurred or too small to judge)
 * @property dropped frames replaced by a newer one before the worker got to them
 * @property scored frames scored
 * @property failed frames whose preprocessing or inference failed
 * @property submitP50Us median time a submit call took
 * @property submitP99Us 99th percentile of a submit call
 * @property preprocessP50Us median preprocessing time of a scored frame
 * @property preprocessP99Us 99th percentile of preprocessing
 * @property inferP50Us median inference time
 * @property inferP99Us 99th percentile of inference
 * @property gpuFallbacks times the GPU failed mid-stream and the CPU took over
 * @property pendingReports reports waiting in the outbox
 * @property pendingBytes bytes they take on disk
 * @property reportsStored reports written since the outbox opened
 * @property reportsAcked reports acked since the outbox opened
 * @property thumbnailsDropped thumbnails the disk budget removed
 * @property reportsEvicted whole reports the disk budget removed
 * @property quarantined files set aside as invalid
 * @property writeFailures outbox writes that failed (the report is retried)
 * @property reportsLost reports given up on because the outbox kept failing
 */
data class Metrics(
    val seen: Long,
    val rejected: Long,
    val rateSkipped: Long,
    val gated: Long,
    val lowQuality: Long,
    val dropped: Long,
    val scored: Long,
    val failed: Long,
    val submitP50Us: Long,
    val submitP99Us: Long,
    val preprocessP50Us: Long,
    val preprocessP99Us: Long,
    val inferP50Us: Long,
    val inferP99Us: Long,
    /** `"cpu"`, `"gpu"`, or null before the worker started. */
    val backend: String?,
    val gpuFallbacks: Long,
    val pendingReports: Long,
    val pendingBytes: Long,
    val reportsStored: Long,
    val reportsAcked: Long,
    val thumbnailsDropped: Long,
    val reportsEvicted: Long,
    val quarantined: Long,
    val writeFailures: Long,
    val reportsLost: Long,
) {
    /** True when every frame seen is in exactly one other counter. */
    val accounted: Boolean
        get() = seen == rejected + rateSkipped + gated + lowQuality + dropped + scored + failed

    internal companion object {
        /** Values in the native array, in the order of the runtime's `MetricsSummary::FIELDS`. */
        const val SIZE = 25

        /** The native array as [Metrics] (the order is checked by `ConstantsTest`). */
        fun fromNative(v: LongArray): Metrics {
            check(v.size == SIZE) { "native metrics have ${v.size} values, expected $SIZE" }
            return Metrics(
                seen = v[0], rejected = v[1], rateSkipped = v[2], gated = v[3], lowQuality = v[4],
                dropped = v[5], scored = v[6], failed = v[7], submitP50Us = v[8], submitP99Us = v[9],
                preprocessP50Us = v[10], preprocessP99Us = v[11], inferP50Us = v[12],
                inferP99Us = v[13], backend = when (v[14]) { 0L -> "cpu"; 1L -> "gpu"; else -> null },
                gpuFallbacks = v[15], pendingReports = v[16], pendingBytes = v[17],
                reportsStored = v[18], reportsAcked = v[19], thumbnailsDropped = v[20],
                reportsEvicted = v[21], quarantined = v[22], writeFailures = v[23],
                reportsLost = v[24],
            )
        }
    }
}
