// Facts about the packhost build itself, for callers that log or check what they run.
package dev.packhost

import com.google.gson.JsonObject

/** The packhost library this package carries. */
object Packhost {
    /** How the native library was built: version, profile, optimisation level, engines. */
    @JvmStatic
    fun buildInfo(): JsonObject = Json.parse(dev.packhost.ffi.buildInfoJson()).asJsonObject

    /** Every error code a load or call can end with, in the core's order. */
    @JvmStatic
    fun errorCodes(): List<String> = dev.packhost.ffi.errorCodes()
}
