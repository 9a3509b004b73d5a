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
