package dev.prescreen.camerax

import android.graphics.ImageFormat
import androidx.camera.core.ImageAnalysis
import androidx.camera.core.ImageProxy
import dev.prescreen.InvalidFrameException
import dev.prescreen.Screener
import dev.prescreen.SubmitResult

/**
 * A CameraX analyzer that hands every frame to a [Screener] without copying it in Kotlin: the
 * `YUV_420_888` planes are passed as the direct buffers CameraX gives, with their strides,
 * rotation and timestamp. Use with `ImageAnalysis.STRATEGY_KEEP_ONLY_LATEST`:
 *
 * ```
 * analysis.setAnalyzer(executor, ScreenerAnalyzer(screener))
 * ```
 *
 * The image is closed as soon as `submit` returns: the screener copies what it keeps.
 */
class ScreenerAnalyzer(
    private val screener: Screener,
    /** Mirror after rotating (front camera previews are usually shown mirrored). */
    private val mirror: Boolean = false,
    /** Called with what happened to each frame (optional, for diagnostics). */
    private val onResult: ((SubmitResult) -> Unit)? = null,
) : ImageAnalysis.Analyzer {
    override fun analyze(image: ImageProxy) {
        try {
            if (image.format != ImageFormat.YUV_420_888) return
            val (y, u, v) = image.planes
            val result = screener.submitYuv420(
                width = image.width,
                height = image.height,
                y = y.buffer,
                yRowStride = y.rowStride,
                u = u.buffer,
                v = v.buffer,
                uvRowStride = u.rowStride,
                uvPixelStride = u.pixelStride,
                rotationDegrees = image.imageInfo.rotationDegrees,
                timestampUs = image.imageInfo.timestamp / 1_000,
                mirror = mirror,
            )
            onResult?.invoke(result)
        } catch (e: InvalidFrameException) {
            // Counted as rejected by the screener; the next frame may be fine.
            onResult?.invoke(SubmitResult.REJECTED)
        } catch (e: IllegalStateException) {
            // The screener was closed while the camera was still running.
            onResult?.invoke(SubmitResult.CLOSED)
        } finally {
            image.close()
        }
    }
}
