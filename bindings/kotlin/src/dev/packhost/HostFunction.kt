// Host functions written in Kotlin or Java: HostFunction lends a handler to packs under an
// import name; HostCall is what the handler sees of the call that reached it.
package dev.packhost

import com.google.gson.JsonElement
import dev.packhost.ffi.HostCallInfo
import dev.packhost.ffi.HostHandler
import dev.packhost.ffi.HostHandlerFailure
import dev.packhost.ffi.NativeHostFunction

/** What a host function sees of the call that reached it. */
class HostCall internal constructor(info: HostCallInfo) {
    /** The caller's context; null when the call had none. */
    val context: JsonElement? by lazy { Json.parseOrNull(info.contextJson) }

    /** The calling pack's name (from its manifest). */
    val packName: String = info.packName

    /** The calling pack's id. */
    val packId: String = info.packId

    /** The host function's import name. */
    val function: String = info.function
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
        fun handle(call: HostCall, input: ByteArray): ByteArray
    }

    companion object {
        /** The namespace Extism PDKs import host functions from. */
        const val USER_NAMESPACE = "extism:host/user"
    }

    internal fun native(): NativeHostFunction = NativeHostFunction(name, namespace, Adapter(handler))

    private class Adapter(private val handler: Handler) : HostHandler {
        override fun handle(input: ByteArray, call: HostCallInfo): ByteArray =
            try {
                handler.handle(HostCall(call), input)
            } catch (thrown: Throwable) {
                throw HostHandlerFailure.Raised(thrown.javaClass.simpleName, thrown.message ?: thrown.toString())
            }
    }
}
