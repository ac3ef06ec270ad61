// Flow: a definition whose steps call packs, checked against them, run as one call.
package dev.packhost

import com.google.gson.JsonObject
import dev.packhost.ffi.NativeFlow

/**
 * A flow (README, "Flows"): [definition] is JSON text or any value Gson serialises, [packs]
 * the packs its steps name. Making it checks the definition against the packs; a problem
 * throws [PackException.InvalidOptions] or [PackException.ActionNotFound].
 */
class Flow @Throws(PackException::class) constructor(definition: Any, packs: Map<String, Pack>) : AutoCloseable {
    private val native: NativeFlow = ffi { NativeFlow(Json.document(definition), packs.mapValues { it.value.native }) }

    /** The flow's name, from its definition. */
    val name: String get() = native.name()

    /**
     * Runs the flow on [input] (any value Gson serialises, or a JsonElement); every step's
     * call gets [context]. The result holds `output`, `steps` and `usage`. A failing step
     * throws its call's exception, its message naming the flow and the step ([PackException.flowStep]).
     */
    @Throws(PackException::class)
    @JvmOverloads
    fun run(input: Any? = null, context: Any? = null, cancel: CancelToken? = null): JsonObject =
        ffi { Json.parse(native.run(Json.value(input), Json.callOptions(context), cancel?.native)).asJsonObject }

    override fun close() = native.close()
}
