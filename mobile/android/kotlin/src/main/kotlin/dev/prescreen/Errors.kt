package dev.prescreen

/**
 * Base of the exceptions prescreen throws for errors an app can act on. Messages name sizes,
 * formats, files, labels and ids, never pixel values or user data. Arguments out of range throw
 * [IllegalArgumentException], use after [Screener.close] throws [IllegalStateException], and a
 * failure inside the native library (a bug) throws this class itself.
 */
open class PrescreenException(message: String) : RuntimeException(message)

/**
 * The frame is malformed: a buffer shorter than its size and strides need, a heap [java.nio.ByteBuffer]
 * where a direct one is needed, a null buffer, a stride shorter than a row, a zero, negative or
 * absurd size, a rotation that is not a multiple of 90. The frame is counted as rejected and the
 * screener keeps working.
 */
class InvalidFrameException(message: String) : PrescreenException(message)

/** The model, its manifest or one of its files could not be read, verified or loaded. */
class ModelLoadException(message: String) : PrescreenException(message)

/** The policy file could not be read or is invalid. */
class PolicyException(message: String) : PrescreenException(message)

/** [Backend.GPU] was required and no usable GPU passed the start-up self-test. */
class GpuUnavailableException(message: String) : PrescreenException(message)

/** The outbox could not read or write its files (full disk, permissions). Nothing is lost. */
class StorageException(message: String) : PrescreenException(message)

/** No pending report has this id. */
class UnknownReportException(message: String) : PrescreenException(message)
