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
 * rotation and timestamp.
 *
 * By default each image is closed as soon as `submit` returns (the screener copies the frames it
 * takes); use `ImageAnalysis.STRATEGY_KEEP_ONLY_LATEST`:
 *
 * ```
 * analysis.setAnalyzer(executor, ScreenerAnalyzer(screener))
 * ```
 *
 * With `lend = true` nothing is copied: a frame taken for scoring stays in its image until the
 * screener is done with it, and the screener closes the image then ([Screener.lendYuv420]). The
 * screener holds up to three images, so give CameraX a queue that lets the camera run meanwhile:
 *
 * ```
 * ImageAnalysis.Builder()
 *     .setBackpressureStrategy(ImageAnalysis.STRATEGY_BLOCK_PRODUCER)
 *     .setImageQueueDepth(4)
 * ```
 */
class ScreenerAnalyzer(
    private val screener: Screener,
    /** Mirror after rotating (front camera previews are usually shown mirrored). */
    private val mirror: Boolean = false,
    /** Called with what happened to each frame (optional, for diagnostics). */
    private val onResult: ((SubmitResult) -> Unit)? = null,
    /** Lend each image to the screener instead of having the frames it takes copied. */
    private val lend: Boolean = false,
) : ImageAnalysis.Analyzer {
    override fun analyze(image: ImageProxy) {
        // Lent images are closed by the screener, on every path, once it is done with them.
        var closeHere = true
        try {
            if (image.format != ImageFormat.YUV_420_888) return
            val (y, u, v) = image.planes
            val rotation = image.imageInfo.rotationDegrees
            val timestampUs = image.imageInfo.timestamp / 1_000
            val result = if (lend) {
                closeHere = false
                screener.lendYuv420(
                    width = image.width,
                    height = image.height,
                    y = y.buffer,
                    yRowStride = y.rowStride,
                    u = u.buffer,
                    v = v.buffer,
                    uvRowStride = u.rowStride,
                    uvPixelStride = u.pixelStride,
                    rotationDegrees = rotation,
                    timestampUs = timestampUs,
                    mirror = mirror,
                    release = { image.close() },
                )
            } else {
                screener.submitYuv420(
                    width = image.width,
                    height = image.height,
                    y = y.buffer,
                    yRowStride = y.rowStride,
                    u = u.buffer,
                    v = v.buffer,
                    uvRowStride = u.rowStride,
                    uvPixelStride = u.pixelStride,
                    rotationDegrees = rotation,
                    timestampUs = timestampUs,
                    mirror = mirror,
                )
            }
            onResult?.invoke(result)
        } catch (e: InvalidFrameException) {
            // Counted as rejected by the screener; the next frame may be fine.
            onResult?.invoke(SubmitResult.REJECTED)
        } catch (e: IllegalStateException) {
            // The screener was closed while the camera was still running.
            onResult?.invoke(SubmitResult.CLOSED)
        } finally {
            if (closeHere) image.close()
        }
    }
}
