import CoreVideo
import Foundation

extension Screener {
    /// Offers a camera frame straight from `AVCaptureVideoDataOutput`: NV12 (bi-planar 4:2:0, video
    /// or full range) or 32BGRA. The buffer is locked read-only for the call and its planes are
    /// passed in place, with their strides; nothing is copied on the way (the screener copies only
    /// the frames it takes for scoring, before this returns).
    ///
    /// - Parameters:
    ///   - rotationDegrees: the clockwise rotation that makes the frame upright (0, 90, 180, 270).
    ///   - mirrored: mirror after rotating (front camera).
    ///   - timestampUs: the sample buffer's presentation time in microseconds.
    /// - Throws: `PrescreenError.InvalidFrame` for an unsupported pixel format or a malformed
    ///   buffer; `PrescreenError.Closed` after `close()`.
    @discardableResult
    public func submit(
        pixelBuffer: CVPixelBuffer,
        rotationDegrees: UInt32,
        mirrored: Bool = false,
        timestampUs: Int64
    ) throws -> SubmitResult {
        guard CVPixelBufferLockBaseAddress(pixelBuffer, .readOnly) == kCVReturnSuccess else {
            throw PrescreenError.InvalidFrame(message: "the pixel buffer cannot be locked")
        }
        defer { CVPixelBufferUnlockBaseAddress(pixelBuffer, .readOnly) }

        let format = CVPixelBufferGetPixelFormatType(pixelBuffer)
        var info = FrameInfo(
            width: UInt32(CVPixelBufferGetWidth(pixelBuffer)),
            height: UInt32(CVPixelBufferGetHeight(pixelBuffer)),
            rotationDegrees: rotationDegrees,
            mirrored: mirrored,
            timestampUs: timestampUs,
            colorMatrix: .bt709,
            colorRange: .video
        )
        switch format {
        case kCVPixelFormatType_420YpCbCr8BiPlanarVideoRange,
             kCVPixelFormatType_420YpCbCr8BiPlanarFullRange:
            info.colorRange = format == kCVPixelFormatType_420YpCbCr8BiPlanarFullRange ? .full : .video
            info.colorMatrix = Self.matrix(of: pixelBuffer)
            let y = try Self.plane(pixelBuffer, 0)
            let uv = try Self.plane(pixelBuffer, 1)
            return try submitNv12(y: y.data, yRowStride: y.stride, uv: uv.data, uvRowStride: uv.stride, info: info)
        case kCVPixelFormatType_32BGRA:
            guard let base = CVPixelBufferGetBaseAddress(pixelBuffer) else {
                throw PrescreenError.InvalidFrame(message: "the pixel buffer has no base address")
            }
            let stride = CVPixelBufferGetBytesPerRow(pixelBuffer)
            let data = Data(
                bytesNoCopy: base,
                count: stride * CVPixelBufferGetHeight(pixelBuffer),
                deallocator: .none
            )
            return try submitBgra(data: data, rowStride: UInt32(stride), info: info)
        default:
            throw PrescreenError.InvalidFrame(
                message: "pixel format \(format) is not supported (NV12 or 32BGRA)"
            )
        }
    }

    /// Lends a camera frame straight from `AVCaptureVideoDataOutput` (NV12 or 32BGRA, as
    /// `submit(pixelBuffer:...)`) instead of having it copied: the buffer stays retained and locked
    /// read-only until the screener is done with it, and a frame taken for scoring is read in place
    /// on the screener's worker thread, so this call costs the same whatever the frame size.
    ///
    /// The screener unlocks the buffer exactly once: before this returns for a frame it does not
    /// take (skipped, malformed, closed: also when this throws), later for one it takes. It holds
    /// up to three buffers at once (one waiting, one being scored, one during a call that replaces
    /// the waiting one), which come from the capture output's pool: a pool that runs dry makes the
    /// output drop frames, so keep the app's own holds short.
    ///
    /// - Throws: as `submit(pixelBuffer:...)`.
    @discardableResult
    public func lend(
        pixelBuffer: CVPixelBuffer,
        rotationDegrees: UInt32,
        mirrored: Bool = false,
        timestampUs: Int64
    ) throws -> SubmitResult {
        let lease = try PixelBufferLease(locking: pixelBuffer)
        do {
            let info = Self.info(of: pixelBuffer, rotationDegrees, mirrored, timestampUs)
            switch CVPixelBufferGetPixelFormatType(pixelBuffer) {
            case kCVPixelFormatType_420YpCbCr8BiPlanarVideoRange,
                 kCVPixelFormatType_420YpCbCr8BiPlanarFullRange:
                let y = try Self.lentPlane(pixelBuffer, 0)
                let uv = try Self.lentPlane(pixelBuffer, 1)
                return try lendNv12(
                    yAddress: y.address, yLen: y.length, yRowStride: y.stride,
                    uvAddress: uv.address, uvLen: uv.length, uvRowStride: uv.stride,
                    info: info, lease: lease
                )
            case kCVPixelFormatType_32BGRA:
                guard let base = CVPixelBufferGetBaseAddress(pixelBuffer) else {
                    throw PrescreenError.InvalidFrame(message: "the pixel buffer has no base address")
                }
                let stride = CVPixelBufferGetBytesPerRow(pixelBuffer)
                return try lendBgra(
                    address: UInt64(UInt(bitPattern: base)),
                    len: UInt64(stride * CVPixelBufferGetHeight(pixelBuffer)),
                    rowStride: UInt32(stride),
                    info: info,
                    lease: lease
                )
            default:
                throw PrescreenError.InvalidFrame(
                    message: "pixel format \(CVPixelBufferGetPixelFormatType(pixelBuffer)) is not supported (NV12 or 32BGRA)"
                )
            }
        } catch {
            // The screener released it on every path it reached; this covers the others.
            try? lease.release()
            throw error
        }
    }

    /// Size, orientation, time and colour of a pixel buffer (colour from its format and tags).
    private static func info(
        of buffer: CVPixelBuffer,
        _ rotationDegrees: UInt32,
        _ mirrored: Bool,
        _ timestampUs: Int64
    ) -> FrameInfo {
        let full = CVPixelBufferGetPixelFormatType(buffer) == kCVPixelFormatType_420YpCbCr8BiPlanarFullRange
        return FrameInfo(
            width: UInt32(CVPixelBufferGetWidth(buffer)),
            height: UInt32(CVPixelBufferGetHeight(buffer)),
            rotationDegrees: rotationDegrees,
            mirrored: mirrored,
            timestampUs: timestampUs,
            colorMatrix: matrix(of: buffer),
            colorRange: full ? .full : .video
        )
    }

    /// A plane of a locked pixel buffer as the address, length and stride `lendNv12` takes.
    private static func lentPlane(
        _ buffer: CVPixelBuffer,
        _ index: Int
    ) throws -> (address: UInt64, length: UInt64, stride: UInt32) {
        guard let base = CVPixelBufferGetBaseAddressOfPlane(buffer, index) else {
            throw PrescreenError.InvalidFrame(message: "plane \(index) has no base address")
        }
        let stride = CVPixelBufferGetBytesPerRowOfPlane(buffer, index)
        let rows = CVPixelBufferGetHeightOfPlane(buffer, index)
        return (UInt64(UInt(bitPattern: base)), UInt64(stride * rows), UInt32(stride))
    }

    /// A plane of a locked pixel buffer, wrapped without copying.
    private static func plane(_ buffer: CVPixelBuffer, _ index: Int) throws -> (data: Data, stride: UInt32) {
        guard let base = CVPixelBufferGetBaseAddressOfPlane(buffer, index) else {
            throw PrescreenError.InvalidFrame(message: "plane \(index) has no base address")
        }
        let stride = CVPixelBufferGetBytesPerRowOfPlane(buffer, index)
        let rows = CVPixelBufferGetHeightOfPlane(buffer, index)
        return (Data(bytesNoCopy: base, count: stride * rows, deallocator: .none), UInt32(stride))
    }

    /// The Y'CbCr matrix the buffer is tagged with (BT.709, the camera's default, when untagged).
    private static func matrix(of buffer: CVPixelBuffer) -> ColorMatrix {
        let key = kCVImageBufferYCbCrMatrixKey
        guard let tag = CVBufferCopyAttachment(buffer, key, nil) as? String else { return .bt709 }
        return tag == (kCVImageBufferYCbCrMatrix_ITU_R_601_4 as String) ? .bt601 : .bt709
    }
}

/// A pixel buffer lent to a screener: retained by this object and locked read-only from its
/// creation until the screener releases it. Releasing twice unlocks once.
final class PixelBufferLease: FrameLease, @unchecked Sendable {
    private let buffer: CVPixelBuffer
    private let lock = NSLock()
    private var locked = true

    init(locking buffer: CVPixelBuffer) throws {
        guard CVPixelBufferLockBaseAddress(buffer, .readOnly) == kCVReturnSuccess else {
            throw PrescreenError.InvalidFrame(message: "the pixel buffer cannot be locked")
        }
        self.buffer = buffer
    }

    func release() throws {
        lock.lock()
        defer { lock.unlock() }
        guard locked else { return }
        locked = false
        CVPixelBufferUnlockBaseAddress(buffer, .readOnly)
    }
}
