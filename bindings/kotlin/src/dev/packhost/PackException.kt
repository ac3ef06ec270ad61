// The exceptions every load and call throws: one PackException subclass per stable error
// code, carrying what the core reported. The codes and their meaning are the core's
// (packhost::ERROR_CODES); ErrorCodesTest checks this file has a class for each.
package dev.packhost

import com.google.gson.JsonObject
import dev.packhost.ffi.PackFailure

/**
 * A packhost failure. [code] is the stable snake_case code shared by every host; catch a
 * subclass (`PackException.Timeout`) to handle one case.
 */
sealed class PackException(failure: PackFailure.Failed) : Exception(failure.reason) {
    /** The stable snake_case code, e.g. `timeout`. */
    val code: String = failure.code

    /** The export's non-zero return code, for `plugin_error`. */
    val returnCode: Int? = failure.returnCode

    /** The host function that failed, for `host_function_error`. */
    val hostFunction: String? = failure.hostFunction

    /** The class of the exception the host function's handler threw. */
    val handlerClass: String? = failure.handlerClass

    /** For a failure inside a flow: the id of the step that failed. */
    val flowStep: String? = failure.flowStep

    /** What the failed call cost, for failures during a call; null otherwise. */
    val usage: Usage? = failure.report?.let { Usage(it.usage) }

    /** What the pack logged before it failed. */
    val logs: List<LogRecord> = logRecords(failure.report)

    /** The capabilities the failed call used. */
    val audit: List<JsonObject> by lazy { auditEntries(failure.report?.auditJson) }

    /** The bytes are not a module packhost can run. */
    class InvalidPack internal constructor(failure: PackFailure.Failed) : PackException(failure)

    /** The pack's manifest is missing something or does not parse. */
    class InvalidManifest internal constructor(failure: PackFailure.Failed) : PackException(failure)

    /** The load or call options (or a flow definition) are not valid. */
    class InvalidOptions internal constructor(failure: PackFailure.Failed) : PackException(failure)

    /** The pack's signature is missing or not from a trusted key. */
    class UntrustedPack internal constructor(failure: PackFailure.Failed) : PackException(failure)

    /** The pack has no such action. */
    class ActionNotFound internal constructor(failure: PackFailure.Failed) : PackException(failure)

    /** The call ran past its time limit. */
    class Timeout internal constructor(failure: PackFailure.Failed) : PackException(failure)

    /** The call used up its fuel. */
    class OutOfFuel internal constructor(failure: PackFailure.Failed) : PackException(failure)

    /** The call was cancelled through its CancelToken. */
    class Cancelled internal constructor(failure: PackFailure.Failed) : PackException(failure)

    /** The pack grew past its memory limit. */
    class MemoryLimit internal constructor(failure: PackFailure.Failed) : PackException(failure)

    /** The input is larger than the pack accepts. */
    class InputTooLarge internal constructor(failure: PackFailure.Failed) : PackException(failure)

    /** The output is larger than the host accepts. */
    class OutputTooLarge internal constructor(failure: PackFailure.Failed) : PackException(failure)

    /** The pack asked for something its grant does not allow. */
    class HostDenied internal constructor(failure: PackFailure.Failed) : PackException(failure)

    /** The pack trapped. */
    class Trap internal constructor(failure: PackFailure.Failed) : PackException(failure)

    /** The pack returned an error of its own (see returnCode). */
    class PluginError internal constructor(failure: PackFailure.Failed) : PackException(failure)

    /** A host function failed (see hostFunction and handlerClass). */
    class HostFunctionError internal constructor(failure: PackFailure.Failed) : PackException(failure)

    /** A capability's quota ran out. */
    class QuotaExceeded internal constructor(failure: PackFailure.Failed) : PackException(failure)

    /** A file or a store could not be read or written. */
    class Io internal constructor(failure: PackFailure.Failed) : PackException(failure)

    /** A fault inside packhost itself; a bug to report. */
    class Internal internal constructor(failure: PackFailure.Failed) : PackException(failure)

    /** A code this version of the Kotlin package does not know yet. */
    class Other internal constructor(failure: PackFailure.Failed) : PackException(failure)

    companion object {
        private val byCode: Map<String, (PackFailure.Failed) -> PackException> = mapOf(
            "invalid_pack" to ::InvalidPack,
            "invalid_manifest" to ::InvalidManifest,
            "invalid_options" to ::InvalidOptions,
            "untrusted_pack" to ::UntrustedPack,
            "action_not_found" to ::ActionNotFound,
            "timeout" to ::Timeout,
            "out_of_fuel" to ::OutOfFuel,
            "cancelled" to ::Cancelled,
            "memory_limit" to ::MemoryLimit,
            "input_too_large" to ::InputTooLarge,
            "output_too_large" to ::OutputTooLarge,
            "host_denied" to ::HostDenied,
            "trap" to ::Trap,
            "plugin_error" to ::PluginError,
            "host_function_error" to ::HostFunctionError,
            "quota_exceeded" to ::QuotaExceeded,
            "io" to ::Io,
            "internal" to ::Internal,
        )

        /** Every code with a class of its own, in the core's order. */
        @JvmField
        val CODES: List<String> = byCode.keys.toList()

        internal fun from(failure: PackFailure): PackException = when (failure) {
            is PackFailure.Failed -> (byCode[failure.code] ?: ::Other)(failure)
        }
    }
}

/** Runs a native call, turning its failure into the PackException of its code. */
internal inline fun <T> ffi(work: () -> T): T =
    try {
        work()
    } catch (failure: PackFailure) {
        throw PackException.from(failure)
    } catch (panic: dev.packhost.ffi.InternalException) {
        // uniffi's own: a panic in an export that does not catch it, packhost's bug.
        throw PackException.from(
            PackFailure.Failed("internal", panic.message ?: "packhost panicked", null, null, null, null, null),
        )
    }
