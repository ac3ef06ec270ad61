/**
 * Times packhost from Node the way ../shared/anchors times the official SDK: per-call
 * medians over 5 rounds on the anchors' input (sync calls, rounds interleaved across rows),
 * plus calls per second with one and two concurrent async calls (which run on the libuv
 * pool) and resident memory per loaded pack with one idle instance. One line per figure, for scripts/bench_report.py.
 * `--smoke` runs everything once with tiny counts (CI).
 *
 * Usage: node bench.js PACK.wasm [--smoke]
 *
 * PACKHOST_MODULE names the package to time (make bench points it at an installed copy);
 * by default it is this checkout.
 */
'use strict'

const fs = require('node:fs')
const path = require('node:path')
const { Pack } = require(process.env.PACKHOST_MODULE || path.join(__dirname, '..', '..', '..'))

const HOST = 'packhost-node'
// Calls share one warm instance, as the official SDK's plugin does: the like-for-like comparison.
const WARM = { isolation: 'pack' }
const payload = (n) => 'hello world '.repeat(Math.ceil(n / 12) + 1).slice(0, n)
const median = (xs) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]

function callCount(n, scale) {
  return Math.max(1, Math.floor(Math.max(20, Math.min(20000, Math.floor(20_000_000 / Math.max(n, 1000)))) * scale))
}

/**
 * Per-call microseconds for every row, as medians over `rounds` rounds. The rounds go
 * round-robin over the rows, so a slow spell of the machine lands in one round of several
 * rows instead of every round of whichever row was being timed; before that, each row has
 * one untimed round, because V8 tiers the call path up during its first thousands of calls.
 * Timing rows one after the other made the first row a process measures (length at 0 B)
 * swing between 1.7 and 2.5 us from one process to the next with the same addon.
 */
function perCallRows(pack, rows, scale, rounds) {
  const work = rows.map(([action, n]) => ({ action, n, data: payload(n), calls: callCount(n, scale), times: [] }))
  for (const row of work) for (let i = 0; i < row.calls; i++) pack.callSync(row.action, row.data)
  for (let r = 0; r < rounds; r++) {
    for (const row of work) {
      const start = performance.now()
      for (let i = 0; i < row.calls; i++) pack.callSync(row.action, row.data)
      row.times.push((performance.now() - start) / row.calls)
    }
  }
  return work.map((row) => ({ action: row.action, n: row.n, us: median(row.times) * 1000 }))
}

/** Calls per second with `inFlight` chains of awaited async calls running at once. */
async function callsPerSecond(pack, action, n, inFlight, seconds) {
  const data = payload(n)
  await pack.call(action, data)
  const began = performance.now()
  let calls = 0
  const chain = async () => {
    while (performance.now() - began < seconds * 1000) {
      await pack.call(action, data)
      calls++
    }
  }
  await Promise.all(Array.from({ length: inFlight }, chain))
  return calls / ((performance.now() - began) / 1000)
}

function residentKib() {
  return Number(fs.readFileSync('/proc/self/statm', 'utf8').split(' ')[1]) * 4
}

function perIdleInstanceKib(file, count) {
  const quiet = { onLog: null }
  Pack.loadSync(file, WARM, quiet).callSync('length', 'x')
  const before = residentKib()
  const packs = []
  for (let i = 0; i < count; i++) {
    const pack = Pack.loadSync(file, WARM, quiet)
    pack.callSync('length', 'x')
    packs.push(pack)
  }
  return (residentKib() - before) / count
}

async function main() {
  const file = process.argv[2]
  const smoke = process.argv.includes('--smoke')
  const [scale, rounds] = smoke ? [0.001, 1] : [1, 5]
  const pack = Pack.loadSync(file, WARM, { onLog: null })
  const rows = ['length', 'echo'].flatMap((action) => [0, 1024, 102400].map((n) => [action, n]))
  for (const { action, n, us } of perCallRows(pack, rows, scale, rounds)) {
    console.log(`${HOST} ${action} bytes=${n} per_call_us=${us.toFixed(2)}`)
  }
  const seconds = smoke ? 0.02 : 2
  for (const [action, n] of [['length', 1024], ['count_vowels', 102400]]) {
    for (const threads of [1, 2]) {
      const rate = await callsPerSecond(pack, action, n, threads, seconds)
      console.log(`${HOST} threads action=${action} bytes=${n} threads=${threads} calls_per_s=${rate.toFixed(0)}`)
    }
  }
  console.log(`${HOST} idle_instance rss_kib=${perIdleInstanceKib(file, smoke ? 2 : 16).toFixed(0)}`)
  const unused = () => {
    throw new Error('not part of the benchmark')
  }
  const functions = { reverse: (input) => input.reverse(), add: unused, fail: unused, context_echo: unused }
  const lent = Pack.loadSync(path.join(path.dirname(file), 'host_calls.wasm'), WARM, { onLog: null, functions })
  const [{ us }] = perCallRows(lent, [['reverse_via_host', 64]], scale, rounds)
  console.log(`${HOST} host_fn bytes=64 per_call_us=${us.toFixed(2)}`)
}

main()
