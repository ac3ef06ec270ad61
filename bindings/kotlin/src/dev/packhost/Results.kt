// What a call hands back: CallResult (output, usage, logs, audit trail), Usage and LogRecord.
package dev.packhost

import com.google.gson.JsonElement
import com.google.gson.JsonObject
import dev.packhost.ffi.CallReport
import dev.packhost.ffi.CallUsage

/** A successful call: the pack's output with the call's usage, logs and audit trail. */
class CallResult internal constructor(
    /** The bytes the pack returned. */
    val output: ByteArray,
    /** What the call cost. */
    val usage: Usage,
    /** What the pack logged, in order. */
    val logs: List<LogRecord>,
    private val auditJson: String?,
) {
    internal constructor(output: ByteArray, report: CallReport) :
        this(output, Usage(report.usage), logRecords(report), report.auditJson)

    /** Every capability the pack used, refusals included, in order. */
    val audit: List<JsonObject> by lazy { auditEntries(auditJson) }

    /** The output as UTF-8 text; throws CharacterCodingException when it is not text. */
    val text: String
        @Throws(java.nio.charset.CharacterCodingException::class)
        get() = output.decodeToString(throwOnInvalidSequence = true)

    /** The output parsed as JSON. */
    fun json(): JsonElement = Json.parse(text)

    override fun toString(): String =
        "CallResult(outputBytes=${output.size}, fuelConsumed=${usage.fuelConsumed}, logs=${logs.size})"
}

/** The cost of one call, as the core measured it, and the context it was for. */
data class Usage(
    /** Wall-clock time inside the engine, in microseconds. */
    val wallTimeUs: Long,
    /** Fuel burnt by the call. */
    val fuelConsumed: Long,
    /** Largest total linear memory of the instance during the call, in bytes. */
    val peakMemoryBytes: Long,
    /** Size of the input, in bytes. */
    val inputBytes: Long,
    /** Size of the output, in bytes (0 when the call failed). */
    val outputBytes: Long,
    /** Host functions the pack called. */
    val hostCalls: Long,
    /** Time inside host functions' handlers, in microseconds. */
    val hostTimeUs: Long,
    /** Key-value operations the pack made, refused ones included. */
    val kvOps: Long,
    /** HTTP requests the pack made, refused ones included. */
    val httpRequests: Long,
    /** Bytes of HTTP request bodies the pack sent. */
    val httpBytesSent: Long,
    /** Bytes of HTTP response bodies the pack received. */
    val httpBytesReceived: Long,
    /** The call's context; null when it had none. */
    val context: JsonElement?,
    /** The pack's name, from its manifest. */
    val packName: String,
    /** The pack's version, from its manifest. */
    val packVersion: String,
    /** The pack's id: the SHA-256 of its module, in lowercase hex. */
    val packId: String,
    /** The action called. */
    val action: String,
) {
    internal constructor(usage: CallUsage) : this(
        usage.wallTimeUs.toLong(), usage.fuelConsumed.toLong(), usage.peakMemoryBytes.toLong(),
        usage.inputBytes.toLong(), usage.outputBytes.toLong(), usage.hostCalls.toLong(),
        usage.hostTimeUs.toLong(), usage.kvOps.toLong(), usage.httpRequests.toLong(),
        usage.httpBytesSent.toLong(), usage.httpBytesReceived.toLong(),
        Json.parseOrNull(usage.contextJson), usage.packName, usage.packVersion, usage.packId,
        usage.action,
    )
}

/** One line a pack logged: its level (`trace` to `error`) and text. */
data class LogRecord(val level: String, val message: String)

internal fun logRecords(report: CallReport?): List<LogRecord> =
    report?.logs?.map { LogRecord(it.level, it.message) } ?: emptyList()

internal fun auditEntries(auditJson: String?): List<JsonObject> =
    auditJson?.let { Json.parse(it).asJsonArray.map { entry -> entry.asJsonObject } } ?: emptyList()
