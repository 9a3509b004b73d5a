package dev.prescreen

import java.util.concurrent.CopyOnWriteArrayList
import java.util.logging.Level
import java.util.logging.Logger

/**
 * Turns the native library's flattened events into [ScreenerEvent]s and hands them to the
 * screener's listener and to every collector of [Screener.events]. Native code holds one global
 * reference to it, released when the screener closes; it holds no reference to the [Screener].
 */
internal class EventDispatcher(private val listener: ScreenerListener?) {
    private val subscribers = CopyOnWriteArrayList<Subscriber>()

    @Volatile
    private var completed = false

    /** A [Screener.events] collector: gets each event, and `done` once the screener closed. */
    class Subscriber(val send: (ScreenerEvent) -> Unit, val done: () -> Unit)

    fun subscribe(s: Subscriber) {
        subscribers.add(s)
        // A collector that arrives after close completes at once.
        if (completed && subscribers.remove(s)) s.done()
    }

    fun unsubscribe(s: Subscriber) {
        subscribers.remove(s)
    }

    /** Called once, after the last event was delivered. */
    fun complete() {
        completed = true
        for (s in subscribers) {
            if (subscribers.remove(s)) s.done()
        }
    }

    /** Called from native code on the events thread (kept by the consumer ProGuard rules). */
    @Suppress("unused")
    fun onNativeEvent(kind: Int, longs: LongArray, floats: FloatArray, text: String?, detail: String?) {
        val event = decode(kind, longs, floats, text.orEmpty(), detail.orEmpty()) ?: return
        try {
            listener?.onEvent(event)
        } catch (t: Throwable) {
            LOG.log(Level.WARNING, "prescreen listener threw", t)
        }
        for (s in subscribers) {
            try {
                s.send(event)
            } catch (t: Throwable) {
                LOG.log(Level.WARNING, "prescreen event collector threw", t)
            }
        }
    }

    private fun decode(kind: Int, l: LongArray, f: FloatArray, text: String, detail: String): ScreenerEvent? {
        fun segment() = Segment(
            id = l[0], label = text, startUs = l[1], endUs = l[2], peak = f[0], peakUs = l[3],
            mean = f[1], framesScored = l[4].toInt(), streamStartUs = l[5],
        )
        return when (kind) {
            SEGMENT_OPENED -> ScreenerEvent.SegmentOpened(segment())
            SEGMENT_UPDATED -> ScreenerEvent.SegmentUpdated(segment())
            SEGMENT_CLOSED -> ScreenerEvent.SegmentClosed(segment())
            REPORT_QUEUED -> ScreenerEvent.ReportQueued(text, detail)
            SCORED -> ScreenerEvent.Scored(l[0], f)
            THUMBNAILS_DROPPED -> ScreenerEvent.ThumbnailsDropped(text, l[0].toInt())
            REPORT_EVICTED -> ScreenerEvent.ReportEvicted(text)
            QUARANTINED -> ScreenerEvent.Quarantined(text, detail)
            REPORT_STORED -> ScreenerEvent.ReportStored(text)
            DEAD_LETTERED -> ScreenerEvent.DeadLettered(text, detail)
            ERROR -> ScreenerEvent.Error(text)
            else -> {
                LOG.warning("unknown prescreen event kind $kind")
                null
            }
        }
    }

    private companion object {
        val LOG: Logger = Logger.getLogger("dev.prescreen")

        // The runtime's `EventKind` numbers (prescreen_runtime::session::host), checked against
        // `Native.constants` by `ConstantsTest`.
        const val SEGMENT_OPENED = 1
        const val SEGMENT_UPDATED = 2
        const val SEGMENT_CLOSED = 3
        const val REPORT_QUEUED = 4
        const val SCORED = 5
        const val THUMBNAILS_DROPPED = 6
        const val REPORT_EVICTED = 7
        const val QUARANTINED = 8
        const val REPORT_STORED = 9
        const val DEAD_LETTERED = 10
        const val ERROR = 11
    }
}
