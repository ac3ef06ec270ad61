/**
 * Cancelling async calls with an AbortSignal: a pack stuck in an endless loop stops within
 * milliseconds of the abort, with code `cancelled`, while other calls on the same pack carry
 * on and the event loop stays free.
 */
'use strict'

const { test } = require('node:test')
const assert = require('node:assert/strict')
const { getEventListeners } = require('node:events')
const { setTimeout: sleep } = require('node:timers/promises')

const { Pack, PackError, CancelledError } = require('packhost')
const { packPath, quiet } = require('./support.js')

/** Only a cancel ends `spin` under these: no fuel cap, and a timeout far beyond any test. */
const SPIN_OPTIONS = { limits: { timeout_ms: 30000, fuel: null } }

/** How long a spin runs before it is aborted, so the abort meets a pack that is running. */
const RUNNING_MS = 50

/** What `busy` returns for `{"rounds":10}` (tests/conformance/cases/hostile.json). */
const BUSY_INPUT = '{"rounds":10}'
const BUSY_OUTPUT = 1845767244449711

/**
 * Bounds a test whose cancel does not work: its spin would otherwise run the full 30 s
 * timeout, once per trial.
 */
const BOUNDED = { timeout: 20000 }

/** For assert.rejects: the error is packhost's own for code `cancelled`. */
function isCancelled(err) {
  assert.ok(err instanceof CancelledError, `expected a CancelledError, got ${err}`)
  assert.ok(err instanceof PackError)
  assert.equal(err.code, 'cancelled')
  assert.equal(err.name, 'CancelledError')
  return true
}

/** When (`performance.now()`) `promise` settled, and with what. */
function settledAt(promise) {
  return promise.then(
    (value) => ({ at: performance.now(), value }),
    (error) => ({ at: performance.now(), error }),
  )
}

test('an aborted spin settles within 10 ms of the abort (median of 5 trials)', BOUNDED, async (t) => {
  const pack = await Pack.load(packPath('hostile'), SPIN_OPTIONS, quiet)
  // The process's first interrupted call measures the engine's fuel rate once (tens of
  // milliseconds); that one-time cost is not the cancel's, so it is left out of the trials.
  const warmUp = new AbortController()
  const warmed = settledAt(pack.call('spin', '', { signal: warmUp.signal }))
  await sleep(RUNNING_MS)
  warmUp.abort()
  isCancelled((await warmed).error)
  const waits = []
  for (let trial = 0; trial < 5; trial += 1) {
    const controller = new AbortController()
    const settled = settledAt(pack.call('spin', '', { signal: controller.signal }))
    await sleep(RUNNING_MS)
    const aborted = performance.now()
    controller.abort()
    const { at, value, error } = await settled
    assert.equal(value, undefined, 'spin returned instead of being cancelled')
    isCancelled(error)
    // Cancelled while running, the call reports what it cost, as a timeout does.
    assert.ok(error.usage !== undefined, 'a call cancelled while running carries its usage')
    assert.equal(error.usage.action, 'spin')
    waits.push(at - aborted)
  }
  const sorted = [...waits].sort((a, b) => a - b)
  const median = sorted[Math.floor(sorted.length / 2)]
  t.diagnostic(`abort to settlement: ${waits.map((ms) => ms.toFixed(2)).join(', ')} ms; median ${median.toFixed(2)} ms`)
  for (const ms of waits) assert.ok(ms < 1000, `a trial took ${ms} ms from abort to settlement`)
  assert.ok(median <= 10, `the median time from abort to settlement was ${median} ms`)
})

test('aborting a spin leaves concurrent calls on the same pack alone', BOUNDED, async () => {
  const pack = await Pack.load(packPath('hostile'), SPIN_OPTIONS, quiet)
  const controller = new AbortController()
  let spinSettled = false
  const spinning = pack.call('spin', '', { signal: controller.signal })
  spinning.then(() => { spinSettled = true }, () => { spinSettled = true })
  await sleep(RUNNING_MS)
  // Calls with no signal keep running, one after another, until the spin has settled, so
  // some of them overlap the cancel; one more has a signal of its own. None shares the
  // spin's token.
  const busy = (async () => {
    let last
    do {
      last = await pack.call('busy', BUSY_INPUT)
      assert.equal(last.json(), BUSY_OUTPUT)
    } while (!spinSettled)
    return last
  })()
  const busyWithSignal = pack.call('busy', BUSY_INPUT, { signal: new AbortController().signal })
  controller.abort()
  const [spun, worked, workedWithSignal] = await Promise.allSettled([spinning, busy, busyWithSignal])
  assert.equal(spun.status, 'rejected', 'spin returned instead of being cancelled')
  isCancelled(spun.reason)
  for (const outcome of [worked, workedWithSignal]) {
    assert.equal(outcome.status, 'fulfilled', `busy failed: ${outcome.reason}`)
    assert.equal(outcome.value.json(), BUSY_OUTPUT)
  }
  // The cancel stopped that one call, not the pack.
  assert.equal((await pack.call('busy', BUSY_INPUT)).json(), BUSY_OUTPUT)
})

test('an already aborted signal rejects with code cancelled without running the pack', BOUNDED, async () => {
  const pack = await Pack.load(packPath('hostile'), SPIN_OPTIONS, quiet)
  const controller = new AbortController()
  controller.abort()
  const started = performance.now()
  await assert.rejects(pack.call('spin', '', { signal: controller.signal }), isCancelled)
  await assert.rejects(pack.call('busy', BUSY_INPUT, { signal: AbortSignal.abort() }), isCancelled)
  assert.ok(performance.now() - started < 1000, 'a call with an aborted signal ran')
  // The pre and post hooks take the signal as call does.
  const hooks = await Pack.load(packPath('api_errors'), {}, quiet)
  await assert.rejects(hooks.pre('{}', { signal: AbortSignal.abort() }), isCancelled)
  await assert.rejects(hooks.post('{}', { context: { tenant: 'acme' }, signal: AbortSignal.abort() }), isCancelled)
})

test('the event loop stays free while a call waits for its abort', BOUNDED, async () => {
  const pack = await Pack.load(packPath('hostile'), SPIN_OPTIONS, quiet)
  const controller = new AbortController()
  const events = []
  let ticks = 0
  const interval = setInterval(() => {
    ticks += 1
  }, 5)
  try {
    const call = pack.call('spin', '', { signal: controller.signal }).then(
      () => events.push('resolved'),
      (err) => events.push(err.code),
    )
    setTimeout(() => events.push('timer'), 20)
    setTimeout(() => {
      events.push('abort')
      controller.abort()
    }, 100)
    await call
  } finally {
    clearInterval(interval)
  }
  // A blocked loop would run both timers only after the call had ended, which only the
  // abort (itself a timer) can do.
  assert.deepEqual(events, ['timer', 'abort', 'cancelled'])
  assert.ok(ticks >= 5, `the interval fired only ${ticks} times while the pack ran`)
})

test('each call removes its abort listener when it settles, so one signal can serve many calls', BOUNDED, async () => {
  const pack = await Pack.load(packPath('hostile'), SPIN_OPTIONS, quiet)
  const controller = new AbortController()
  const { signal } = controller
  for (let i = 0; i < 3; i += 1) {
    assert.equal((await pack.call('busy', BUSY_INPUT, { signal })).json(), BUSY_OUTPUT)
  }
  assert.equal(getEventListeners(signal, 'abort').length, 0)
  const spinning = pack.call('spin', '', { signal })
  assert.equal(getEventListeners(signal, 'abort').length, 1)
  await sleep(RUNNING_MS)
  controller.abort()
  await assert.rejects(spinning, isCancelled)
  assert.equal(getEventListeners(signal, 'abort').length, 0)
})

test('a signal is checked, and sync calls refuse one', async () => {
  const pack = await Pack.load(packPath('hostile'), SPIN_OPTIONS, quiet)
  // No signal at all is the same as none given.
  assert.equal((await pack.call('busy', BUSY_INPUT, { signal: null })).json(), BUSY_OUTPUT)
  assert.equal((await pack.call('busy', BUSY_INPUT, { signal: undefined })).json(), BUSY_OUTPUT)
  await assert.rejects(pack.call('busy', BUSY_INPUT, { signal: 'stop' }), TypeError)
  await assert.rejects(pack.call('busy', BUSY_INPUT, { signal: {} }), TypeError)
  // A sync call blocks the event loop: no abort could reach it while it runs.
  assert.throws(() => pack.callSync('busy', BUSY_INPUT, { signal: new AbortController().signal }), TypeError)
  assert.equal(pack.callSync('busy', BUSY_INPUT, { signal: null }).json(), BUSY_OUTPUT)
  assert.throws(() => pack.preSync('{}', { signal: AbortSignal.abort() }), TypeError)
  assert.equal(pack.callSync('busy', BUSY_INPUT).json(), BUSY_OUTPUT)
})
