package dev.prescreen

import java.util.Collections
import java.util.concurrent.atomic.AtomicInteger
import org.junit.jupiter.api.AfterEach
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows

/**
 * Camera frames lent to the screener (`lendYuv420`) instead of copied: released exactly once,
 * never while the screener may still read them, and scored exactly as copied frames are.
 */
class LendTest {
    private val w = 320
    private val h = 240

    /** No lease was run twice by the native side (the Kotlin guard would hide it otherwise). */
    @AfterEach
    fun `no lease was released twice`() {
        assertEquals(0L, Screener.Lease.nativeRepeats.get())
    }

    /** A lent frame's release, counted; like a recycled camera image, its planes are zeroed. */
    private class Released(private val frame: Streams.Yuv420) : Runnable {
        val runs = AtomicInteger()

        override fun run() {
            runs.incrementAndGet()
            frame.poison()
        }
    }

    private fun scoresConfig() = Streams.config(Streams.tempDir("lend")).copy(emitScores = true)

    /** 6 s at 30 fps, red during [1, 2.5) s, one frame at a time; the scores heard, in order. */
    private fun stream(lent: Boolean, releases: MutableList<Released>): List<String> {
        val heard = Collections.synchronizedList(mutableListOf<String>())
        Screener.open(scoresConfig()) { if (it is ScreenerEvent.Scored) heard.add(it.toString()) }
            .use { s ->
                for (i in 0 until 180) {
                    val t = i * 1_000_000L / 30
                    val frame = Streams.Yuv420(w, h, t in 1_000_000 until 2_500_000)
                    if (lent) {
                        val released = Released(frame)
                        releases.add(released)
                        frame.lend(s, t, release = released)
                    } else {
                        frame.submit(s, t)
                    }
                    s.waitIdle()
                    // Scored (or skipped) and so released: none waits for the next submit.
                    if (lent) assertEquals(1, releases.last().runs.get(), "frame $i")
                }
            }
        return heard.toList()
    }

    @Test
    fun `lent frames score as copied ones and each is released once, after its last read`() {
        val releases = mutableListOf<Released>()
        val copied = stream(lent = false, releases = releases)
        val lent = stream(lent = true, releases = releases)
        assertTrue(copied.size >= 20, "$copied")
        // Equal scores: no frame was read after its release zeroed it.
        assertEquals(copied, lent)
        assertEquals(List(180) { 1 }, releases.map { it.runs.get() })
    }

    @Test
    fun `a burst of lent frames, some replaced while waiting, releases every one exactly once`() {
        val releases = mutableListOf<Released>()
        val results = mutableListOf<SubmitResult>()
        val s = Screener.open(Streams.config(Streams.tempDir("lend-burst")))
        for (i in 0 until 200) {
            // 5 fps apart so every frame is due; alternating content so the scene gate lets it by.
            val frame = Streams.Yuv420(w, h, i % 2 == 0)
            val released = Released(frame)
            releases.add(released)
            results.add(frame.lend(s, i * 200_000L, release = released))
        }
        s.close()
        val metrics = s.finalMetrics!!
        assertTrue(metrics.accounted, "$metrics")
        assertEquals(200, metrics.seen)
        assertEquals(List(200) { 1 }, releases.map { it.runs.get() })
        // Replacing a waiting frame released it on this thread; the counts show the path ran.
        val replaced = results.count { it == SubmitResult.ACCEPTED_DROPPING_PREVIOUS }
        assertEquals(metrics.dropped, replaced.toLong(), "$metrics")
    }

    @Test
    fun `a lent frame that is malformed or offered after close is released before the call throws`() {
        val refsBefore = Screener.nativeLiveObjects()[1]
        val s = Screener.open(Streams.config(Streams.tempDir("lend-bad")))
        val frame = Streams.Yuv420(w, h, false)
        val released = Released(frame)
        // A row stride too short for the width.
        assertThrows<InvalidFrameException> {
            s.lendYuv420(w, h, frame.y, w - 1, frame.u, frame.v, frame.uvRowStride, 2, 0, 0, release = released)
        }
        assertEquals(1, released.runs.get())
        // A plane that is not a direct buffer.
        val heap = Released(frame)
        assertThrows<InvalidFrameException> {
            s.lendYuv420(
                w, h, java.nio.ByteBuffer.allocate(w * h), w, frame.u, frame.v, frame.uvRowStride, 2, 0, 0,
                release = heap,
            )
        }
        assertEquals(1, heap.runs.get())
        assertEquals(2L, s.metrics().rejected)
        s.close()
        val late = Released(frame)
        assertThrows<IllegalStateException> { frame.lend(s, 1_000_000, release = late) }
        assertEquals(1, late.runs.get())
        // Every global reference the lent frames took was dropped with them.
        assertEquals(refsBefore, Screener.nativeLiveObjects()[1], "global references left")
    }

    @Test
    fun `submit latency of a 1080p frame, lent and copied`() {
        // Printed, not asserted (speed is measured in benchmarks, not tests): what a camera thread
        // pays per accepted 1920x1080 YUV_420_888 frame, copied into the engine or lent to it.
        val (fw, fh) = 1920 to 1080
        val frames = listOf(Streams.Yuv420(fw, fh, true), Streams.Yuv420(fw, fh, false))
        fun run(lent: Boolean): Metrics {
            val s = Screener.open(Streams.config(Streams.tempDir("lend-1080p")))
            for (i in 0 until 120) {
                val frame = frames[i % 2]
                val t = i * 200_000L
                val result = if (lent) frame.lend(s, t, release = {}) else frame.submit(s, t)
                assertEquals(SubmitResult.ACCEPTED, result, "frame $i")
                s.waitIdle()
            }
            s.close()
            return s.finalMetrics!!
        }
        val copied = run(lent = false)
        val lent = run(lent = true)
        for (m in listOf(copied, lent)) assertEquals(120L, m.scored, "$m")
        println(
            "submit, 1080p YUV_420_888, 120 accepted frames: copied p50 ${copied.submitP50Us} us, " +
                "p99 ${copied.submitP99Us} us; lent p50 ${lent.submitP50Us} us, p99 ${lent.submitP99Us} us",
        )
    }
}
