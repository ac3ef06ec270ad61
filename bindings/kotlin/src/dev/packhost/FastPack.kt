// The fast call path (bindings/uniffi/src/fast.rs): one JNA direct call with primitive
// arguments per call, instead of the several structures uniffi's generated code allocates.
// FastPack owns the native pack handle and releases it once no call uses it.
package dev.packhost

import com.google.gson.JsonElement
import com.sun.jna.Native
import com.sun.jna.Pointer
import java.lang.ref.Cleaner
import java.util.concurrent.atomic.AtomicBoolean
import java.util.concurrent.atomic.AtomicLong

/** The C functions of fast.rs, bound by JNA's direct mapping to the library uniffi loads. */
internal object FastCalls {
    init {
        Native.register(FastCalls::class.java, "packhost_uniffi")
    }

    @JvmStatic
    external fun packhost_jvm_call(
        pack: Long,
        action: ByteArray,
        actionLength: Int,
        input: ByteArray,
        inputLength: Int,
        options: ByteArray?,
        optionsLength: Int,
        numbers: LongArray,
    ): Long

    @JvmStatic
    external fun packhost_jvm_outcome_free(outcome: Long)

    @JvmStatic
    external fun packhost_jvm_pack_release(pack: Long)
}

// Where packhost_jvm_call writes what (fast.rs keeps the same order).
private const val NUMBERS = 16
private const val OK = 0
private const val OUTPUT_ADDRESS = 1
private const val OUTPUT_LENGTH = 2
private const val HAS_LOGS = 3
private const val HAS_AUDIT = 4
private const val USAGE = 5

private val CLEANER: Cleaner = Cleaner.create()

/** Releases a pack handle once, whether the Pack is closed or collected. */
private class Release(private val handle: Long) : Runnable {
    override fun run() = FastCalls.packhost_jvm_pack_release(handle)
}

/** A native pack handle with the calls in flight on it counted, as uniffi counts its own. */
internal class FastPack(owner: Any, private val handle: Long) {
    // 1 while open, plus one per call in flight; the handle is released when it falls to 0.
    private val holds = AtomicLong(1)
    private val closed = AtomicBoolean(false)
    private val release: Cleaner.Cleanable = CLEANER.register(owner, Release(handle))

    private inline fun <R> holding(body: (Long) -> R): R {
        while (true) {
            val count = holds.get()
            check(count != 0L) { "the pack is closed" }
            if (holds.compareAndSet(count, count + 1)) break
        }
        try {
            return body(handle)
        } finally {
            if (holds.decrementAndGet() == 0L) release.clean()
        }
    }

    fun close() {
        if (closed.compareAndSet(false, true) && holds.decrementAndGet() == 0L) release.clean()
    }

    /** Runs one call; [contextJson] is the call's context as JSON text, null for none. */
    fun call(pack: Pack, action: String, input: ByteArray, contextJson: String?): CallResult = holding { handle ->
        val numbers = LongArray(NUMBERS)
        val actionBytes = action.encodeToByteArray()
        val options = contextJson?.let { "{\"context\":$it}".encodeToByteArray() }
        val outcome = FastCalls.packhost_jvm_call(
            handle, actionBytes, actionBytes.size, input, input.size, options, options?.size ?: 0, numbers,
        )
        try {
            if (numbers[OK] == 0L) {
                ffi { dev.packhost.ffi.outcomeFailure(outcome.toULong()) }
                error("a failed call reported no failure")
            }
            val length = numbers[OUTPUT_LENGTH].toInt()
            val output = if (length == 0) ByteArray(0) else Pointer(numbers[OUTPUT_ADDRESS]).getByteArray(0, length)
            if (numbers[HAS_LOGS] != 0L || numbers[HAS_AUDIT] != 0L) {
                CallResult(output, dev.packhost.ffi.outcomeReport(outcome.toULong())!!)
            } else {
                val usage = numbers.copyOfRange(USAGE, USAGE + 11)
                CallResult(output, Usage(usage, contextJson?.let(Json::parse), pack, action), emptyList(), null)
            }
        } finally {
            FastCalls.packhost_jvm_outcome_free(outcome)
        }
    }
}

/** Usage from the fast path's counters, in CallUsage's order. */
internal fun Usage(counters: LongArray, context: JsonElement?, pack: Pack, action: String): Usage = Usage(
    counters[0], counters[1], counters[2], counters[3], counters[4], counters[5], counters[6],
    counters[7], counters[8], counters[9], counters[10], context, pack.name, pack.version, pack.id, action,
)
