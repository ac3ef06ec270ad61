/**
 * Flows from Node: a flow made from a definition and `Pack`s runs its steps through the core
 * on the libuv thread pool, keeps the event loop free while it runs, stops when its
 * AbortSignal aborts, and refuses what is not a Pack.
 */
'use strict'

const { test } = require('node:test')
const assert = require('node:assert/strict')
const { getEventListeners } = require('node:events')
const { setTimeout: sleep } = require('node:timers/promises')

const {
  Flow,
  Pack,
  PackError,
  ActionNotFoundError,
  CancelledError,
  InvalidOptionsError,
  TimeoutError,
} = require('packhost')
const { packPath, quiet } = require('./support.js')

/** Only a cancel or a step's own `timeout_ms` ends `spin` under these. */
const SPIN_OPTIONS = { limits: { timeout_ms: 30000, fuel: null } }

/** Bounds a test whose cancel or step timeout does not work: its spin would run 30 s. */
const BOUNDED = { timeout: 20000 }

/** Shouts the input's text, then counts the vowels of what it shouted. */
const SHOUT_THEN_COUNT = {
  name: 'shout_then_count',
  steps: [
    { id: 'shout', pack: 'text', action: 'uppercase', input: { $from: '/input/text' } },
    { id: 'count', pack: 'text', action: 'count_vowels', input: { text: { $from: '/steps/shout/output' } } },
  ],
}

/** One step that spins, with `step` merged into it. */
function spinFlow(step = {}) {
  return { name: 'spinner', steps: [{ id: 'spin', pack: 'hostile', action: 'spin', ...step }] }
}

test('a step reads the previous step output', async () => {
  const text = await Pack.load(packPath('text_tools'), {}, quiet)
  const flow = new Flow(SHOUT_THEN_COUNT, { text })
  assert.equal(flow.name, 'shout_then_count')
  const result = await flow.run({ text: 'hello world' })
  assert.deepEqual(result.output, { count: 3, vowels: 'EOO' })
  assert.deepEqual(result.steps.map(({ id, status, pack, action }) => ({ id, status, pack, action })), [
    { id: 'shout', status: 'ok', pack: 'text', action: 'uppercase' },
    { id: 'count', status: 'ok', pack: 'text', action: 'count_vowels' },
  ])
  assert.equal(result.usage.steps_run, 2)
  assert.equal(result.usage.steps_skipped, 0)
  assert.equal(result.usage.context, null)
  assert.equal(result.usage.fuel_consumed, result.steps[0].usage.fuel_consumed + result.steps[1].usage.fuel_consumed)
  // The definition may come as JSON text too, and the context reaches every step.
  const again = await new Flow(JSON.stringify(SHOUT_THEN_COUNT), { text }).run({ text: 'hello world' }, { context: { tenant: 'acme' } })
  assert.deepEqual(again.output, { count: 3, vowels: 'EOO' })
  assert.deepEqual(again.usage.context, { tenant: 'acme' })
  for (const step of again.steps) assert.deepEqual(step.usage.context, { tenant: 'acme' })
})

test('a flow run keeps the event loop free, and a step timeout ends it with code timeout', BOUNDED, async () => {
  const hostile = await Pack.load(packPath('hostile'), SPIN_OPTIONS, quiet)
  const flow = new Flow(spinFlow({ timeout_ms: 200 }), { hostile })
  const events = []
  let ticks = 0
  const interval = setInterval(() => {
    ticks += 1
  }, 10)
  try {
    setTimeout(() => events.push('timer'), 20)
    await flow.run().then(
      () => events.push('resolved'),
      (err) => {
        assert.ok(err instanceof TimeoutError, `expected a TimeoutError, got ${err}`)
        assert.match(err.message, /step "spin"/)
        events.push(err.code)
      },
    )
  } finally {
    clearInterval(interval)
  }
  // A blocked loop would run the timer only after the run had ended.
  assert.deepEqual(events, ['timer', 'timeout'])
  assert.ok(ticks >= 5, `the interval fired only ${ticks} times while the flow ran`)
})

test('aborting the signal mid-run rejects with code cancelled', BOUNDED, async () => {
  const hostile = await Pack.load(packPath('hostile'), SPIN_OPTIONS, quiet)
  const flow = new Flow(spinFlow(), { hostile })
  const controller = new AbortController()
  const running = flow.run(null, { signal: controller.signal })
  assert.equal(getEventListeners(controller.signal, 'abort').length, 1)
  await sleep(50)
  controller.abort()
  await assert.rejects(running, (err) => {
    assert.ok(err instanceof CancelledError, `expected a CancelledError, got ${err}`)
    assert.equal(err.code, 'cancelled')
    return true
  })
  // The run's listener goes when it settles; an already aborted signal runs nothing.
  assert.equal(getEventListeners(controller.signal, 'abort').length, 0)
  await assert.rejects(flow.run(null, { signal: AbortSignal.abort() }), CancelledError)
})

test('what is not a Pack, and a bad definition, are refused when the flow is made', async () => {
  const text = await Pack.load(packPath('text_tools'), {}, quiet)
  for (const packs of [{ text: 'text_tools' }, { text: {} }, { text: null }, null, [text]]) {
    assert.throws(() => new Flow(SHOUT_THEN_COUNT, packs), InvalidOptionsError)
  }
  assert.throws(() => new Flow(SHOUT_THEN_COUNT, {}), (err) => {
    assert.ok(err instanceof InvalidOptionsError)
    assert.match(err.message, /no pack named "text"/)
    return true
  })
  assert.throws(() => new Flow({ ...SHOUT_THEN_COUNT, retries: 3 }, { text }), InvalidOptionsError)
  assert.throws(() => new Flow('not json', { text }), InvalidOptionsError)
  assert.throws(() => new Flow(42, { text }), InvalidOptionsError)
  assert.throws(() => new Flow(spinFlow({ pack: 'text' }), { text }), ActionNotFoundError)
  // Input JSON cannot write is the caller's mistake too.
  await assert.rejects(new Flow(SHOUT_THEN_COUNT, { text }).run({ text: 1n }), InvalidOptionsError)
})

test('a failing step keeps its code and names the flow and the step', async () => {
  const text = await Pack.load(packPath('text_tools'), {}, quiet)
  const flow = new Flow({ name: 'doomed', steps: [{ id: 'boom', pack: 'text', action: 'fail_with', input: 'no' }] }, { text })
  await assert.rejects(flow.run(), (err) => {
    assert.ok(err instanceof PackError)
    assert.equal(err.code, 'plugin_error')
    assert.match(err.message, /flow "doomed", step "boom"/)
    return true
  })
})

test('a flow runs a reloaded pack at its new version', async () => {
  const text = await Pack.load(packPath('text_tools'), {}, quiet)
  const flow = new Flow({ name: 'greeter', steps: [{ id: 'hi', pack: 'text', action: 'greet', input: 'x' }] }, { text })
  assert.equal((await flow.run()).steps[0].usage.pack_version, '0.1.0')
  await text.reload(packPath('text_tools_next'))
  assert.equal((await flow.run()).steps[0].usage.pack_version, '9.0.0')
})
