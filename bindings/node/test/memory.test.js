/**
 * Long-running hosts do not leak: many calls and many load/drop cycles leave memory where
 * it settled after warm-up (within a generous bound; RSS is noisy).
 */
'use strict'

const { test } = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const v8 = require('node:v8')
const vm = require('node:vm')

const { Pack } = require('packhost')
const { packPath, quiet } = require('./support.js')

v8.setFlagsFromString('--expose-gc')
const collectGarbage = vm.runInNewContext('gc')

const MiB = 1024 * 1024
const ALLOWED_GROWTH = 64 * MiB

async function settledMemory() {
  // Several passes with a turn of the event loop between them: Node runs the finalizers that
  // free native packs and external buffers after a collection, not during it.
  for (let pass = 0; pass < 4; pass += 1) {
    collectGarbage()
    await new Promise((resolve) => setImmediate(resolve))
  }
  return { rss: process.memoryUsage().rss, heap: process.memoryUsage().heapUsed }
}

function callMany(pack, count) {
  for (let i = 0; i < count; i += 1) {
    const result = pack.callSync('count_vowels', { text: `aeiou ${i}` })
    if (result.json().count !== 5) throw new Error(`call ${i} gave ${result.text}`)
  }
}

async function loadAndDropMany(bytes, count) {
  for (let i = 0; i < count; i += 1) {
    // Alternate sources and call every tenth pack so dropped packs hold live instances.
    const pack = i % 2 === 0 ? Pack.loadSync(bytes, {}, quiet) : await Pack.load(packPath('text_tools'), {}, quiet)
    if (i % 10 === 0) pack.callSync('echo', `cycle ${i}`)
    // V8 cannot see the native memory a pack holds, so a tight loop would outrun the
    // collector; collecting now and then makes RSS track what is still reachable.
    if (i % 100 === 99) await settledMemory()
  }
}

function report(t, label, before, after) {
  const mib = (bytes) => (bytes / MiB).toFixed(1)
  t.diagnostic(`${label}: rss ${mib(before.rss)} -> ${mib(after.rss)} MiB, heap ${mib(before.heap)} -> ${mib(after.heap)} MiB`)
}

test('10,000 calls do not grow memory without bound', async (t) => {
  const pack = Pack.loadSync(packPath('text_tools'), {}, quiet)
  // Warm-up fills the pack's instance pool, one instance per thread-pool thread.
  callMany(pack, 1000)
  await Promise.all(Array.from({ length: 1000 }, (_, i) => pack.call('echo', `warm-up ${i}`)))
  const before = await settledMemory()
  callMany(pack, 9000)
  await Promise.all(Array.from({ length: 1000 }, (_, i) => pack.call('echo', `async ${i}`)))
  const after = await settledMemory()
  report(t, '10,000 calls', before, after)
  assert.ok(after.rss - before.rss < ALLOWED_GROWTH, 'RSS grew by more than 64 MiB')
  assert.ok(after.heap - before.heap < 16 * MiB, 'the JS heap grew by more than 16 MiB')
})

test('1,000 load/drop cycles do not grow memory without bound', async (t) => {
  const bytes = fs.readFileSync(packPath('text_tools'))
  await loadAndDropMany(bytes, 100)
  const before = await settledMemory()
  await loadAndDropMany(bytes, 1000)
  const after = await settledMemory()
  report(t, '1,000 load/drop cycles', before, after)
  assert.ok(after.rss - before.rss < ALLOWED_GROWTH, 'RSS grew by more than 64 MiB')
  assert.ok(after.heap - before.heap < 16 * MiB, 'the JS heap grew by more than 16 MiB')
})
