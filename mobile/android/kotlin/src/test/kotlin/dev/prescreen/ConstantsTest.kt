package dev.prescreen

import java.lang.reflect.Modifier
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Test

/**
 * Every number Kotlin and the native library share, against the runtime's own list
 * (`Native.constants`, the runtime's `host_constants`): event kinds, the order of the metrics
 * array, and the enum ordinals passed over JNI. A number changed, added or removed on one side
 * only fails here.
 */
class ConstantsTest {
    private val native: Map<String, Long> = Native.constants().associate {
        val (name, value) = it.split('=', limit = 2)
        name to value.toLong()
    }

    private fun group(name: String): Map<String, Long> =
        native.filterKeys { it.startsWith("$name.") }.mapKeys { it.key.removePrefix("$name.") }

    private inline fun <reified E : Enum<E>> ordinals(vararg kotlinOnly: E): Map<String, Long> =
        enumValues<E>().filter { it !in kotlinOnly }.associate { it.name to it.ordinal.toLong() }

    @Test
    fun `event kinds are the runtime's`() {
        // Every Int constant of EventDispatcher (its companion's, compiled as static fields).
        val kotlin = EventDispatcher::class.java.declaredFields
            .filter { Modifier.isStatic(it.modifiers) && it.type == Int::class.javaPrimitiveType }
            .associate {
                it.trySetAccessible()
                it.name to it.getInt(null).toLong()
            }
        assertEquals(11, kotlin.size, "$kotlin")
        assertEquals(group("EventKind"), kotlin)
    }

    @Test
    fun `enum ordinals are the runtime's codes`() {
        assertEquals(group("Backend"), ordinals<Backend>())
        assertEquals(group("ModelVariant"), ordinals<ModelVariant>())
        assertEquals(group("ColorMatrix"), ordinals<ColorMatrix>())
        assertEquals(group("ColorRange"), ordinals<ColorRange>())
        // REJECTED and CLOSED are Kotlin's own: submits throw for them, ScreenerAnalyzer reports them.
        assertEquals(group("SubmitResult"), ordinals(SubmitResult.REJECTED, SubmitResult.CLOSED))
    }

    @Test
    fun `metrics are read in the runtime's order`() {
        val fields = group("Metrics")
        assertEquals(Metrics.SIZE, fields.size, "$fields")
        val backendAt = fields.getValue("backend").toInt()
        val values = LongArray(Metrics.SIZE) { 1000L + it }
        values[backendAt] = native.getValue("ActiveBackend.CPU")
        val m = Metrics.fromNative(values)
        // Each Kotlin property (a backing field of the data class) at the index of the runtime's
        // field of the same name.
        val kotlin = Metrics::class.java.declaredFields
            .filter { !Modifier.isStatic(it.modifiers) && it.name != "backend" }
            .associate {
                it.trySetAccessible()
                snake(it.name) to it.getLong(m) - 1000L
            }
        assertEquals(fields - "backend", kotlin)
        assertEquals("cpu", m.backend)
        values[backendAt] = native.getValue("ActiveBackend.GPU")
        assertEquals("gpu", Metrics.fromNative(values).backend)
        values[backendAt] = -1
        assertNull(Metrics.fromNative(values).backend)
    }

    private fun snake(camel: String) = camel.replace(Regex("([a-z0-9])([A-Z])"), "$1_$2").lowercase()
}
