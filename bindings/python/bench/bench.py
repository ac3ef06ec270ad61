"""Times packhost from Python the way ../shared/anchors times the official SDK: per-call
medians over 5 rounds on the anchors' input, plus calls per second with one and two threads
and resident memory per loaded pack with one idle instance; then a 64-byte round trip
through a host function, on ``host_calls.wasm`` from the same folder. One line per figure,
for scripts/bench_report.py. ``--smoke`` runs everything once with tiny counts (CI).

Usage: python bench.py PACK.wasm [--smoke]
"""
import os
import statistics
import sys
import threading
import time

import packhost

HOST = "packhost-python"


def payload(n):
    return ("hello world " * (n // 12 + 1))[:n]


def per_call(pack, action, n, scale, rounds):
    data = payload(n)
    calls = max(1, int(max(20, min(20000, 20_000_000 // max(n, 1000))) * scale))
    pack.call(action, data)
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            pack.call(action, data)
        times.append((time.perf_counter() - start) / calls)
    return statistics.median(times) * 1e6


def calls_per_second(pack, action, n, threads, seconds):
    data = payload(n)
    barrier = threading.Barrier(threads)
    counts = [0] * threads

    def work(index):
        pack.call(action, data)
        barrier.wait()
        began = time.perf_counter()
        calls = 0
        while time.perf_counter() - began < seconds:
            for _ in range(16):
                pack.call(action, data)
            calls += 16
        counts[index] = calls

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sum(counts) / seconds


def resident_kib():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4


def per_idle_instance_kib(path, count):
    warm = packhost.Pack(path, isolation="pack")
    warm.call("length", "x")
    before = resident_kib()
    packs = []
    for _ in range(count):
        pack = packhost.Pack(path, isolation="pack")
        pack.call("length", "x")
        packs.append(pack)
    return (resident_kib() - before) / count


def not_benchmarked(data):
    raise LookupError("not part of the benchmark")


def host_fn_round_trip(folder, scale, rounds):
    """Per-call time of a 64-byte round trip through ``reverse``, a plain callable."""
    functions = {
        "reverse": lambda data: data[::-1],
        "add": not_benchmarked,
        "fail": not_benchmarked,
        "context_echo": not_benchmarked,
    }
    pack = packhost.Pack(
        os.path.join(folder, "host_calls.wasm"), isolation="pack", functions=functions
    )
    return per_call(pack, "reverse_via_host", 64, scale, rounds)


def main():
    path = sys.argv[1]
    smoke = "--smoke" in sys.argv
    scale, rounds = (0.001, 1) if smoke else (1.0, 5)
    pack = packhost.Pack(path, isolation="pack")
    for action, sizes in (("length", (0, 1024, 102400)), ("echo", (0, 1024, 102400))):
        for n in sizes:
            us = per_call(pack, action, n, scale, rounds)
            print(f"{HOST} {action} bytes={n} per_call_us={us:.2f}")
    seconds, windows = (0.02, 1) if smoke else (0.25, 9)
    for action, n in (("length", 1024), ("count_vowels", 102400)):
        # One and two threads in alternating windows, each reported as its median: this VM's
        # slow spells last seconds, and would skew a ratio measured one after the other.
        rates: dict = {1: [], 2: []}
        for _ in range(windows):
            for threads in (1, 2):
                rates[threads].append(calls_per_second(pack, action, n, threads, seconds))
        for threads in (1, 2):
            rate = statistics.median(rates[threads])
            print(f"{HOST} threads action={action} bytes={n} threads={threads} calls_per_s={rate:.0f}")
    kib = per_idle_instance_kib(path, 2 if smoke else 16)
    print(f"{HOST} idle_instance rss_kib={kib:.0f}")
    us = host_fn_round_trip(os.path.dirname(os.path.abspath(path)), scale, rounds)
    print(f"{HOST} host_fn bytes=64 per_call_us={us:.2f}")


main()
