// A tour of packhost from Kotlin: load packs, call them, read usage, handle limits, lend a
// host function. Build the JAR first (`bash bindings/kotlin/package.sh` prints its path);
// bindings/kotlin/ci.sh compiles and runs this file against it:
//
//   kotlinc -cp packhost.jar:jna.jar:gson.jar examples/jvm/Quickstart.kt -d quickstart.jar
//   java -cp quickstart.jar:packhost.jar:jna.jar:gson.jar:kotlin-stdlib.jar QuickstartKt plugins/dist

import dev.packhost.HostFunction
import dev.packhost.Pack
import dev.packhost.PackException
import java.nio.file.Files
import java.nio.file.Path

fun main(args: Array<String>) {
    val packs = Path.of(args.firstOrNull() ?: "plugins/dist")
    val repo = packs.toAbsolutePath().parent.parent

    // Options are the core's PackOptions, as a Map or JSON text; limits apply to every call.
    Pack.load(packs.resolve("api_errors.wasm"), mapOf("limits" to mapOf("timeout_ms" to 500))).use { apiErrors ->
        val response = Files.readAllBytes(repo.resolve("examples/data/stripe_card_declined.json"))
        val result = apiErrors.post(response)
        val error = result.json().asJsonObject
        println("${error["provider"].asString} said ${error["code"].asString}: ${error["message"].asString}")
        println("  fuel ${result.usage.fuelConsumed}, ${result.usage.wallTimeUs} µs")
    }

    Pack.load(packs.resolve("text_tools.wasm"), """{"config": {"greeting": "Bonjour"}}""").use { textTools ->
        println(textTools.call("greet", "Ada").text)
        println(textTools.callJson("count_vowels", mapOf("text" to "hello world")).json())
        try {
            textTools.call("fail_with", "bad input")
        } catch (failed: PackException.PluginError) {
            println("failed: ${failed.code} (return code ${failed.returnCode}): ${failed.message}")
        }
    }

    Pack.load(packs.resolve("hostile.wasm"), mapOf("limits" to mapOf("timeout_ms" to 200, "fuel" to null))).use { hostile ->
        try {
            hostile.call("spin", "")
        } catch (stopped: PackException.Timeout) {
            println("stopped: ${stopped.code} after ${stopped.usage!!.wallTimeUs / 1000} ms")
        }
    }

    // Host functions lend a pack the application's own data and services; an exception
    // fails the call, never the host.
    val functions = listOf(
        HostFunction("reverse") { _, input -> input.reversedArray() },
        HostFunction("add") { _, _ -> throw UnsupportedOperationException("not lent here") },
        HostFunction("fail") { _, input -> throw NoSuchElementException("no customer ${input.decodeToString()}") },
        HostFunction("context_echo") { call, _ ->
            """{"tenant": ${call.context?.asJsonObject?.get("tenant")}, "pack": "${call.packName}"}""".encodeToByteArray()
        },
    )
    Pack.load(packs.resolve("host_calls.wasm"), null, functions).use { lent ->
        println(lent.call("reverse_via_host", "stressed").text)
        println(lent.call("context_via_host", "", context = mapOf("tenant" to "acme")).json())
        try {
            lent.call("fail_via_host", "c42")
        } catch (failed: PackException.HostFunctionError) {
            println("failed: ${failed.code} in ${failed.hostFunction} (${failed.handlerClass}): ${failed.message}")
        }
    }
}
