package dev.prescreen

import java.nio.ByteBuffer
import java.util.Collections
import java.util.concurrent.CountDownLatch
import java.util.concurrent.TimeUnit
import java.util.concurrent.atomic.AtomicLong
import kotlin.concurrent.thread
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.async
import kotlinx.coroutines.flow.toList
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import kotlinx.coroutines.yield
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows

class ScreenerTest {
    private val w = 320
    private val h = 240

    /** 10 s at 30 fps with red during [2, 4) s and [6, 7.5) s, fed frame by frame. */
    private fun streamRedIntervals(s: Screener) {
        for (i in 0 until 300) {
            val t = i * 1_000_000L / 30
            val red = t in 2_000_000 until 4_000_000 || t in 6_000_000 until 7_500_000
            // Alternate the three frame kinds so every path carries the stream.
            when (i % 3) {
                0 -> s.submitNv21(Streams.nv21(w, h, red), w, h, 0, t)
                1 -> Streams.Yuv420(w, h, red).submit(s, t, rotation = 0)
                else -> s.submitRgba(Streams.rgba(w, h, red), w, h, w * 4, 0, t)
            }
            s.waitIdle()
        }
    }

    @Test
    fun `a stream with known red intervals gives its segments and reports, and ack removes them`() {
        val outbox = Streams.tempDir("outbox")
        val heard = Collections.synchronizedList(mutableListOf<ScreenerEvent>())
        val s = Screener.open(Streams.config(outbox)) { heard.add(it) }
        assertEquals(listOf("other", "red"), s.labels)
        // The test policy flags only "red", in Rekognition's "Visually Disturbing" category.
        assertEquals(listOf(null, "Visually Disturbing"), s.categories)
        val flowed = runBlocking(Dispatchers.Default) {
            val collected = async { s.events.toList() }
            yield()
            Thread.sleep(100) // let the collector subscribe before the stream starts
            streamRedIntervals(s)
            val pending = s.pendingReports()
            assertEquals(2, pending.size, "$pending")
            s.close()
            withTimeout(10_000) { collected.await() }
        }
        val metrics = s.finalMetrics!!
        assertEquals(300, metrics.seen)
        assertTrue(metrics.accounted, "$metrics")
        assertEquals(0, metrics.rejected)
        assertEquals(2, metrics.pendingReports)

        val opened = heard.filterIsInstance<ScreenerEvent.SegmentOpened>().map { it.segment }
        val closed = heard.filterIsInstance<ScreenerEvent.SegmentClosed>().map { it.segment }
        val queued = heard.filterIsInstance<ScreenerEvent.ReportQueued>()
        assertEquals(2, opened.size, "$heard")
        assertEquals(2, closed.size, "$heard")
        assertEquals(listOf("red", "red"), closed.map { it.label })
        for ((seg, truth) in closed.zip(listOf(2_000_000L to 4_000_000L, 6_000_000L to 7_500_000L))) {
            // Within one sampling interval of the truth (200 ms at the base rate).
            assertTrue(Math.abs(seg.startUs - truth.first) <= 200_000, "$seg")
            assertTrue(Math.abs(seg.endUs - truth.second) <= 200_000, "$seg")
            assertTrue(seg.peak > 0.9f && seg.framesScored > 0, "$seg")
        }
        assertEquals(2, queued.size)
        assertEquals(listOf("red", "red"), queued.map { it.label })
        // Each report follows its segment's Closed event.
        val firstClose = heard.indexOfFirst { it is ScreenerEvent.SegmentClosed }
        assertTrue(heard.indexOf(queued[0]) > firstClose)
        // The Flow saw exactly what the listener saw.
        assertEquals(heard.toList().map { it.toString() }, flowed.map { it.toString() })

        // A new screener on the same outbox sees both reports; ack removes one for good.
        val ids = queued.map { it.reportId }
        Screener.open(Streams.config(outbox, "second")).use { s2 ->
            val pending = s2.pendingReports()
            assertEquals(ids.toSet(), pending.map { it.reportId }.toSet())
            val json = String(s2.readReport(ids[0]))
            assertTrue(json.contains("\"report_id\":\"${ids[0]}\""), json.take(200))
            assertTrue(json.contains("\"label\":\"red\""))
            assertTrue(json.contains("\"stream_id\":\"android-test\""))
            assertTrue(s2.ack(ids[0]))
            assertFalse(s2.ack(ids[0]))
            assertEquals(listOf(ids[1]), s2.pendingReports().map { it.reportId })
            assertThrows<UnknownReportException> { s2.readReport(ids[0]) }
        }
        Screener.open(Streams.config(outbox, "third")).use { s3 ->
            assertEquals(listOf(ids[1]), s3.pendingReports().map { it.reportId })
        }
        outbox.deleteRecursively()
    }

    @Test
    fun `every malformed frame throws InvalidFrameException and the screener keeps working`() {
        val outbox = Streams.tempDir("outbox")
        Screener.open(Streams.config(outbox)).use { s ->
            val good = Streams.Yuv420(w, h, red = false)
            var t = 0L
            fun next(): Long { t += 200_000; return t }
            val bad: List<Pair<String, () -> Unit>> = listOf(
                "short Y buffer" to {
                    s.submitYuv420(w, h, ByteBuffer.allocateDirect(w * h / 2), good.yRowStride, good.u, good.v, good.uvRowStride, 2, 0, next())
                },
                "heap Y buffer" to {
                    s.submitYuv420(w, h, ByteBuffer.allocate(good.y.capacity()), good.yRowStride, good.u, good.v, good.uvRowStride, 2, 0, next())
                },
                "heap chroma buffer" to {
                    s.submitYuv420(w, h, good.y, good.yRowStride, ByteBuffer.allocate(w * h), good.v, good.uvRowStride, 2, 0, next())
                },
                "Y row stride shorter than a row" to {
                    s.submitYuv420(w, h, good.y, w - 1, good.u, good.v, good.uvRowStride, 2, 0, next())
                },
                "chroma pixel stride 0" to {
                    s.submitYuv420(w, h, good.y, good.yRowStride, good.u, good.v, good.uvRowStride, 0, 0, next())
                },
                "negative row stride" to {
                    s.submitYuv420(w, h, good.y, -good.yRowStride, good.u, good.v, good.uvRowStride, 2, 0, next())
                },
                "zero width" to {
                    s.submitYuv420(0, h, good.y, good.yRowStride, good.u, good.v, good.uvRowStride, 2, 0, next())
                },
                "negative height" to { s.submitNv21(Streams.nv21(w, h, false), w, -h, 0, next()) },
                "absurd size" to { s.submitNv21(ByteArray(16), 1 shl 20, 1 shl 20, 0, next()) },
                "short NV21 array" to { s.submitNv21(ByteArray(w * h), w, h, 0, next()) },
                "zero-size NV21" to { s.submitNv21(ByteArray(0), 0, 0, 0, next()) },
                "rotation 45" to { s.submitNv21(Streams.nv21(w, h, false), w, h, 45, next()) },
                "heap RGBA buffer" to { s.submitRgba(ByteBuffer.allocate(w * h * 4), w, h, w * 4, 0, next()) },
                "RGBA stride too small" to { s.submitRgba(Streams.rgba(w, h, false), w, h, w * 3, 0, next()) },
                "short RGBA buffer" to { s.submitRgba(Streams.rgba(w, h / 2, false), w, h, w * 4, 0, next()) },
                // Built, then refused by the engine: thrown like the others (iOS throws InvalidFrame).
                "timestamp out of range" to { s.submitNv21(Streams.nv21(w, h, false), w, h, 0, 1L shl 62) },
            )
            for ((name, submit) in bad) {
                val e = assertThrows<InvalidFrameException>(name) { submit() }
                assertTrue(e.message!!.isNotBlank(), name)
                // Still working: a good frame goes through.
                val r = good.submit(s, next())
                assertTrue(r != SubmitResult.CLOSED && r != SubmitResult.REJECTED, "$name then $r")
                s.waitIdle()
            }
            val m = s.metrics()
            assertEquals(bad.size.toLong(), m.rejected, "$m")
            assertEquals(2L * bad.size, m.seen)
            assertTrue(m.accounted, "$m")
            assertTrue(m.scored > 0, "$m")
            // Other arguments.
            assertThrows<IllegalArgumentException> { s.ack("../../etc/passwd") }
            assertThrows<UnknownReportException> { s.readReport("0123456789abcdef0123456789abcdef") }
        }
        assertThrows<ModelLoadException> {
            Screener.open(Streams.config(outbox).copy(modelDir = Streams.tempDir("empty").path))
        }
        assertThrows<PolicyException> {
            Screener.open(Streams.config(outbox).copy(policyPath = "/nonexistent/policy.toml"))
        }
        assertThrows<IllegalArgumentException> {
            Screener.open(Streams.config(outbox).copy(streamId = ""))
        }
        assertThrows<IllegalArgumentException> {
            Screener.open(Streams.config(outbox).copy(outboxBudgetBytes = -1))
        }
        for (threads in listOf(-1, 0, 17)) {
            assertThrows<IllegalArgumentException>("$threads threads") {
                Screener.open(Streams.config(outbox).copy(inferenceThreads = threads))
            }
        }
        // Two inference threads: a private pool inside the native library, released on close.
        Screener.open(Streams.config(outbox).copy(inferenceThreads = 2)).use { s ->
            Streams.Yuv420(64, 48, false).submit(s, 3)
            s.waitIdle()
            assertTrue(s.metrics().scored > 0)
        }
        assertEquals(0L, Screener.nativeLiveObjects()[0])
        outbox.deleteRecursively()
    }

    @Test
    fun `eight threads submit for ten seconds and every frame is accounted for`() {
        val outbox = Streams.tempDir("outbox")
        val s = Screener.open(Streams.config(outbox).copy(emitScores = true))
        val clock = AtomicLong()
        val calls = AtomicLong()
        val threw = AtomicLong()
        val deadline = System.nanoTime() + 10_000_000_000L
        val threads = (0 until 8).map { id ->
            thread(name = "submitter-$id") {
                val yuv = Streams.Yuv420(w, h, red = id % 2 == 0)
                val nv21 = Streams.nv21(w, h, red = id % 3 == 0)
                var n = 0
                while (System.nanoTime() < deadline) {
                    val t = clock.addAndGet(33_333)
                    calls.incrementAndGet()
                    try {
                        when (n++ % 4) {
                            0 -> yuv.submit(s, t)
                            1 -> s.submitNv21(nv21, w, h, 270, t)
                            2 -> s.submitNv21(nv21, w, h + 2, 0, t) // malformed: array too short
                            else -> yuv.submit(s, t, rotation = 180)
                        }
                    } catch (e: InvalidFrameException) {
                        threw.incrementAndGet()
                    }
                }
            }
        }
        threads.forEach { it.join() }
        s.waitIdle()
        val m = s.metrics()
        println("8 threads x 10 s: ${calls.get()} submits, $m")
        assertEquals(calls.get(), m.seen)
        assertEquals(threw.get(), m.rejected)
        assertTrue(m.accounted, "$m")
        assertTrue(m.scored > 0, "$m")
        s.close()
        assertTrue(s.finalMetrics!!.accounted)
        outbox.deleteRecursively()
    }

    @Test
    fun `close races with submit, twice is a no-op, and use after close throws`() {
        repeat(5) { round ->
            val outbox = Streams.tempDir("outbox")
            val s = Screener.open(Streams.config(outbox))
            val start = CountDownLatch(1)
            val after = AtomicLong()
            val submitters = (0 until 4).map { id ->
                thread {
                    val yuv = Streams.Yuv420(w, h, red = id % 2 == 0)
                    start.await()
                    var t = id.toLong()
                    while (true) {
                        try {
                            yuv.submit(s, t)
                            t += 10_000
                        } catch (e: IllegalStateException) {
                            after.incrementAndGet()
                            break
                        }
                    }
                }
            }
            start.countDown()
            Thread.sleep(50L + round * 20)
            val closers = (0 until 3).map { thread { s.close() } }
            closers.forEach { it.join() }
            submitters.forEach { it.join() }
            assertEquals(4, after.get())
            s.close() // again: nothing happens
            assertThrows<IllegalStateException> { Streams.Yuv420(w, h, false).submit(s, 1) }
            assertThrows<IllegalStateException> { s.pendingReports() }
            assertThrows<IllegalStateException> { s.metrics() }
            assertThrows<IllegalStateException> { s.ack("0123456789abcdef0123456789abcdef") }
            outbox.deleteRecursively()
        }
        assertEquals(0L, Screener.nativeLiveObjects()[0])
    }

    /**
     * The native side counts the calls running on a handle, and `free` refuses while any is: what
     * a broken lock in [Screener.close] (say a read lock around `free`) would otherwise turn into
     * memory freed under a running call. `Native.finish` is held in flight deterministically: it
     * joins the events thread, which waits in the listener until the test lets it go.
     */
    @Test
    fun `free refuses while a native call on the handle is running`() {
        val outbox = Streams.tempDir("outbox")
        val c = Streams.config(outbox).copy(emitScores = true)
        val inListener = CountDownLatch(1)
        val release = CountDownLatch(1)
        val dispatcher = EventDispatcher { event ->
            if (inListener.count > 0L) {
                inListener.countDown()
                release.await()
            }
        }
        val sessions = Native.liveObjects()[0]
        val handle = Native.open(
            c.modelDir, c.policyPath, c.outboxDir, c.streamId, c.backend.ordinal, c.variant.ordinal,
            true, c.outboxBudgetBytes, c.deviceClass, c.inferenceThreads, dispatcher,
        )
        assertEquals(sessions + 1, Native.liveObjects()[0])
        assertEquals(0L, Native.callsInFlight(handle))
        Native.submitNv21(handle, Streams.nv21(w, h, red = true), w, h, 0, false, 0, 0, 0)
        // A guard against a hang, not a timing assumption: the first event comes at once.
        assertTrue(inListener.await(120, TimeUnit.SECONDS), "no event from the first frame")
        val finishing = thread { Native.finish(handle) }
        // finish cannot return while the listener is held; the deadline only turns a counting bug
        // into a failure instead of a hang.
        val deadline = System.nanoTime() + 120_000_000_000L
        while (Native.callsInFlight(handle) == 0L) {
            assertTrue(finishing.isAlive, "finish returned while the listener was held")
            assertTrue(System.nanoTime() < deadline, "finish never counted as a call in flight")
            Thread.sleep(1)
        }
        val refused = assertThrows<IllegalStateException> { Native.free(handle) }
        assertTrue("running" in refused.message.orEmpty(), "${refused.message}")
        assertEquals(sessions + 1, Native.liveObjects()[0], "the session was kept")
        release.countDown()
        finishing.join()
        assertEquals(0L, Native.callsInFlight(handle))
        // Finished, not yet freed: the native side itself throws the closed error for every call,
        // a submit included (as iOS throws `Closed`), rather than returning a code.
        assertThrows<IllegalStateException> {
            Native.submitNv21(handle, Streams.nv21(w, h, red = true), w, h, 0, false, 0, 0, 1)
        }
        assertThrows<IllegalStateException> { Native.metrics(handle) }
        Native.free(handle)
        assertEquals(sessions, Native.liveObjects()[0])
        dispatcher.complete()
        outbox.deleteRecursively()
    }

    @Test
    fun `a listener that calls back into the screener or throws does not break it`() {
        val outbox = Streams.tempDir("outbox")
        val seen = Collections.synchronizedList(mutableListOf<Int>())
        lateinit var s: Screener
        s = Screener.open(Streams.config(outbox)) { event ->
            if (event is ScreenerEvent.ReportQueued) {
                // Apps typically look at the outbox right here.
                try {
                    seen.add(s.pendingReports().size)
                } catch (e: IllegalStateException) {
                    seen.add(-1) // the screener was closing
                }
                throw RuntimeException("a listener bug")
            }
        }
        streamRedIntervals(s)
        s.close()
        assertEquals(2, seen.size, "$seen")
        assertTrue(seen.all { it == -1 || it >= 1 }, "$seen")
        outbox.deleteRecursively()
    }

    @Test
    fun `10000 submits and 100 open-close cycles leave native memory and global references flat`() {
        val outbox = Streams.tempDir("outbox")
        val yuv = Streams.Yuv420(w, h, red = false)
        val nv21 = Streams.nv21(w, h, red = true)
        fun cycles(n: Int, submits: Int) {
            var t = 0L
            repeat(n) {
                Screener.open(Streams.config(outbox)).use { s ->
                    assertEquals(1L, Screener.nativeLiveObjects()[0])
                    assertEquals(1L, Screener.nativeLiveObjects()[1])
                    repeat(submits) { i ->
                        t += 33_333
                        if (i % 2 == 0) yuv.submit(s, t) else s.submitNv21(nv21, w, h, 90, t)
                    }
                }
            }
        }
        fun settledRss(): Long {
            repeat(3) { System.gc(); Thread.sleep(50) }
            return Streams.rssBytes()
        }
        cycles(10, 100) // warm-up: allocator pools, JIT, class loading, lazy statics
        val heapBefore = Screener.nativeLiveObjects()[2]
        val rssBefore = settledRss()
        val heap = mutableListOf<Long>()
        repeat(4) {
            cycles(25, 100) // 100 open/close cycles and 10,000 submits in all
            heap.add(Screener.nativeLiveObjects()[2])
        }
        val rssAfter = settledRss()
        // What one session holds, for scale: the bound below must be far smaller.
        val oneSession = Screener.open(Streams.config(outbox)).use { s ->
            repeat(100) { i -> yuv.submit(s, 100_000_000L + i * 33_333L) }
            s.waitIdle()
            Screener.nativeLiveObjects()[2] - heapBefore
        }
        val live = Screener.nativeLiveObjects()
        println(
            "leak check: native heap ${heapBefore / 1024} KiB -> ${heap.map { it / 1024 }} KiB after each " +
                "25 cycles; RSS ${rssBefore / 1024} KiB -> ${rssAfter / 1024} KiB; live sessions ${live[0]}, " +
                "global refs ${live[1]}; one open session holds ${oneSession / 1024} KiB",
        )
        assertEquals(0L, live[0], "sessions still alive")
        assertEquals(0L, live[1], "JNI global references still held")
        // The native heap returns to where it was: a session (model, engine buffers, outbox)
        // holds far more than 64 KiB, so not even one leaked session can hide under this bound.
        assertTrue(oneSession > 4 * 64 * 1024, "one session holds only $oneSession bytes")
        for (h in heap) assertTrue(Math.abs(h - heapBefore) < 64 * 1024, "native heap ${heapBefore} -> $heap bytes")
        // The process as a whole (JVM heap, JIT, malloc arenas of the threads that came and went)
        // settles too: 100 leaked sessions with their threads would add far more.
        assertTrue(rssAfter - rssBefore < 48L * 1024 * 1024, "RSS grew by ${(rssAfter - rssBefore) / 1024} KiB")
        outbox.deleteRecursively()
    }
}
