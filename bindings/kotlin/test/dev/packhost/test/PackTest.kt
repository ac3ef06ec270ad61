// The Kotlin layer's own promises, beyond the shared cases: one exception class per code,
// the text and JSON call forms, typed failures on bad input, calls from many threads at once
// with no lock between them, cancelling from another thread, host-function exceptions.
package dev.packhost.test

import dev.packhost.CancelToken
import dev.packhost.callAsync
import kotlinx.coroutines.CancellationException
import kotlinx.coroutines.cancelAndJoin
import kotlinx.coroutines.delay
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import dev.packhost.HostFunction
import dev.packhost.Pack
import dev.packhost.PackException
import java.nio.file.Files
import java.util.Collections
import java.util.concurrent.CountDownLatch
import java.util.concurrent.Executors
import java.util.concurrent.TimeUnit
import java.util.concurrent.atomic.AtomicInteger
import kotlin.concurrent.thread

private inline fun <reified E : PackException> expectThrows(body: () -> Unit): E {
    try {
        body()
    } catch (thrown: PackException) {
        check(thrown is E) { "threw ${thrown::class.simpleName} (${thrown.code}: ${thrown.message}), expected ${E::class.simpleName}" }
        return thrown as E
    }
    throw Failure("threw nothing, expected ${E::class.simpleName}")
}

/** More fuel than a spinning call burns before its timeout or cancel ends it. */
private const val UNBOUNDED_FUEL = 1L shl 50

class PackTest : Suite() {
    init {
        test("every error code of the core has its own exception class") {
            val core = dev.packhost.Packhost.errorCodes()
            check(PackException.CODES == core) { "classes for ${PackException.CODES}, core codes $core" }
        }

        test("the JAR carries the optimised release build (when CI asks)") {
            if (System.getenv("PACKHOST_EXPECT_RELEASE") == "1") {
                val info = dev.packhost.Packhost.buildInfo()
                check(info["profile"].asString == "release" && info["opt_level"].asString == "3") { "build $info" }
                check(!info["debug_assertions"].asBoolean) { "build $info" }
            }
        }

        test("a call takes bytes, text or a JSON value and reads back text and JSON") {
            Pack.load(packPath("text_tools")).use { pack ->
                val fromValue = pack.callJson("count_vowels", mapOf("text" to "hello world"))
                check(fromValue.json().asJsonObject["count"].asInt == 3) { "count of ${fromValue.text}" }
                val fromText = pack.call("count_vowels", """{"text":"aaa"}""")
                check(fromText.json().asJsonObject["count"].asInt == 3) { "count of ${fromText.text}" }
                check(fromText.usage.action == "count_vowels") { "usage names ${fromText.usage.action}" }
                check(fromText.usage.packName == pack.name) { "usage names ${fromText.usage.packName}" }
                check(fromText.usage.inputBytes == 14L) { "input bytes ${fromText.usage.inputBytes}" }
                check("count_vowels" in pack.actions) { "actions ${pack.actions}" }
            }
        }

        test("bad input is a typed exception: bytes that are no module, a missing file, bad options") {
            expectThrows<PackException.InvalidPack> { Pack.fromBytes(byteArrayOf(1, 2, 3)) }
            expectThrows<PackException.Io> { Pack.load(packPath("no_such_pack")) }
            expectThrows<PackException.InvalidOptions> { Pack.load(packPath("text_tools"), """{"limits": 7}""") }
            expectThrows<PackException.InvalidOptions> { Pack.load(packPath("text_tools"), "{not json") }
            Pack.load(packPath("text_tools")).use { pack ->
                expectThrows<PackException.ActionNotFound> { pack.call("no_such_action", "") }
            }
        }

        test("a failed call's exception carries the call's usage") {
            Pack.load(packPath("hostile"), mapOf("limits" to mapOf("timeout_ms" to 50))).use { pack ->
                val error = expectThrows<PackException.Timeout> { pack.call("spin", "", context = mapOf("tenant" to "t1")) }
                check(error.usage != null && error.usage!!.fuelConsumed > 0) { "usage ${error.usage}" }
                check(error.usage!!.context.toString() == """{"tenant":"t1"}""") { "context ${error.usage!!.context}" }
            }
        }

        test("threads call one pack at once, and a long call holds none of them up") {
            Pack.load(packPath("text_tools")).use { quick ->
                Pack.load(packPath("hostile"), mapOf("limits" to mapOf("timeout_ms" to 3000, "fuel" to UNBOUNDED_FUEL))).use { slow ->
                    val slowStarted = CountDownLatch(1)
                    var slowEnded = false
                    val spinner = thread {
                        slowStarted.countDown()
                        try {
                            slow.call("spin", "")
                        } catch (expected: PackException.Timeout) {
                        }
                        slowEnded = true
                    }
                    slowStarted.await()
                    val pool = Executors.newFixedThreadPool(4)
                    val outputs = Collections.synchronizedList(mutableListOf<Int>())
                    repeat(200) { index ->
                        pool.submit {
                            val text = "a".repeat(index % 7)
                            outputs += quick.callJson("count_vowels", mapOf("text" to text)).json().asJsonObject["count"].asInt
                        }
                    }
                    pool.shutdown()
                    check(pool.awaitTermination(60, TimeUnit.SECONDS)) { "the calls did not finish" }
                    check(!slowEnded) { "the quick calls waited for the spinning one" }
                    check(outputs.size == 200) { "${outputs.size} of 200 calls answered" }
                    check(outputs.sorted() == (0 until 200).map { it % 7 }.sorted()) { "wrong counts" }
                    spinner.join()
                }
            }
        }

        test("a cancel from another thread ends a running call with Cancelled") {
            Pack.load(packPath("hostile"), mapOf("limits" to mapOf("timeout_ms" to 10000, "fuel" to UNBOUNDED_FUEL))).use { pack ->
                CancelToken().use { token ->
                    val started = System.nanoTime()
                    thread {
                        Thread.sleep(100)
                        token.cancel()
                    }
                    expectThrows<PackException.Cancelled> { pack.call("spin", "", cancel = token) }
                    val seconds = (System.nanoTime() - started) / 1e9
                    check(seconds < 5) { "the cancelled call took ${seconds}s" }
                    check(token.isCancelled) { "the token does not say it was cancelled" }
                }
            }
        }

        test("a host function's exception ends the call, naming the function and its class") {
            val functions = SUITE_FUNCTIONS.filter { it.name != "fail" } + HostFunction("fail") { call, input ->
                throw IllegalStateException("${call.packName}: ${input.decodeToString()}")
            }
            Pack.load(packPath("host_calls"), null, functions).use { pack ->
                val error = expectThrows<PackException.HostFunctionError> { pack.call("fail_via_host", "boom") }
                check(error.hostFunction == "fail") { "function ${error.hostFunction}" }
                check(error.handlerClass == "IllegalStateException") { "class ${error.handlerClass}" }
                check(error.message!!.contains("host_calls: boom")) { "message ${error.message}" }
                check(pack.call("reverse_via_host", "ok").text == "ko") { "the pack does not call on" }
            }
        }

        test("closing a pack while threads call it ends their calls cleanly, never the process") {
            val pack = Pack.load(packPath("text_tools"))
            val answered = AtomicInteger()
            val unexpected = Collections.synchronizedList(mutableListOf<Throwable>())
            // Each caller calls until a call says the pack is closed, so every one of them
            // must meet the close, however fast or slow the calls before it were.
            val callers = (1..4).map {
                thread {
                    while (true) {
                        try {
                            pack.call("count_vowels", """{"text":"aeiou"}""")
                            answered.incrementAndGet()
                        } catch (closed: IllegalStateException) {
                            break
                        } catch (other: Throwable) {
                            unexpected += other
                            break
                        }
                    }
                }
            }
            val deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30)
            while (answered.get() < 400 && System.nanoTime() < deadline) Thread.sleep(1)
            check(answered.get() >= 400) { "only ${answered.get()} calls answered in 30 s" }
            pack.close()
            callers.forEach { it.join(TimeUnit.SECONDS.toMillis(30)) }
            check(callers.none { it.isAlive }) { "a caller still runs 30 s after the close" }
            check(unexpected.isEmpty()) { "calls ended otherwise: $unexpected" }
        }

        test("a CancelToken given as the context is refused, not sent as JSON") {
            Pack.load(packPath("text_tools")).use { pack ->
                CancelToken().use { token ->
                    try {
                        pack.call("count_vowels", "{}", token)
                        throw Failure("the call took a CancelToken as its context")
                    } catch (refused: IllegalArgumentException) {
                        check(refused.message!!.contains("cancel")) { "message ${refused.message}" }
                    }
                }
            }
        }

        test("callAsync answers off the caller's thread, and cancelling the coroutine ends the call") {
            Pack.load(packPath("text_tools")).use { pack ->
                val answer = runBlocking { pack.callAsync("count_vowels", """{"text":"aeiou"}""") }
                check(answer.json().asJsonObject["count"].asInt == 5) { "answer ${answer.text}" }
            }
            Pack.load(packPath("hostile"), mapOf("limits" to mapOf("timeout_ms" to 20000, "fuel" to UNBOUNDED_FUEL))).use { pack ->
                val started = System.nanoTime()
                var outcome: Throwable? = null
                runBlocking {
                    val spinning = launch {
                        try {
                            pack.callAsync("spin", "")
                        } catch (thrown: Throwable) {
                            outcome = thrown
                            throw thrown
                        }
                    }
                    delay(100)
                    spinning.cancelAndJoin()
                }
                val seconds = (System.nanoTime() - started) / 1e9
                check(seconds < 5) { "the cancelled coroutine's call ran ${seconds}s" }
                check(outcome is CancellationException) { "the coroutine ended with $outcome" }
            }
        }

        test("a pack loads from bytes and its next version replaces it") {
            val bytes = Files.readAllBytes(DIST.resolve("text_tools.wasm"))
            Pack.fromBytes(bytes).use { pack ->
                pack.loadNext(packPath("text_tools_next")).use { next ->
                    check(next.version == "9.0.0") { "next version ${next.version}" }
                    check(pack.version != "9.0.0") { "the old pack changed" }
                }
            }
        }
    }
}
