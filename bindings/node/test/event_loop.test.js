/**
 * The async API keeps the event loop free: a pack stuck in an endless loop runs on the libuv
 * thread pool until its timeout while timers on the main thread keep firing.
 */
'use strict'

const { test } = require('node:test')
const assert = require('node:assert/strict')

const { Pack, TimeoutError } = require('packhost')
const { packPath, quiet } = require('./support.js')

test('a looping pack times out while setInterval keeps firing', async (t) => {
  const pack = await Pack.load(packPath('hostile'), { limits: { timeout_ms: 300, fuel: null } }, quiet)
  let ticks = 0
  const interval = setInterval(() => {
    ticks += 1
  }, 10)
  const started = performance.now()
  try {
    await assert.rejects(pack.call('spin'), (err) => {
      assert.ok(err instanceof TimeoutError, `expected a TimeoutError, got ${err}`)
      assert.equal(err.code, 'timeout')
      return true
    })
  } finally {
    clearInterval(interval)
  }
  const elapsed = performance.now() - started
  t.diagnostic(`call took ${elapsed.toFixed(0)} ms; the interval fired ${ticks} times meanwhile`)
  assert.ok(elapsed >= 250, `the call returned after ${elapsed} ms, before its 300 ms timeout`)
  // A blocked loop would fire the interval once, after the call; a free one about 30 times.
  assert.ok(ticks >= 10, `the interval fired only ${ticks} times during a ${elapsed} ms call`)
})

test('the sync API blocks the event loop, as scripts expect', (t) => {
  const pack = Pack.loadSync(packPath('hostile'), { limits: { timeout_ms: 100, fuel: null } }, quiet)
  let ticks = 0
  const interval = setInterval(() => {
    ticks += 1
  }, 5)
  try {
    assert.throws(() => pack.callSync('spin'), TimeoutError)
  } finally {
    clearInterval(interval)
  }
  assert.equal(ticks, 0)
})
