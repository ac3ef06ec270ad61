/**
 * Host functions lent from JavaScript, on both engines: plain and async handlers through
 * callSync and call, the encodings, the call's context, what a failing handler becomes,
 * load-time checks, usage, time limits, and handlers that call their own pack again, each
 * re-entrant case under a watchdog so that a deadlock fails instead of hanging the suite.
 */
'use strict'

const { isDeepStrictEqual } = require('node:util')

const { describe, test } = require('node:test')
const assert = require('node:assert/strict')
const { spawnSync } = require('node:child_process')
const { setTimeout: sleep } = require('node:timers/promises')

const { Pack, HostFunctionError, InvalidOptionsError, InvalidPackError, TimeoutError } = require('packhost')
const { packPath, quiet, suiteFunctions } = require('./support.js')

const ENGINES = ['native', 'extism']

/** The sample pack on `engine`, lent the suite's functions with `replacements` swapped in. */
function load(engine, replacements = {}, options = {}) {
  const functions = { ...suiteFunctions(), ...replacements }
  return Pack.loadSync(packPath('host_calls'), { engine, ...options }, { ...quiet, functions })
}

/** `promise`, or a failure once `ms` have passed: a deadlocked call fails the test instead. */
async function within(ms, promise) {
  let timer
  const watchdog = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no result within ${ms} ms: the call deadlocked`)), ms)
  })
  try {
    return await Promise.race([promise, watchdog])
  } finally {
    clearTimeout(timer)
  }
}

/** A checker for assert.throws/rejects: a HostFunctionError from `reverse` with this class and message. */
function reverseFailed(errorClass, message) {
  return (err) => {
    assert.ok(err instanceof HostFunctionError, `expected a HostFunctionError, got ${err}`)
    assert.equal(err.code, 'host_function_error')
    assert.equal(err.function, 'reverse')
    assert.equal(err.errorClass, errorClass)
    assert.ok(err.message.includes(message), `${JSON.stringify(err.message)} lacks ${JSON.stringify(message)}`)
    assert.equal(err.usage.host_calls, 1)
    return true
  }
}

const reversed = (text) => [...text].reverse().join('')

for (const engine of ENGINES) {
  describe(`host functions on the ${engine} engine`, () => {
    test('a plain handler answers callSync and call', async () => {
      const pack = load(engine)
      assert.equal(pack.callSync('reverse_via_host', 'hello').text, 'olleh')
      assert.equal((await pack.call('reverse_via_host', 'hello')).text, 'olleh')
      assert.equal(pack.callSync('reverse_via_host', '').text, '')
    })

    test('an async handler is awaited under call', async () => {
      const pack = load(engine, {
        reverse: async (input) => {
          await sleep(2)
          return Buffer.from(input).reverse()
        },
      })
      assert.equal((await pack.call('reverse_via_host', 'hello')).text, 'olleh')
      const result = await pack.call('reverse_repeatedly', 'abcde')
      assert.equal(result.text, 'edcba')
      assert.equal(result.usage.host_calls, 5)
    })

    test('an async handler under callSync fails with a TypeError, and its rejection is not left unhandled', async () => {
      const unhandled = []
      const onUnhandled = (reason) => unhandled.push(reason)
      process.on('unhandledRejection', onUnhandled)
      try {
        const pack = load(engine, {
          reverse: async () => {
            throw new Error('nobody awaits this')
          },
        })
        assert.throws(() => pack.callSync('reverse_via_host', 'x'), reverseFailed('TypeError', 'callSync'))
        // The same pack still answers through call(), where the promise is awaited.
        await assert.rejects(pack.call('reverse_via_host', 'x'), reverseFailed('Error', 'nobody awaits this'))
        await sleep(20)
      } finally {
        process.off('unhandledRejection', onUnhandled)
      }
      assert.deepEqual(unhandled, [])
    })

    test('a failing handler becomes a HostFunctionError with its message and class, and the pack goes on', async () => {
      class LookupError extends Error {}
      const failures = [
        [() => { throw new RangeError('out of range') }, 'RangeError', 'out of range'],
        [() => { throw new LookupError('no such customer') }, 'LookupError', 'no such customer'],
        [async () => { throw new LookupError('rejected') }, 'LookupError', 'rejected'],
        [() => { throw 'a plain string' }, undefined, 'a plain string'],
        [() => 42, 'TypeError', 'returned a number'],
        [() => undefined, 'TypeError', 'returned undefined'],
        [() => ({ not: 'bytes' }), 'TypeError', 'returned an object'],
      ]
      for (const [handler, errorClass, message] of failures) {
        const pack = load(engine, { reverse: handler })
        if (handler.constructor.name !== 'AsyncFunction') {
          assert.throws(() => pack.callSync('reverse_via_host', 'x'), reverseFailed(errorClass, message))
        }
        await assert.rejects(pack.call('reverse_via_host', 'x'), reverseFailed(errorClass, message))
      }
      const pack = load(engine, { fail: () => { throw new RangeError('once') } })
      assert.throws(() => pack.callSync('fail_via_host', 'x'), HostFunctionError)
      assert.equal(pack.callSync('reverse_via_host', 'ok').text, 'ko')
    })

    test('a json output that JSON cannot write fails with a TypeError', () => {
      const pack = load(engine, { add: { output: 'json', handler: () => ({ sum: 10n }) } })
      assert.throws(() => pack.callSync('add_via_host', { a: 1, b: 2 }), (err) => {
        assert.ok(err instanceof HostFunctionError)
        assert.equal(err.function, 'add')
        assert.equal(err.errorClass, 'TypeError')
        return true
      })
    })

    test('string and json encodings, and Uint8Array outputs', async () => {
      const seen = []
      const pack = load(engine, {
        reverse: {
          input: 'string',
          output: 'string',
          handler: (text) => {
            seen.push(typeof text)
            return reversed(text)
          },
        },
      })
      assert.equal(pack.callSync('reverse_via_host', 'grüße').text, 'eßürg')
      assert.equal((await pack.call('reverse_via_host', 'grüße')).text, 'eßürg')
      assert.deepEqual(seen, ['string', 'string'])
      const bytes = load(engine, { reverse: (input) => new Uint8Array(Buffer.from(input).reverse()) })
      assert.equal(bytes.callSync('reverse_via_host', 'abc').text, 'cba')
      const sums = load(engine, { add: { input: 'json', output: 'json', handler: ({ a, b }) => ({ sum: a * 1000 + b }) } })
      assert.deepEqual(sums.callSync('add_via_host', { a: 4, b: 2 }).json(), { sum: 4002 })
    })

    test('the call context, the pack name and id reach the handler; usage records the context', async () => {
      const seen = []
      const pack = load(engine, {
        context_echo: {
          output: 'json',
          handler: (_input, call) => {
            seen.push(call)
            return { context: call.context, pack: call.packName }
          },
        },
      })
      const context = { tenant: 'acme', request: 7 }
      assert.deepEqual(pack.callSync('context_via_host', '', { context }).json(), { context, pack: 'host_calls' })
      assert.deepEqual((await pack.call('context_via_host', '', { context: 'plain' })).json().context, 'plain')
      assert.equal(pack.callSync('context_via_host').json().context, null, 'the next call does not inherit it')
      assert.equal((await pack.call('context_via_host', '', {})).json().context, null)
      assert.equal(seen.length, 4)
      for (const call of seen) {
        assert.equal(call.packName, 'host_calls')
        assert.equal(call.packId, pack.id)
        assert.equal(call.function, 'context_echo')
      }
      // The usage record names whom each call was for, failed calls included.
      assert.deepEqual(pack.callSync('context_via_host', '', { context }).usage.context, context)
      assert.deepEqual((await pack.call('context_via_host', '', { context })).usage.context, context)
      assert.equal(pack.callSync('context_via_host').usage.context, null)
      assert.throws(() => pack.callSync('fail_via_host', 'x', { context }), (err) => isDeepStrictEqual(err.usage.context, context))
    })

    test('call options the core cannot read are an InvalidOptionsError', async () => {
      const pack = load(engine)
      assert.throws(() => pack.callSync('context_via_host', '', { contxt: 1 }), InvalidOptionsError)
      await assert.rejects(pack.call('context_via_host', '', { contxt: 1 }), InvalidOptionsError)
      assert.throws(() => pack.callSync('context_via_host', '', { context: 1n }), InvalidOptionsError)
    })

    test('an import the host did not lend fails at load, naming it', async () => {
      const { reverse, ...others } = suiteFunctions()
      const named = (err) =>
        err instanceof InvalidPackError && err.message.includes('"reverse"') && err.message.includes('did not register')
      assert.throws(() => Pack.loadSync(packPath('host_calls'), { engine }, { ...quiet, functions: others }), named)
      await assert.rejects(Pack.load(packPath('host_calls'), { engine }, { ...quiet, functions: others }), named)
      // Lent in another module is not lent where the pack imports it.
      const elsewhere = { ...others, reverse: { handler: reverse, namespace: 'acme:host' } }
      assert.throws(() => Pack.loadSync(packPath('host_calls'), { engine }, { ...quiet, functions: elsewhere }), named)
      // The default module, named explicitly, is the same module.
      const explicit = { ...others, reverse: { handler: reverse, namespace: 'extism:host/user' } }
      assert.equal(Pack.loadSync(packPath('host_calls'), { engine }, { ...quiet, functions: explicit }).callSync('reverse_via_host', 'ab').text, 'ba')
    })

    test('usage counts host calls and the time spent in handlers', async () => {
      const pack = load(engine)
      for (const result of [pack.callSync('reverse_repeatedly', 'abcde'), await pack.call('reverse_repeatedly', 'abcde')]) {
        assert.equal(result.text, 'edcba')
        assert.equal(result.usage.host_calls, 5, 'counted per call, not per instance')
        assert.equal(typeof result.usage.host_time_us, 'number')
        assert.ok(result.usage.host_time_us <= result.usage.wall_time_us, JSON.stringify(result.usage))
      }
      const busy = load(engine, {
        reverse: (input) => {
          const until = Date.now() + 20
          while (Date.now() < until);
          return Buffer.from(input).reverse()
        },
      })
      assert.ok(busy.callSync('reverse_via_host', 'x').usage.host_time_us >= 19_000)
      const plain = Pack.loadSync(packPath('text_tools'), { engine }, quiet)
      assert.equal(plain.callSync('echo', 'x').usage.host_calls, 0)
      assert.equal((await plain.call('echo', 'x')).usage.host_calls, 0)
    })

    test('a handler that settles after the time limit ends the call with timeout', async () => {
      const pack = load(
        engine,
        {
          reverse: async (input) => {
            await sleep(150)
            return Buffer.from(input).reverse()
          },
        },
        { limits: { timeout_ms: 100 } },
      )
      await assert.rejects(pack.call('reverse_repeatedly', 'abc'), (err) => {
        assert.ok(err instanceof TimeoutError, `expected a TimeoutError, got ${err}`)
        assert.equal(err.usage.host_calls, 1, 'no guest code ran after the late answer')
        return true
      })
    })

    test('a handler that never settles fails its call instead of holding it forever', async () => {
      const pack = load(engine, { reverse: () => new Promise(() => {}) }, { limits: { timeout_ms: 100 } })
      const started = performance.now()
      await assert.rejects(within(10_000, pack.call('reverse_via_host', 'x')), reverseFailed('Timeout', 'did not settle'))
      // The wait is the call's time limit plus a margin of a second.
      assert.ok(performance.now() - started < 5_000)
      assert.equal((await within(10_000, load(engine).call('reverse_via_host', 'ok'))).text, 'ko')
    })

    test('concurrent async calls each get their own answer', async () => {
      const pack = load(engine, {
        reverse: async (input) => {
          await sleep(Math.random() * 5)
          return Buffer.from(input).reverse()
        },
      })
      const texts = Array.from({ length: 40 }, (_, i) => `call ${i}`)
      const results = await within(30_000, Promise.all(texts.map((text) => pack.call('reverse_via_host', text))))
      results.forEach((result, i) => assert.equal(result.text, reversed(texts[i])))
    })

    test('an async handler may await another call of its own pack during an async call', async () => {
      // `add` answers by asking the same pack to reverse its input through the host.
      let pack = null
      pack = load(engine, {
        add: { output: 'json', handler: async (input) => ({ sum: (await pack.call('reverse_via_host', input)).text }) },
      })
      const result = await within(20_000, pack.call('add_via_host', '{"a":1}'))
      assert.deepEqual(result.json(), { sum: '}1:"a"{' })
    })

    test('a handler may make a sync call of its own pack during an async call', async () => {
      let pack = null
      pack = load(engine, {
        add: { output: 'json', handler: (input) => ({ sum: pack.callSync('reverse_via_host', input).text }) },
      })
      const result = await within(20_000, pack.call('add_via_host', '{"a":1}'))
      assert.deepEqual(result.json(), { sum: '}1:"a"{' })
    })
  })
}

test('a handler may make a sync call of its own pack inside callSync (in a child process: a deadlock there would block this thread)', () => {
  // The child also shows that packs lending functions do not keep the process alive: it
  // must exit on its own once the script ends.
  const script = `
    const { Pack } = require(${JSON.stringify(require.resolve('packhost'))})
    const { suiteFunctions } = require(${JSON.stringify(require.resolve('./support.js'))})
    const results = {}
    for (const engine of ${JSON.stringify(ENGINES)}) {
      let pack = null
      pack = Pack.loadSync(${JSON.stringify(packPath('host_calls'))}, { engine }, {
        onLog: null,
        functions: {
          ...suiteFunctions(),
          add: { output: 'json', handler: (input) => ({ sum: pack.callSync('reverse_via_host', input).text }) },
        },
      })
      results[engine] = pack.callSync('add_via_host', '{"a":1}').json()
    }
    process.stdout.write(JSON.stringify(results))
  `
  const child = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 30_000 })
  assert.equal(child.error, undefined, `the child did not finish (${child.error?.message}): a deadlock, or a handle keeping it alive`)
  assert.equal(child.status, 0, child.stderr)
  const expected = Object.fromEntries(ENGINES.map((engine) => [engine, { sum: '}1:"a"{' }]))
  assert.deepEqual(JSON.parse(child.stdout), expected)
})

test('a malformed host function is a TypeError before anything loads', async () => {
  const handler = () => ''
  const malformed = [
    [],
    'reverse',
    { reverse: 42 },
    { reverse: { handler, input: 'text' } },
    { reverse: { handler, output: 'buffer' } },
    { reverse: { handler, inputs: 'json' } },
    { reverse: { handler, namespace: 7 } },
  ]
  for (const functions of malformed) {
    assert.throws(() => Pack.loadSync(packPath('host_calls'), {}, { ...quiet, functions }), TypeError, JSON.stringify(functions))
    await assert.rejects(Pack.load(packPath('host_calls'), {}, { ...quiet, functions }), TypeError)
  }
})

test('registrations the core refuses are an InvalidOptionsError', () => {
  const functions = { ...suiteFunctions(), alloc: { handler: () => '', namespace: 'extism:host/env' } }
  assert.throws(() => Pack.loadSync(packPath('host_calls'), {}, { ...quiet, functions }), InvalidOptionsError)
})

test("the README's Node host-function lines run as written", () => {
  const { REPO_ROOT } = require('./support.js')
  const readme = require('node:fs').readFileSync(require('node:path').join(REPO_ROOT, 'README.md'), 'utf8')
  const node = readme.split('\n### Node\n')[1].split('\n### ')[0]
  const block = node.split('```js\n')[1].split('\n```')[0]
  const lines = block.slice(block.indexOf('// Host functions:'))
  assert.ok(lines.includes('functions:'), 'the Node section shows a host function')
  // The lines run as a module of their own, with only what the README's block imports.
  const program = `const { Pack, HostFunctionError } = require('packhost')\n;(async () => {\n${lines}\n})().catch((err) => { console.error(err); process.exit(1) })`
  const run = spawnSync(process.execPath, ['-e', program], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 30000 })
  assert.equal(run.status, 0, run.stderr)
})
