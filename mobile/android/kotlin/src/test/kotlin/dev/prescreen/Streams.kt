package dev.prescreen

import java.io.File
import java.nio.ByteBuffer
import java.nio.file.Files

/** The repository, the test classifier and frames with known content, shared by the tests. */
object Streams {
    val root: File = File(System.getProperty("prescreen.root") ?: "../../..").canonicalFile
    val rednessModel: String = File(root, "models/redness").path
    val rednessPolicy: String = File(root, "models/policies/redness.toml").path

    init {
        check(File(rednessModel, "redness.onnx").isFile) {
            "models/redness/redness.onnx is missing: run `make model` first"
        }
    }

    fun tempDir(prefix: String): File = Files.createTempDirectory(prefix).toFile()

    fun config(outbox: File, streamId: String = "android-test") = ScreenerConfig(
        modelDir = rednessModel,
        policyPath = rednessPolicy,
        outboxDir = outbox.path,
        streamId = streamId,
        backend = Backend.CPU,
    )

    // BT.601 full range (the Android default): a saturated red, and a mid grey.
    private val RED = Triple(87, 96, 223)
    private val GREY = Triple(128, 128, 128)

    private fun yuv(red: Boolean) = if (red) RED else GREY

    /** A tightly packed NV21 frame, uniformly red or grey. */
    fun nv21(width: Int, height: Int, red: Boolean): ByteArray {
        val (y, u, v) = yuv(red)
        val cw = (width + 1) / 2
        val ch = (height + 1) / 2
        val bytes = ByteArray(width * height + cw * 2 * ch)
        bytes.fill(y.toByte(), 0, width * height)
        var i = width * height
        while (i < bytes.size) {
            bytes[i] = v.toByte()
            bytes[i + 1] = u.toByte()
            i += 2
        }
        return bytes
    }

    /** Android's YUV_420_888 layout: padded rows, U and V views of one interleaved direct buffer. */
    class Yuv420(val width: Int, val height: Int, red: Boolean, pad: Int = 16) {
        val yRowStride = width + pad
        val uvRowStride = (width + 1) / 2 * 2 + pad
        val y: ByteBuffer = ByteBuffer.allocateDirect(yRowStride * height)
        val u: ByteBuffer
        val v: ByteBuffer

        // The last chroma row is not padded, as on real devices.
        private val chroma =
            ByteBuffer.allocateDirect(uvRowStride * ((height + 1) / 2 - 1) + (width + 1) / 2 * 2)

        init {
            val (yv, uv, vv) = yuv(red)
            for (i in 0 until y.capacity()) y.put(i, yv.toByte())
            for (i in 0 until chroma.capacity()) chroma.put(i, (if (i % 2 == 0) vv else uv).toByte())
            v = chroma.duplicate()
            u = chroma.duplicate().position(1).slice()
        }

        fun submit(s: Screener, timestampUs: Long, rotation: Int = 90) = s.submitYuv420(
            width, height, y, yRowStride, u, v, uvRowStride, 2, rotation, timestampUs,
        )

        /** Lends the frame, as a camera image is; [release] runs when the screener is done. */
        fun lend(s: Screener, timestampUs: Long, rotation: Int = 90, release: Runnable) =
            s.lendYuv420(
                width, height, y, yRowStride, u, v, uvRowStride, 2, rotation, timestampUs,
                release = release,
            )

        /** Overwrites every plane with zeros (black, no chroma), as a recycled image would be. */
        fun poison() {
            for (i in 0 until y.capacity()) y.put(i, 0)
            for (i in 0 until chroma.capacity()) chroma.put(i, 0)
        }
    }

    /** A packed RGBA frame in a direct buffer. */
    fun rgba(width: Int, height: Int, red: Boolean): ByteBuffer {
        val b = ByteBuffer.allocateDirect(width * height * 4)
        val (r, g, bl) = if (red) Triple(220, 30, 30) else Triple(128, 128, 128)
        for (i in 0 until width * height) {
            b.put(i * 4, r.toByte()); b.put(i * 4 + 1, g.toByte())
            b.put(i * 4 + 2, bl.toByte()); b.put(i * 4 + 3, 255.toByte())
        }
        return b
    }

    /** Resident set size of this JVM process, in bytes (Linux). */
    fun rssBytes(): Long {
        val line = File("/proc/self/status").readLines().first { it.startsWith("VmRSS:") }
        return line.split(Regex("\\s+"))[1].toLong() * 1024
    }
}
