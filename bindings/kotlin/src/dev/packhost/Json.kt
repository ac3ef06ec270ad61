// The JSON the layer hands to and reads from the core, through Gson (Debian's
// libgoogle-gson-java): options and definitions as documents, contexts and inputs as values.
package dev.packhost

import com.google.gson.Gson
import com.google.gson.GsonBuilder
import com.google.gson.JsonElement
import com.google.gson.JsonNull
import com.google.gson.JsonParser

internal object Json {
    // Nulls inside maps are kept: `{"context": null}` means something to a pack.
    private val gson: Gson = GsonBuilder().serializeNulls().disableHtmlEscaping().create()

    /** A document given as JSON text, or as any value Gson serialises (a Map, a JsonElement). */
    fun document(value: Any?): String = if (value is String) value else value(value)

    /** Any value as JSON text: a String becomes a JSON string. */
    fun value(value: Any?): String = when (value) {
        is JsonElement -> value.toString()
        else -> gson.toJson(value)
    }

    /** A call's context as JSON text, or null when there is none. */
    private fun context(context: Any?): String? {
        require(context !is CancelToken) { "a CancelToken goes in the `cancel` argument, not `context`" }
        return if (context == null || context is JsonNull) null else value(context)
    }

    /** The call options carrying `context`, or null when there is none. */
    fun callOptions(context: Any?): String? = context(context)?.let { "{\"context\":$it}" }

    fun parse(text: String): JsonElement = JsonParser.parseString(text)

    /** Parsed JSON text, null for none. */
    fun parseOrNull(text: String?): JsonElement? = text?.let(::parse)
}
