// Pack: a loaded pack and its calls, and CancelToken. Each method converts its arguments,
// calls one function of the native library (bindings/uniffi) and maps its failure.
package dev.packhost

import com.google.gson.JsonElement
import dev.packhost.ffi.NativeCancelToken
import dev.packhost.ffi.NativePack
import java.nio.file.Path

/**
 * A loaded pack. Calls may come from any number of threads at once; a call holds no lock
 * the JVM needs. Close it (or let the garbage collector) to free its instances.
 *
 * Options are JSON text or any value Gson serialises (a `Map`), exactly as the other hosts
 * take them: `{"limits": {"timeout_ms": 500}, "engine": "native"}`.
 */
class Pack private constructor(internal val native: NativePack) : AutoCloseable {
    private val fast = FastPack(this, native.uniffiCloneHandle())

    companion object {
        /** Loads a pack from a `.wasm` file or an `oci://` reference. */
        @Throws(PackException::class)
        @JvmStatic
        @JvmOverloads
        fun load(path: String, options: Any? = null, functions: List<HostFunction> = emptyList()): Pack =
            lending(functions) { NativePack.loadFile(path, optionsJson(options), it) }

        /** Loads a pack from a `.wasm` file. */
        @Throws(PackException::class)
        @JvmStatic
        @JvmOverloads
        fun load(path: Path, options: Any? = null, functions: List<HostFunction> = emptyList()): Pack =
            load(path.toString(), options, functions)

        /** Loads a pack from module bytes. */
        @Throws(PackException::class)
        @JvmStatic
        @JvmOverloads
        fun fromBytes(bytes: ByteArray, options: Any? = null, functions: List<HostFunction> = emptyList()): Pack =
            lending(functions) { NativePack.loadBytes(bytes, optionsJson(options), it) }

        /**
         * Loads the plugin an Extism manifest describes (JSON text or a value Gson
         * serialises: `{"wasm": [{"path": "..."}], "config": {...}}`).
         */
        @Throws(PackException::class)
        @JvmStatic
        @JvmOverloads
        fun fromExtismManifest(manifest: Any, options: Any? = null, functions: List<HostFunction> = emptyList()): Pack =
            lending(functions) { NativePack.loadExtismManifest(Json.document(manifest), optionsJson(options), it) }

        private fun optionsJson(options: Any?): String = if (options == null) "{}" else Json.document(options)

        private fun lending(
            functions: List<HostFunction>,
            load: (List<dev.packhost.ffi.NativeHostFunction>) -> NativePack,
        ): Pack {
            val natives = functions.map { it.native() }
            try {
                return Pack(ffi { load(natives) })
            } finally {
                // The pack holds the handlers itself; these wrappers are done with.
                natives.forEach { it.close() }
            }
        }
    }

    // Read once at load: a call's usage names them, and must not need `native` after the
    // call (another thread may close the pack meanwhile).

    /** The SHA-256 of the module bytes, in lowercase hex. */
    val id: String = native.id()

    /** The manifest's name (the file name for a pack without a manifest). */
    val name: String = native.name()

    /** The manifest's version. */
    val version: String = native.version()

    /** Action names, `pre` and `post` included, in manifest order. */
    val actions: List<String> by lazy { native.actions() }

    /** True when the manifest came from the module itself rather than from its exports. */
    val hasEmbeddedManifest: Boolean get() = native.hasEmbeddedManifest()

    /** The manifest. */
    val manifest: JsonElement get() = Json.parse(native.manifestJson())

    /** The options in force, defaults filled in. */
    val options: JsonElement get() = Json.parse(native.optionsJson())

    /** Counts and totals of this pack's calls since it was loaded. */
    val stats: JsonElement get() = Json.parse(native.statsJson())

    /**
     * Runs [action] on [input]. [context] (any value Gson serialises, or a JsonElement) is
     * what host functions and capabilities see as the call's tenant; [cancel] ends the call
     * with `cancelled` when cancelled.
     */
    @Throws(PackException::class)
    @JvmOverloads
    fun call(action: String, input: ByteArray, context: Any? = null, cancel: CancelToken? = null): CallResult {
        val options = Json.callOptions(context)
        if (cancel == null) return fast.call(this, action, input, options)
        return ffi {
            val result = native.call(action, input, options, cancel.native)
            CallResult(result.output, result.report)
        }
    }

    /** [call] with text input, sent as UTF-8. */
    @Throws(PackException::class)
    @JvmOverloads
    fun call(action: String, input: String, context: Any? = null, cancel: CancelToken? = null): CallResult =
        call(action, input.encodeToByteArray(), context, cancel)

    /** [call] with a value sent as JSON (a JsonElement as it is, anything else through Gson). */
    @Throws(PackException::class)
    @JvmOverloads
    fun callJson(action: String, input: Any?, context: Any? = null, cancel: CancelToken? = null): CallResult =
        call(action, Json.value(input).encodeToByteArray(), context, cancel)

    /** Runs the `pre` hook on a request. */
    @Throws(PackException::class)
    @JvmOverloads
    fun pre(input: ByteArray, context: Any? = null, cancel: CancelToken? = null): CallResult =
        call("pre", input, context, cancel)

    /** Runs the `post` hook on a response. */
    @Throws(PackException::class)
    @JvmOverloads
    fun post(input: ByteArray, context: Any? = null, cancel: CancelToken? = null): CallResult =
        call("post", input, context, cancel)

    /** The next version of this pack from a file, with this pack's options and host functions. */
    @Throws(PackException::class)
    fun loadNext(path: String): Pack = Pack(ffi { native.loadNextFile(path) })

    /** The next version of this pack from module bytes. */
    @Throws(PackException::class)
    fun loadNext(bytes: ByteArray): Pack = Pack(ffi { native.loadNextBytes(bytes) })

    override fun close() {
        fast.close()
        native.close()
    }

    override fun toString(): String = "Pack($name $version, id=${id.take(12)})"
}

/**
 * Cancels the calls made with it: each one running ends with [PackException.Cancelled] at
 * its engine's next check, and one started after [cancel] does not run. Any thread may
 * cancel it; a cancelled token stays cancelled.
 */
class CancelToken : AutoCloseable {
    internal val native = NativeCancelToken()

    /** Cancels every call running with this token and every later call made with it. */
    @Throws(PackException::class)
    fun cancel() = ffi { native.cancel() }

    /** Whether [cancel] has been called. */
    val isCancelled: Boolean get() = native.isCancelled()

    override fun close() = native.close()
}
