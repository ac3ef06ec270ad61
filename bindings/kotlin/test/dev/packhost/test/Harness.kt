// A plain test runner (no JUnit: Maven Central is not reachable and the Kotlin package must
// build from Debian and npm packages only). Each test is a named body that throws on
// failure; the run prints each failure and the standard `N passed, N failed` line.
package dev.packhost.test

import java.nio.file.Path
import java.nio.file.Paths
import kotlin.system.exitProcess

/** A test failed: what it checked, in words. */
class Failure(message: String) : AssertionError(message)

fun check(condition: Boolean, message: () -> String) {
    if (!condition) throw Failure(message())
}

/** The tests of one file, registered by name. */
open class Suite {
    internal val tests = mutableListOf<Pair<String, () -> Unit>>()

    fun test(name: String, body: () -> Unit) {
        tests += name to body
    }
}

/** The repository's root, given as the first argument (bindings/kotlin/ci.sh passes it). */
lateinit var ROOT: Path

val DIST: Path get() = ROOT.resolve("plugins/dist")
val CONFORMANCE: Path get() = ROOT.resolve("tests/conformance")

fun packPath(name: String): String = DIST.resolve("$name.wasm").toString()

/** Runs every suite (or the tests whose names contain the second argument). */
fun main(args: Array<String>) {
    ROOT = Paths.get(args.firstOrNull() ?: ".").toAbsolutePath().normalize()
    val only = args.getOrNull(1)
    val suites = listOf(PackTest(), ConformanceTest())
    var passed = 0
    var failed = 0
    for (suite in suites) {
        for ((name, body) in suite.tests) {
            if (only != null && !name.contains(only)) continue
            try {
                body()
                passed += 1
            } catch (thrown: Throwable) {
                failed += 1
                println("FAIL $name\n    ${thrown.toString().replace("\n", "\n    ")}")
            }
        }
    }
    println("$passed passed, $failed failed")
    exitProcess(if (failed == 0) 0 else 1)
}
