// Times packhost from Kotlin the way bindings/python/bench/bench.py times it from Python:
// per-call medians over 5 rounds on the anchors' input, calls per second with one and two
// threads, and a 64-byte round trip through a host function on host_calls.wasm from the
// same folder. One line per figure, for scripts/bench_report.py; `--smoke` runs everything
// once with tiny counts (CI).
//
// Usage: java ... BenchKt PACK.wasm [--smoke]
import dev.packhost.HostFunction
import dev.packhost.Pack
import java.nio.file.Path
import java.util.concurrent.CyclicBarrier
import kotlin.concurrent.thread

private const val HOST = "packhost-kotlin"

private fun payload(n: Int): ByteArray = "hello world ".repeat(n / 12 + 1).take(n).encodeToByteArray()

private fun perCall(pack: Pack, action: String, n: Int, scale: Double, rounds: Int): Double {
    val data = payload(n)
    val calls = maxOf(1, (maxOf(20, minOf(20000, 20_000_000 / maxOf(n, 1000))) * scale).toInt())
    // The JIT compiles the call path during the first rounds: warm it as long as one round.
    repeat(calls) { pack.call(action, data) }
    val times = (1..rounds).map {
        val start = System.nanoTime()
        repeat(calls) { pack.call(action, data) }
        (System.nanoTime() - start) / 1e3 / calls
    }
    return times.sorted()[times.size / 2]
}

private fun callsPerSecond(pack: Pack, action: String, n: Int, threads: Int, seconds: Double): Double {
    val data = payload(n)
    val barrier = CyclicBarrier(threads)
    val counts = LongArray(threads)
    (0 until threads).map { index ->
        thread {
            pack.call(action, data)
            barrier.await()
            val began = System.nanoTime()
            var calls = 0L
            while ((System.nanoTime() - began) / 1e9 < seconds) {
                repeat(16) { pack.call(action, data) }
                calls += 16
            }
            counts[index] = calls
        }
    }.forEach { it.join() }
    return counts.sum() / seconds
}

fun main(args: Array<String>) {
    val path = Path.of(args[0])
    val smoke = "--smoke" in args
    val (scale, rounds) = if (smoke) 0.001 to 1 else 1.0 to 5
    val isolation = mapOf("isolation" to "pack")
    Pack.load(path, isolation).use { pack ->
        for ((action, sizes) in listOf("length" to listOf(0, 1024, 102400), "echo" to listOf(0, 1024, 102400))) {
            for (n in sizes) {
                println("$HOST $action bytes=$n per_call_us=${"%.2f".format(perCall(pack, action, n, scale, rounds))}")
            }
        }
        val (seconds, windows) = if (smoke) 0.02 to 1 else 0.25 to 9
        for ((action, n) in listOf("length" to 1024, "count_vowels" to 102400)) {
            // One and two threads in alternating windows, each reported as its median.
            val rates = mapOf(1 to mutableListOf<Double>(), 2 to mutableListOf())
            repeat(windows) { for (threads in 1..2) rates.getValue(threads) += callsPerSecond(pack, action, n, threads, seconds) }
            for (threads in 1..2) {
                val rate = rates.getValue(threads).sorted()[windows / 2]
                println("$HOST threads action=$action bytes=$n threads=$threads calls_per_s=${"%.0f".format(rate)}")
            }
        }
    }
    val notBenchmarked = HostFunction.Handler { _, _ -> throw UnsupportedOperationException("not part of the benchmark") }
    val functions = listOf(
        HostFunction("reverse") { _, input -> input.reversedArray() },
        HostFunction("add", handler = notBenchmarked),
        HostFunction("fail", handler = notBenchmarked),
        HostFunction("context_echo", handler = notBenchmarked),
    )
    Pack.load(path.toAbsolutePath().parent.resolve("host_calls.wasm"), isolation, functions).use { lent ->
        println("$HOST host_fn bytes=64 per_call_us=${"%.2f".format(perCall(lent, "reverse_via_host", 64, scale, rounds))}")
    }
}
