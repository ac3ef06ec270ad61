/**
 * The Node runner of the shared conformance suite in tests/conformance/: every case of
 * every cases/*.json on each engine, through the async API and through the sync API, with
 * the same outputs, error codes, audit trails and fuel counts as the Rust runner. Cases with
 * `host_functions` lend the suite's four host functions: plain functions through the sync
 * API, async ones through the async API. Cases with a `kv` option run once per key-value
 * backend, each run on a fresh store. The first call of a case with `cancel_after_ms` goes
 * through the async API in both flavours, as only it takes an `AbortSignal`. A case with a
 * `flow` loads its `flow_packs` through the flavour's load and runs the flow, which is async
 * in both flavours.
 */
'use strict'

const { describe, test } = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { isDeepStrictEqual } = require('node:util')

const { Flow, Pack, PackError } = require('packhost')
const { CONFORMANCE_DIR, DIST_DIR, packPath, quiet, suiteFunctions } = require('./support.js')

/** Every case of every cases/*.json, each with the stem of the file it came from. */
function loadCases() {
  const dir = path.join(CONFORMANCE_DIR, 'cases')
  const files = fs.readdirSync(dir).filter((file) => file.endsWith('.json')).sort()
  return files.flatMap((file) => {
    const { cases } = JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8'))
    return cases.flatMap(onePerPack).map((testCase) => ({ file: path.basename(file, '.json'), testCase }))
  })
}

/** A case, or for a case with `packs`, one case per pack, named `NAME/PACK`. */
function onePerPack(testCase) {
  if (testCase.packs === undefined) return [testCase]
  const { packs, ...rest } = testCase
  return packs.map((pack) => ({ ...structuredClone(rest), name: `${rest.name}/${pack}`, pack }))
}

const CASES = loadCases()
/** Expected fuel per engine, then per call keyed `name` or `name/then/N`, as the Rust runner blesses it. */
const EXPECTED_FUEL = JSON.parse(fs.readFileSync(path.join(CONFORMANCE_DIR, 'fuel.json'), 'utf8'))

/** Every case runs on each engine. */
const ENGINES = ['native', 'extism']

/** The key-value backends a case with a `kv` option runs on, in order. */
const KV_BACKENDS = ['memory', 'sqlite']

/** Stores handed out so far: every run of a case with a `kv` option gets a new one. */
let freshStores = 0

/** The folder of this process's sqlite stores, made on first use. */
let kvFolder

function isObject(value) {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
}

/** A folder for this run's sqlite stores, removed when the process exits. */
function kvFolderPath() {
  if (kvFolder === undefined) {
    kvFolder = fs.mkdtempSync(path.join(os.tmpdir(), 'packhost-kv-'))
    process.once('exit', () => {
      try {
        fs.rmSync(kvFolder, { recursive: true, force: true })
      } catch {
        // A leftover folder under the system's temporary folder does no harm.
      }
    })
  }
  return kvFolder
}

/** The backends `testCase` runs on: each KV backend for a case with a `kv` option, else one run. */
function kvBackends(testCase) {
  return isObject(testCase.options) && isObject(testCase.options.kv) ? KV_BACKENDS : [undefined]
}

/**
 * The case's options with `engine` set, unless the case chose one itself, and for a case with
 * a `kv` option, `kv.backend` and a fresh `kv.path` (a new store name for `memory`, a new file
 * for `sqlite`) unless the case chose them. The case itself is left as it is.
 */
function optionsFor(testCase, engine, kvBackend) {
  const options = testCase.options ?? {}
  if (!isObject(options)) return options
  const chosen = structuredClone(options)
  absoluteMounts(chosen)
  if (!('engine' in chosen)) chosen.engine = engine
  if (isObject(chosen.kv)) {
    const fresh = freshStores++
    if (!('backend' in chosen.kv)) chosen.kv.backend = kvBackend
    if (!('path' in chosen.kv)) {
      chosen.kv.path = kvBackend === 'sqlite' ? path.join(kvFolderPath(), `${fresh}.sqlite3`) : `conformance-${process.pid}-${fresh}`
    }
  }
  return chosen
}

/**
 * Makes each host path of `holder.allowed_paths` (after an optional `ro:`) absolute, reading
 * it relative to the conformance folder.
 */
function absoluteMounts(holder) {
  if (!isObject(holder.allowed_paths)) return
  const mounts = {}
  for (const [source, guest] of Object.entries(holder.allowed_paths)) {
    const prefix = source.startsWith('ro:') ? 'ro:' : ''
    mounts[prefix + path.join(CONFORMANCE_DIR, source.slice(prefix.length))] = guest
  }
  holder.allowed_paths = mounts
}

/**
 * A case's pack: a path, or its Extism manifest with each `wasm[].path` taken as a file in
 * `plugins/dist/` and its `allowed_paths` made absolute.
 */
function packSource(testCase) {
  const given = ['pack', 'pack_file', 'extism_manifest'].filter((key) => testCase[key] !== undefined)
  if (given.length !== 1) {
    throw new Error(`${testCase.name}: give exactly one of pack, pack_file and extism_manifest`)
  }
  if (testCase.pack !== undefined) return packPath(testCase.pack)
  if (testCase.pack_file !== undefined) return path.join(CONFORMANCE_DIR, testCase.pack_file)
  const manifest = structuredClone(testCase.extism_manifest)
  absoluteMounts(manifest)
  for (const module of manifest.wasm ?? []) {
    if (module.path !== undefined) module.path = path.join(DIST_DIR, module.path)
  }
  return manifest
}

/** Host settings for a case: quiet logs, and the suite's host functions when it asks for them. */
function hooksFor(testCase, asyncHandlers) {
  return testCase.host_functions ? { ...quiet, functions: suiteFunctions({ async: asyncHandlers }) } : quiet
}

/** A case's call options: its `context`, through the call-with-options form, when it has one. */
function callOptions(call) {
  return call.context === undefined ? undefined : { context: call.context }
}

/**
 * The first call of a case with `cancel_after_ms`: through the async API whichever flavour
 * runs the case, with a signal aborted that many milliseconds after the call starts (before
 * it, for 0).
 */
async function callCancelled(pack, exportName, input, call) {
  const controller = new AbortController()
  const options = { ...callOptions(call), signal: controller.signal }
  if (call.cancel_after_ms === 0) {
    controller.abort()
    return FLAVOURS.async.call(pack, exportName, input, options)
  }
  const timer = setTimeout(() => controller.abort(), call.cancel_after_ms)
  try {
    return await FLAVOURS.async.call(pack, exportName, input, options)
  } finally {
    clearTimeout(timer)
  }
}

/** The two ways to drive the API; the suite must pass identically through both. */
const FLAVOURS = {
  async: {
    load: (source, options, testCase) => Pack.load(source, options, hooksFor(testCase, true)),
    call: (pack, exportName, input, options) => {
      if (exportName === 'pre') return pack.pre(input, options)
      if (exportName === 'post') return pack.post(input, options)
      return pack.call(exportName, input, options)
    },
  },
  sync: {
    load: async (source, options, testCase) => Pack.loadSync(source, options, hooksFor(testCase, false)),
    call: async (pack, exportName, input, options) => {
      if (exportName === 'pre') return pack.preSync(input, options)
      if (exportName === 'post') return pack.postSync(input, options)
      return pack.callSync(exportName, input, options)
    },
  },
}

/** Runs a promise to its result or its PackError; anything else is a bug and is rethrown. */
async function settle(promise) {
  try {
    return { result: await promise }
  } catch (err) {
    if (!(err instanceof PackError)) throw err
    return { error: err }
  }
}

function checkError(error, call, problems) {
  if (error.code !== call.error) problems.push(`error ${error.code}: ${error.message}, expected code ${call.error}`)
  if (call.message_contains !== undefined && !error.message.includes(call.message_contains)) {
    problems.push(`message ${JSON.stringify(error.message)} lacks ${JSON.stringify(call.message_contains)}`)
  }
  if (call.return_code !== undefined && error.returnCode !== call.return_code) {
    problems.push(`return code ${error.returnCode}, expected ${call.return_code}`)
  }
  if (call.logs !== undefined && error.logs !== undefined && !isDeepStrictEqual(error.logs, call.logs)) {
    problems.push(`logs ${JSON.stringify(error.logs)}, expected ${JSON.stringify(call.logs)}`)
  }
}

/**
 * `host_calls` and `kv_ops`: the call's usage, of its result or its error, counts that many
 * host calls and key-value operations; and every usage records the call's context (null
 * when the case has none).
 */
function checkUsage(usage, call, problems) {
  if (call.host_calls !== undefined && usage?.host_calls !== call.host_calls) {
    problems.push(`host calls ${usage?.host_calls}, expected ${call.host_calls}`)
  }
  if (call.kv_ops !== undefined && usage?.kv_ops !== call.kv_ops) {
    problems.push(`kv ops ${usage?.kv_ops}, expected ${call.kv_ops}`)
  }
  if (usage !== undefined && !isDeepStrictEqual(usage.context, call.context ?? null)) {
    problems.push(`usage context ${JSON.stringify(usage.context)}, expected ${JSON.stringify(call.context ?? null)}`)
  }
}

/**
 * `audit`: the call's audit trail, of its result or its error (none for an error without a
 * report), has as many entries as the list, and each entry holds every field its expected
 * counterpart names, with the same value; fields the expected entry leaves out are not checked.
 */
function checkAudit(audit, call, problems) {
  if (call.audit === undefined) return
  const actual = audit ?? []
  const matches =
    actual.length === call.audit.length &&
    actual.every((entry, index) =>
      Object.entries(call.audit[index]).every(([key, value]) => Object.hasOwn(entry, key) && isDeepStrictEqual(entry[key], value)),
    )
  if (!matches) problems.push(`audit ${JSON.stringify(actual)}, expected ${JSON.stringify(call.audit)}`)
}

/**
 * A missing entry fails, as in the Rust runner, so a stale fuel.json cannot pass unnoticed. A
 * case with `fuel_pinned: false` (a pack whose builds are not reproducible) has no entry and
 * need only have burnt some fuel.
 */
function checkFuel(engine, key, fuel, problems, pinned = true) {
  if (!pinned) {
    if (!(fuel > 0)) problems.push('no fuel burnt')
    return
  }
  const wanted = EXPECTED_FUEL[engine]?.[key]
  if (wanted === undefined) problems.push(`no fuel.json entry for ${key} on ${engine} (bless with the Rust runner)`)
  else if (fuel !== wanted) problems.push(`fuel ${fuel}, expected ${wanted}`)
}

/** Checks one call; `first` is true for a case's own call, false for its `then` steps. */
async function checkCall(flavour, engine, pack, key, call, first, fuelPinned) {
  const problems = []
  const input = (call.input ?? '').repeat(call.input_repeat ?? 1)
  // Only a case's first call is cancelled; its `then` steps run normally.
  const called = first && call.cancel_after_ms !== undefined
    ? callCancelled(pack, call.export, input, call)
    : flavour.call(pack, call.export, input, callOptions(call))
  const { result, error } = await settle(called)
  checkUsage((result ?? error).usage, call, problems)
  checkAudit((result ?? error).audit, call, problems)
  if (error) {
    if (call.error === undefined) problems.push(`failed with ${error.code}: ${error.message}, expected success`)
    else checkError(error, call, problems)
    return problems
  }
  if (call.error !== undefined) {
    problems.push(`succeeded with ${JSON.stringify(result.text)}, expected error ${call.error}`)
    return problems
  }
  if (call.output !== undefined && !result.bytes.equals(Buffer.from(call.output, 'utf8'))) {
    problems.push(`output ${JSON.stringify(result.text)}, expected ${JSON.stringify(call.output)}`)
  }
  if (call.output_json !== undefined) {
    let actual
    try {
      actual = result.json()
    } catch (err) {
      problems.push(`output is not JSON (${err.message}): ${JSON.stringify(result.text)}`)
    }
    if (actual !== undefined && !isDeepStrictEqual(actual, call.output_json)) {
      problems.push(`output_json ${JSON.stringify(actual)}, expected ${JSON.stringify(call.output_json)}`)
    }
  }
  if (call.logs !== undefined && !isDeepStrictEqual(result.logs, call.logs)) {
    problems.push(`logs ${JSON.stringify(result.logs)}, expected ${JSON.stringify(call.logs)}`)
  }
  checkFuel(engine, key, result.usage.fuel_consumed, problems, fuelPinned)
  return problems
}

/**
 * A flow case: each of its `flow_packs` loaded as a case's pack is (the same options, the
 * suite's host functions when it asks), then the flow made and run once on `flow_input` with
 * the case's `context`. Making or running it may fail with the case's `error`; on success the
 * output, the steps' ids and statuses, the run's and each step's context and the run's fuel
 * are checked.
 */
async function runFlowCase(flavour, engine, kvBackend, testCase) {
  const options = optionsFor(testCase, engine, kvBackend)
  const packs = {}
  for (const [name, sample] of Object.entries(testCase.flow_packs ?? {})) {
    const loaded = await settle(flavour.load(packPath(sample), options, testCase))
    if (loaded.error) return [`loading ${sample} failed with ${loaded.error.code}: ${loaded.error.message}`]
    packs[name] = loaded.result
  }
  const run = async () => new Flow(testCase.flow, packs).run(testCase.flow_input ?? null, callOptions(testCase))
  const { result, error } = await settle(run())
  const problems = []
  if (error) {
    if (testCase.error === undefined) problems.push(`failed with ${error.code}: ${error.message}, expected success`)
    else checkError(error, testCase, problems)
    return problems
  }
  if (testCase.error !== undefined) {
    problems.push(`succeeded with ${JSON.stringify(result.output)}, expected error ${testCase.error}`)
    return problems
  }
  if (testCase.output_json !== undefined && !isDeepStrictEqual(result.output, testCase.output_json)) {
    problems.push(`output_json ${JSON.stringify(result.output)}, expected ${JSON.stringify(testCase.output_json)}`)
  }
  const steps = result.steps.map(({ id, status }) => ({ id, status }))
  if (testCase.steps !== undefined && !isDeepStrictEqual(steps, testCase.steps)) {
    problems.push(`steps ${JSON.stringify(steps)}, expected ${JSON.stringify(testCase.steps)}`)
  }
  // The run's usage and every step's that ran record the run's context.
  for (const usage of [result.usage, ...result.steps.map((step) => step.usage).filter((usage) => usage !== null)]) {
    checkUsage(usage, { context: testCase.context }, problems)
  }
  checkFuel(engine, testCase.name, result.usage.fuel_consumed, problems, testCase.fuel_pinned !== false)
  return problems
}

async function runCase(flavour, engine, kvBackend, testCase) {
  if (testCase.flow !== undefined) return runFlowCase(flavour, engine, kvBackend, testCase)
  // Options go to the binding as a copy of the plain object the case holds, with only the
  // engine (and for a `kv` case, the backend and a fresh store) added.
  const options = optionsFor(testCase, engine, kvBackend)
  const { result: pack, error } = await settle(flavour.load(packSource(testCase), options, testCase))
  if (error) {
    if (testCase.error === undefined) return [`load failed with ${error.code}: ${error.message}`]
    const problems = []
    checkError(error, testCase, problems)
    return problems
  }
  const problems = []
  if (testCase.actions !== undefined && !isDeepStrictEqual(pack.actions, testCase.actions)) {
    problems.push(`actions ${JSON.stringify(pack.actions)}, expected ${JSON.stringify(testCase.actions)}`)
  }
  if (testCase.export !== undefined) {
    problems.push(...(await checkCall(flavour, engine, pack, testCase.name, testCase, true, testCase.fuel_pinned !== false)))
  } else if (testCase.error !== undefined) {
    problems.push(`loaded, expected error ${testCase.error}`)
  }
  for (const [index, call] of (testCase.then ?? []).entries()) {
    // A step naming a `pack` calls that sample pack instead, loaded with the same options
    // (the same store, for a `kv` case) and no host functions.
    let target = pack
    if (call.pack !== undefined) {
      const other = await settle(flavour.load(packPath(call.pack), options, { host_functions: false }))
      if (other.error) {
        problems.push(`then[${index}]: loading ${JSON.stringify(call.pack)} failed with ${other.error.code}: ${other.error.message}`)
        continue
      }
      target = other.result
    }
    const found = await checkCall(flavour, engine, target, `${testCase.name}/then/${index}`, call, false, testCase.fuel_pinned !== false)
    problems.push(...found.map((problem) => `then[${index}]: ${problem}`))
  }
  return problems
}

test('case names are unique and start with their file', () => {
  assert.ok(CASES.length > 0, 'no conformance cases found')
  const names = CASES.map(({ testCase }) => testCase.name)
  assert.equal(new Set(names).size, names.length)
  for (const { file, testCase } of CASES) assert.ok(testCase.name.startsWith(`${file}/`), testCase.name)
})

for (const engine of ENGINES) {
  for (const [flavourName, flavour] of Object.entries(FLAVOURS)) {
    describe(`conformance on the ${engine} engine through the ${flavourName} API`, () => {
      for (const { testCase } of CASES) {
        for (const kvBackend of kvBackends(testCase)) {
          const label = kvBackend === undefined ? engine : `${engine}, kv ${kvBackend}`
          test(`${testCase.name} [${label}]`, async () => {
            assert.deepEqual(await runCase(flavour, engine, kvBackend, testCase), [])
          })
        }
      }
    })
  }
}
