// Host functions written in Kotlin or Java: HostFunction lends a handler to packs under an
// import name; HostCall is what the handler sees of the call that reached it; HostDispatch
// is the one JNA callback every host function's call crosses (bindings/uniffi/src/host_fn.rs).
package dev.packhost

import com.google.gson.JsonElement
import com.sun.jna.Callback
import com.sun.jna.Pointer
import dev.packhost.ffi.NativeHostFunction
import java.util.concurrent.ConcurrentHashMap
import java.util.concurrent.atomic.AtomicLong

/** What a host function sees of the call that reached it. */
class HostCall internal constructor(
    contextJson: String?,
    /** The calling pack's name (from its manifest). */
    val packName: String,
    /** The calling pack's id. */
    val packId: String,
    /** The host function's import name. */
    val function: String,
) {
    /** The caller's context; null when the call had none. */
    val context: JsonElement? by lazy { Json.parseOrNull(contextJson) }
}

/**
 * A function lent to packs as the import [namespace].[name]: bytes in, bytes out, as every
 * Extism PDK declares them. An exception the handler throws ends the pack's call with
 * [PackException.HostFunctionError], naming the function and the exception's class. The
 * handler runs on the calling thread (a flow's parallel branch calls it from the branch's).
 */
class HostFunction @JvmOverloads constructor(
    val name: String,
    val namespace: String = USER_NAMESPACE,
    private val handler: Handler,
) {
    /** The body of a host function. */
    fun interface Handler {
        @Throws(Exception::class)
        fun handle(call: HostCall, input: ByteArray): ByteArray
    }

    companion object {
        /** The namespace Extism PDKs import host functions from. */
        const val USER_NAMESPACE = "extism:host/user"
    }

    internal fun native(): NativeHostFunction = NativeHostFunction(name, namespace, HostDispatch.register(handler))
}

/** The handlers packs hold, by id, and the callbacks the native library calls them through. */
internal object HostDispatch {
    private val handlers = ConcurrentHashMap<Long, HostFunction.Handler>()
    private val lastId = AtomicLong()

    interface Dispatch : Callback {
        fun invoke(
            handler: Long,
            input: Pointer?,
            inputLength: Int,
            context: Pointer?,
            contextLength: Int,
            packName: Pointer?,
            packNameLength: Int,
            packId: Pointer?,
            packIdLength: Int,
            function: Pointer?,
            functionLength: Int,
            reply: Long,
        ): Int
    }

    interface Release : Callback {
        fun invoke(handler: Long)
    }

    // Held here for the life of the process: JNA frees a callback's native stub when its
    // object is collected, and the library keeps these pointers.
    private val dispatch = object : Dispatch {
        override fun invoke(
            handler: Long,
            input: Pointer?,
            inputLength: Int,
            context: Pointer?,
            contextLength: Int,
            packName: Pointer?,
            packNameLength: Int,
            packId: Pointer?,
            packIdLength: Int,
            function: Pointer?,
            functionLength: Int,
            reply: Long,
        ): Int {
            // Nothing may escape a JNA callback: a throwable would be lost and the pack's call
            // would see no answer.
            try {
                val body = handlers[handler] ?: error("host function handler $handler is gone")
                val call = HostCall(
                    if (contextLength == 0) null else text(context, contextLength),
                    text(packName, packNameLength),
                    text(packId, packIdLength),
                    text(function, functionLength),
                )
                val output = body.handle(call, bytes(input, inputLength))
                FastCalls.packhost_jvm_reply_output(reply, output, output.size)
            } catch (thrown: Throwable) {
                // An anonymous class has no simple name.
                val className = thrown.javaClass.simpleName.ifEmpty { thrown.javaClass.name }.encodeToByteArray()
                val message = (thrown.message ?: thrown.toString()).encodeToByteArray()
                FastCalls.packhost_jvm_reply_failure(reply, className, className.size, message, message.size)
            }
            return 0
        }
    }

    private val release = object : Release {
        override fun invoke(handler: Long) {
            handlers.remove(handler)
        }
    }

    init {
        FastCalls.packhost_jvm_set_dispatcher(dispatch, release)
    }

    fun register(handler: HostFunction.Handler): Long {
        val id = lastId.incrementAndGet()
        handlers[id] = handler
        return id
    }

    private fun bytes(data: Pointer?, length: Int): ByteArray =
        if (data == null || length <= 0) ByteArray(0) else data.getByteArray(0, length)

    private fun text(data: Pointer?, length: Int): String = bytes(data, length).decodeToString()
}
