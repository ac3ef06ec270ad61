// The fast call path (bindings/uniffi/src/fast.rs): one JNA direct call with primitive
// arguments per call, instead of the several structures uniffi's generated code allocates.
// FastPack owns the native pack handle and releases it once no call uses it. FastCalls also
// binds host_fn.rs's dispatcher functions (HostDispatch in HostFunction.kt uses them).
package dev.packhost

import com.google.gson.JsonElement
import com.sun.jna.Native
import dev.packhost.ffi.NativeOutcome
import dev.packhost.ffi.UniffiWithHandle
import com.sun.jna.Pointer
import java.lang.ref.Cleaner
import java.util.concurrent.atomic.AtomicBoolean
import java.util.concurrent.atomic.AtomicLong

/** The C functions of fast.rs and host_fn.rs, bound by JNA's direct mapping to the library uniffi loads. */
internal object FastCalls {
    init {
        // The name uniffi's generated code loads, override included, so both bind one library.
        val name = System.getProperty("uniffi.component.packhost_uniffi.libraryOverride") ?: "packhost_uniffi"
        Native.register(FastCalls::class.java, name)
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
        numbersLength: Int,
    ): Long

    @JvmStatic
    external fun packhost_jvm_outcome_free(outcome: Long)

    @JvmStatic
    external fun packhost_jvm_pack_release(pack: Long)

    @JvmStatic
    external fun packhost_jvm_set_dispatcher(dispatch: HostDispatch.Dispatch, release: HostDispatch.Release)

    @JvmStatic
    external fun packhost_jvm_reply_output(reply: Long, data: ByteArray, length: Int)

    @JvmStatic
    external fun packhost_jvm_reply_failure(
        reply: Long,
        className: ByteArray,
        classLength: Int,
        message: ByteArray,
        messageLength: Int,
    )
}

// Where packhost_jvm_call writes what (fast.rs keeps the same order).
private const val NUMBERS = 20
private const val OK = 0
private const val OUTPUT = 1
// Three JSON texts, each an address and a length (0 when there is none).
private const val CONTEXT = 3
private const val LOGS = 5
private const val AUDIT = 7
private const val USAGE = 9
private const val COUNTERS = 11

private val CLEANER: Cleaner = Cleaner.create()

/** Releases a pack handle once, whether the Pack is closed or collected. */
private class Release(private val handle: Long) : Runnable {
    override fun run() = FastCalls.packhost_jvm_pack_release(handle)
}

/**
 * A clone of a NativePack's uniffi handle ([handle], from `uniffiCloneHandle`), with the calls
 * in flight on it counted as uniffi counts its own; given back once nothing uses it.
 */
internal class FastPack(owner: Any, private val handle: Long) {
    // 1 while open, plus one per call in flight; the handle is released when it falls to 0.
    private val holds = AtomicLong(1)
    private val closed = AtomicBoolean(false)
    private val release: Cleaner.Cleanable = CLEANER.register(owner, Release(handle))

    private inline fun <R> holding(body: (Long) -> R): R {
        while (true) {
            val count = holds.get()
            // Calls in flight keep the count above zero after a close, so the flag is what
            // refuses calls that start after it.
            check(count != 0L && !closed.get()) { "the pack is closed" }
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

    /** Runs one call with its call options as JSON text, null for none. */
    fun call(pack: Pack, action: String, input: ByteArray, optionsJson: String?): CallResult = holding { handle ->
        val numbers = LongArray(NUMBERS)
        val actionBytes = action.encodeToByteArray()
        val options = optionsJson?.encodeToByteArray()
        val outcome = FastCalls.packhost_jvm_call(
            handle, actionBytes, actionBytes.size, input, input.size, options, options?.size ?: 0, numbers, NUMBERS,
        )
        check(outcome != 0L) { "the native library is from another build than this JAR" }
        if (numbers[OK] == 0L) {
            // The failure goes through uniffi, which takes the outcome over and frees it.
            NativeOutcome(UniffiWithHandle, outcome).use { failed -> ffi { failed.failure() } }
            error("a failed call reported no failure")
        }
        try {
            val context = text(numbers, CONTEXT)?.let(Json::parse)
            val logs = text(numbers, LOGS)?.let { logs ->
                Json.parse(logs).asJsonArray.map {
                    LogRecord(it.asJsonObject["level"].asString, it.asJsonObject["message"].asString)
                }
            }
            val usage = Usage(numbers.copyOfRange(USAGE, USAGE + COUNTERS), context, pack, action)
            CallResult(read(numbers, OUTPUT), usage, logs ?: emptyList(), text(numbers, AUDIT))
        } finally {
            FastCalls.packhost_jvm_outcome_free(outcome)
        }
    }

    /** The bytes whose address and length `numbers` holds at [slot] and the next. */
    private fun read(numbers: LongArray, slot: Int): ByteArray {
        val size = numbers[slot + 1].toInt()
        return if (size == 0) ByteArray(0) else Pointer(numbers[slot]).getByteArray(0, size)
    }

    /** The JSON text at [slot], null when there is none. */
    private fun text(numbers: LongArray, slot: Int): String? =
        if (numbers[slot + 1] == 0L) null else read(numbers, slot).decodeToString()
}

/** Usage from the fast path's counters, in CallUsage's order. */
internal fun Usage(counters: LongArray, context: JsonElement?, pack: Pack, action: String): Usage = Usage(
    counters[0], counters[1], counters[2], counters[3], counters[4], counters[5], counters[6],
    counters[7], counters[8], counters[9], counters[10], context, pack.name, pack.version, pack.id, action,
)
