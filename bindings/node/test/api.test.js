/**
 * The Node API as a user meets it: loading from paths, URLs and bytes, the input forms a
 * call accepts, what a result and an error carry, and where plugin log lines go.
 */
'use strict'

const { describe, test } = require('node:test')
const assert = require('node:assert/strict')
const crypto = require('node:crypto')
const fs = require('node:fs')
const { pathToFileURL } = require('node:url')

const packhost = require('packhost')
const { Pack, CallResult, PackError, PluginError, InvalidOptionsError, IoError, ActionNotFoundError, HostFunctionError } = packhost
const { packPath, quiet, suiteFunctions } = require('./support.js')

describe('loading', () => {
  test('from a path, a file: URL, a Buffer and an ArrayBuffer gives the same pack', async () => {
    const file = packPath('text_tools')
    const bytes = fs.readFileSync(file)
    const packs = [
      Pack.loadSync(file, {}, quiet),
      await Pack.load(pathToFileURL(file), {}, quiet),
      await Pack.load(bytes, {}, quiet),
      Pack.loadSync(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length), {}, quiet),
    ]
    const sha256 = crypto.createHash('sha256').update(bytes).digest('hex')
    for (const pack of packs) {
      assert.equal(pack.id, sha256)
      assert.equal(pack.name, 'text-tools')
      assert.ok(pack.actions.includes('count_vowels'))
    }
  })

  test('the manifest describes actions and capabilities', () => {
    const pack = Pack.loadSync(packPath('api_errors'), undefined, quiet)
    assert.deepEqual(
      pack.manifest.actions.map((action) => action.name),
      ['pre', 'post'],
    )
    assert.equal(typeof pack.manifest.version, 'string')
  })

  test('a missing file is an IoError and bad options an InvalidOptionsError', async () => {
    await assert.rejects(Pack.load('/no/such/pack.wasm'), (err) => err instanceof IoError && err.code === 'io')
    assert.throws(
      () => Pack.loadSync(packPath('text_tools'), { limits: { timeout: 10 } }),
      (err) => err instanceof InvalidOptionsError && err.message.includes('timeout'),
    )
    assert.throws(() => Pack.loadSync(packPath('text_tools'), { limits: { fuel: 10n } }), InvalidOptionsError)
  })

  test('options are the core\'s: large numbers keep their value', () => {
    const pack = Pack.loadSync(packPath('text_tools'), { limits: { fuel: 50_000_000_000, memory_bytes: 2 ** 33 } }, quiet)
    assert.equal(pack.callSync('uppercase', 'ok').text, 'OK')
  })

  test('packs come from Pack.load, not the constructor', () => {
    assert.throws(() => new Pack(), TypeError)
  })
})

test('buildInfo says how the addon was built', () => {
  const info = packhost.buildInfo()
  assert.deepEqual(Object.keys(info).sort(), ['debug_assertions', 'opt_level', 'profile', 'version', 'wasmtime'])
  assert.equal(info.version, require('../../../package.json').version)
  assert.match(info.wasmtime, /^43\./)
  assert.equal(info.opt_level === '0', info.profile === 'dev')
  // ci.sh builds the addon with `npm run build`, the release build `npm pack` ships.
  if (process.env.PACKHOST_EXPECT_RELEASE === '1') {
    assert.deepEqual([info.profile, info.opt_level, info.debug_assertions], ['release', '3', false])
  }
})

describe('calling', () => {
  const pack = Pack.loadSync(packPath('text_tools'), {}, quiet)

  test('a string, a Buffer, a Uint8Array and an object all reach the pack as bytes', () => {
    const json = '{"text":"hello"}'
    const inputs = [json, Buffer.from(json), new TextEncoder().encode(json), { text: 'hello' }]
    for (const input of inputs) {
      assert.equal(pack.callSync('echo', input).text, json)
    }
    assert.equal(pack.callSync('echo').text, '')
  })

  test('input in memory shared with other threads is copied when the call starts', async () => {
    const json = '{"text":"hello"}'
    const shared = new Uint8Array(new SharedArrayBuffer(json.length))
    shared.set(Buffer.from(json))
    const call = pack.call('echo', shared)
    // Another thread could write here while the pack runs on the pool; the pack must not see it.
    shared.fill(0x78)
    assert.equal((await call).text, json)
    assert.equal(pack.callSync('echo', shared.buffer).text, 'x'.repeat(json.length))
  })

  test('a result gives bytes, text, parsed JSON and the usage record', async () => {
    const result = await pack.call('count_vowels', { text: 'hello world' })
    assert.ok(result instanceof CallResult)
    assert.deepEqual(result.json(), { count: 3, vowels: 'eoo' })
    assert.equal(result.text, '{"count":3,"vowels":"eoo"}')
    assert.ok(Buffer.isBuffer(result.bytes))
    assert.equal(String(result), result.text)
    assert.equal(result.usage.input_bytes, Buffer.byteLength('{"text":"hello world"}'))
    assert.equal(result.usage.output_bytes, result.bytes.length)
    assert.ok(result.usage.fuel_consumed > 0)
    assert.ok(result.usage.peak_memory_bytes > 0)
    assert.equal(typeof result.usage.wall_time_us, 'number')
    assert.equal(result.usage.host_calls, 0)
    assert.equal(result.usage.host_time_us, 0)
    assert.equal(result.usage.kv_ops, 0)
    assert.equal(result.usage.http_requests, 0)
    assert.equal(result.usage.http_bytes_sent, 0)
    assert.equal(result.usage.http_bytes_received, 0)
    assert.equal(result.usage.context, null)
    assert.equal(result.usage.pack_name, 'text-tools')
    assert.equal(result.usage.pack_version, pack.manifest.version)
    assert.equal(result.usage.pack_id, pack.id)
    assert.equal(result.usage.action, 'count_vowels')
    assert.deepEqual(result.audit, [])
  })

  test('a sync result carries the same usage record and audit trail as an async one', async () => {
    const input = { text: 'hello world' }
    const options = { context: { tenant: 'acme' } }
    const viaSync = pack.callSync('count_vowels', input, options)
    const viaAsync = await pack.call('count_vowels', input, options)
    // The same fields, in the core's order: a slot added on one side only shows here.
    assert.deepEqual(Object.keys(viaSync.usage), Object.keys(viaAsync.usage))
    for (const field of ['input_bytes', 'output_bytes', 'host_calls', 'kv_ops', 'http_requests', 'http_bytes_sent', 'http_bytes_received']) {
      assert.equal(viaSync.usage[field], viaAsync.usage[field], field)
    }
    assert.equal(viaSync.usage.output_bytes, viaSync.bytes.length)
    assert.equal(viaSync.usage.http_requests, 0)
    assert.deepEqual(viaSync.usage.context, { tenant: 'acme' })
    assert.equal(viaSync.usage.pack_name, 'text-tools')
    assert.equal(viaSync.usage.pack_version, pack.manifest.version)
    assert.equal(viaSync.usage.pack_id, pack.id)
    assert.equal(viaSync.usage.action, 'count_vowels')
    assert.deepEqual(viaSync.audit, [])
    assert.deepEqual(viaAsync.audit, [])
  })

  test('a result\'s audit trail lists every capability the call used, sync and async', async () => {
    const lent = Pack.loadSync(packPath('host_calls'), {}, { ...quiet, functions: suiteFunctions() })
    const reversed = { capability: 'host_function', operation: 'call', target: 'reverse', outcome: 'ok', bytes_sent: 0, bytes_received: 0 }
    const viaSync = lent.callSync('reverse_via_host', 'hello')
    assert.equal(viaSync.text, 'olleh')
    assert.deepEqual(viaSync.audit, [reversed])
    assert.equal(viaSync.usage.action, 'reverse_via_host')
    const viaAsync = await lent.call('reverse_via_host', 'hello')
    assert.deepEqual(viaAsync.audit, [reversed])
    assert.equal(lent.stats().host_calls, 2)
  })

  test('sync and async calls on fresh packs burn the same fuel', async () => {
    // Fresh packs on both sides: a reused instance's fuel also depends on its earlier calls.
    const input = { text: 'the same fuel every time' }
    const viaSync = Pack.loadSync(packPath('text_tools'), {}, quiet).callSync('count_vowels', input)
    const viaAsync = await (await Pack.load(packPath('text_tools'), {}, quiet)).call('count_vowels', input)
    assert.equal(viaAsync.usage.fuel_consumed, viaSync.usage.fuel_consumed)
  })

  test('pre and post go to the hooks of the same name', async () => {
    const hooks = await Pack.load(packPath('api_errors'), {}, quiet)
    const checked = await hooks.pre({ method: 'GET', url: 'https://api.openai.com/v1/models' })
    assert.equal(checked.json().provider, 'openai')
    const classified = hooks.postSync({ response: { status: 503 } })
    assert.deepEqual(classified.json(), { is_error: true, status: 503 })
  })

  test('config reaches the pack only through options', () => {
    const greeter = Pack.loadSync(packPath('text_tools'), { config: { greeting: 'Hej' } }, quiet)
    assert.equal(greeter.callSync('greet', 'Ada').text, 'Hej, Ada!')
  })
})

describe('errors', () => {
  const pack = Pack.loadSync(packPath('text_tools'), {}, quiet)

  test('there is one error class per core code, each a PackError', () => {
    assert.deepEqual(Object.keys(packhost.ERROR_CLASSES).sort(), [...packhost.ERROR_CODES].sort())
    for (const [code, ErrorClass] of Object.entries(packhost.ERROR_CLASSES)) {
      const err = new ErrorClass('example')
      assert.ok(err instanceof PackError && err instanceof Error)
      assert.equal(err.code, code)
      assert.equal(err.name, ErrorClass.name)
    }
  })

  test('a pack\'s own error carries its message, return code, usage and logs', async () => {
    await assert.rejects(pack.call('fail_with', 'card declined'), (err) => {
      assert.ok(err instanceof PluginError)
      assert.equal(err.code, 'plugin_error')
      assert.equal(err.message, 'card declined')
      assert.equal(err.returnCode, 1)
      assert.ok(err.usage.fuel_consumed > 0)
      assert.equal(err.usage.action, 'fail_with')
      assert.equal(err.usage.pack_name, 'text-tools')
      assert.equal(err.usage.http_requests, 0)
      assert.deepEqual(err.logs, [])
      assert.deepEqual(err.audit, [])
      return true
    })
    assert.throws(() => pack.callSync('fail_with', 'card declined'), (err) => {
      assert.ok(err instanceof PluginError)
      assert.equal(err.usage.action, 'fail_with')
      assert.equal(err.usage.pack_id, pack.id)
      assert.deepEqual(err.audit, [])
      return true
    })
  })

  test('a failed call\'s error carries the audit trail, the failed use included', async () => {
    const lent = Pack.loadSync(packPath('host_calls'), {}, { ...quiet, functions: suiteFunctions() })
    const check = (err) => {
      assert.ok(err instanceof HostFunctionError)
      assert.equal(err.audit.length, 1)
      const [entry] = err.audit
      assert.deepEqual(
        [entry.capability, entry.operation, entry.target, entry.outcome],
        ['host_function', 'call', 'fail', 'failed'],
      )
      assert.equal(typeof entry.reason, 'string')
      return true
    }
    assert.throws(() => lent.callSync('fail_via_host', 'c42'), check)
    await assert.rejects(lent.call('fail_via_host', 'c42'), check)
  })

  test('an unknown action is an ActionNotFoundError without usage', () => {
    assert.throws(
      () => pack.callSync('nope', ''),
      (err) => err instanceof ActionNotFoundError && err.usage === undefined && err.audit === undefined,
    )
  })

  test('an input that cannot become bytes is a TypeError, not a call', () => {
    assert.throws(() => pack.callSync('echo', () => 1), TypeError)
  })
})

test('stats count a pack\'s calls, failed ones by code, over sync and async calls', async () => {
  const pack = Pack.loadSync(packPath('text_tools'), {}, quiet)
  assert.equal(pack.stats().calls, 0)
  pack.callSync('uppercase', 'abc')
  await pack.call('uppercase', 'def')
  await assert.rejects(pack.call('fail_with', 'card declined'), PluginError)
  const stats = pack.stats()
  assert.equal(stats.calls, 3)
  assert.deepEqual(stats.errors, { plugin_error: 1 })
  assert.ok(stats.output_bytes > 0)
  assert.equal(stats.output_bytes, 6)
  assert.equal(stats.input_bytes, 3 + 3 + Buffer.byteLength('card declined'))
  assert.ok(stats.fuel_consumed > 0)
  assert.equal(stats.http_requests, 0)
  assert.equal(stats.kv_ops, 0)
  // An unknown action is refused before any call is made, so it is not counted.
  assert.throws(() => pack.callSync('nope', ''), ActionNotFoundError)
  assert.equal(pack.stats().calls, 3)
})

describe('plugin log lines', () => {
  test('go to the onLog callback with their level, after sync and async calls', async () => {
    const seen = []
    const pack = await Pack.load(packPath('text_tools'), { log_level: 'debug' }, {
      onLog: (record, from) => seen.push([record.level, record.message, from.name]),
    })
    pack.callSync('chatty')
    await pack.call('chatty')
    const once = [
      ['debug', 'debug line', 'text-tools'],
      ['info', 'info line', 'text-tools'],
      ['warn', 'warn line', 'text-tools'],
      ['error', 'error line', 'text-tools'],
    ]
    assert.deepEqual(seen, [...once, ...once])
  })

  test('go to the console method of their level by default', () => {
    const pack = Pack.loadSync(packPath('text_tools'), { log_level: 'trace' })
    const printed = []
    const methods = ['debug', 'info', 'warn', 'error', 'log']
    const saved = Object.fromEntries(methods.map((name) => [name, console[name]]))
    for (const name of methods) console[name] = (line) => printed.push([name, line])
    try {
      pack.callSync('chatty')
    } finally {
      Object.assign(console, saved)
    }
    assert.deepEqual(printed, [
      ['debug', '[packhost text-tools] trace line'],
      ['debug', '[packhost text-tools] debug line'],
      ['info', '[packhost text-tools] info line'],
      ['warn', '[packhost text-tools] warn line'],
      ['error', '[packhost text-tools] error line'],
    ])
  })

  test('are still on the result when forwarding is off', () => {
    const pack = Pack.loadSync(packPath('text_tools'), {}, quiet)
    assert.deepEqual(
      pack.callSync('chatty').logs.map((record) => record.level),
      ['info', 'warn', 'error'],
    )
  })
})
