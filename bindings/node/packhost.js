/**
 * packhost for Node: the public API (`Pack`, `CallResult`, `Flow` and the `PackError`
 * classes) over the native addon that `index.js` loads.
 *
 * This file converts values and maps errors; it decides nothing. Options and call options go
 * to the core as JSON text, unchanged. Every core failure reaches JavaScript as plain data
 * and becomes a `PackError` subclass in `toPackError`, the one place errors are mapped. Host
 * functions cross the addon as bytes: this file decodes their input, encodes their output
 * and reads what a handler threw (`HostFunctionTable`, `dispatchHostCall`). An async call's
 * `AbortSignal` stays on this side: it cancels a native `CancelToken` handed to the call. A
 * `Flow` hands its definition and its packs' native objects to the core, which checks and
 * runs it; its result comes back as JSON text.
 */
'use strict'

const { fileURLToPath } = require('node:url')
const native = require('./index.js')

/** Base class of every failure packhost reports; `code` is the core's snake_case code. */
class PackError extends Error {
  /**
   * @param {string} message
   * @param {{code?: string, returnCode?: number, usage?: object, logs?: object[], audit?: object[]}} [details]
   */
  constructor(message, details = {}) {
    super(message)
    this.name = new.target.name
    this.code = details.code ?? new.target.code ?? 'internal'
    if (details.returnCode !== undefined) this.returnCode = details.returnCode
    if (details.usage !== undefined) this.usage = details.usage
    if (details.logs !== undefined) this.logs = details.logs
    if (details.audit !== undefined) this.audit = details.audit
  }
}

/**
 * Makes the subclass for one core code. The class name is what a user catches on, the code
 * is what the core reported; both are fixed here once.
 */
function errorClass(name, code) {
  const Class = { [name]: class extends PackError {} }[name]
  Class.code = code
  return Class
}

const InvalidPackError = errorClass('InvalidPackError', 'invalid_pack')
const InvalidManifestError = errorClass('InvalidManifestError', 'invalid_manifest')
const InvalidOptionsError = errorClass('InvalidOptionsError', 'invalid_options')
const UntrustedPackError = errorClass('UntrustedPackError', 'untrusted_pack')
const ActionNotFoundError = errorClass('ActionNotFoundError', 'action_not_found')
const TimeoutError = errorClass('TimeoutError', 'timeout')
const OutOfFuelError = errorClass('OutOfFuelError', 'out_of_fuel')
/** The call's `AbortSignal` aborted while it ran, or before it started. */
const CancelledError = errorClass('CancelledError', 'cancelled')
const MemoryLimitError = errorClass('MemoryLimitError', 'memory_limit')
const InputTooLargeError = errorClass('InputTooLargeError', 'input_too_large')
const OutputTooLargeError = errorClass('OutputTooLargeError', 'output_too_large')
const HostDeniedError = errorClass('HostDeniedError', 'host_denied')
const TrapError = errorClass('TrapError', 'trap')
const PluginError = errorClass('PluginError', 'plugin_error')
/**
 * The pack went past a quota of a capability: a key or value too large, a tenant's storage
 * full, too many operations in one call.
 */
const QuotaExceededError = errorClass('QuotaExceededError', 'quota_exceeded')
/**
 * Reading the pack failed (its file, or a registry that cannot be reached, refuses the
 * credentials or lacks the reference), or a capability's storage did.
 */
const IoError = errorClass('IoError', 'io')
const InternalError = errorClass('InternalError', 'internal')

/**
 * A host function the pack called failed: its handler threw, returned a rejected promise or
 * a value of the wrong type. `function` names the host function, `errorClass` the class of
 * what the handler threw (`err.name`, else its constructor's name) when it was an object.
 */
class HostFunctionError extends PackError {
  static code = 'host_function_error'

  /**
   * @param {string} message
   * @param {{function?: string, errorClass?: string} & object} [details] as PackError's, plus these
   */
  constructor(message, details = {}) {
    super(message, details)
    if (details.function !== undefined) this.function = details.function
    if (details.errorClass !== undefined) this.errorClass = details.errorClass
  }
}

/** The error class for each core code. */
const ERROR_CLASSES = Object.freeze(
  Object.fromEntries(
    [
      InvalidPackError,
      InvalidManifestError,
      InvalidOptionsError,
      UntrustedPackError,
      ActionNotFoundError,
      TimeoutError,
      OutOfFuelError,
      CancelledError,
      MemoryLimitError,
      InputTooLargeError,
      OutputTooLargeError,
      HostDeniedError,
      TrapError,
      PluginError,
      HostFunctionError,
      QuotaExceededError,
      IoError,
      InternalError,
    ].map((Class) => [Class.code, Class]),
  ),
)

/** Every code the core can report, straight from the core. */
const ERROR_CODES = Object.freeze(native.errorCodes())

/**
 * How the native addon was built: `{ version, profile, opt_level, debug_assertions, wasmtime }`.
 * An installed package reports `profile: 'release'` and `debug_assertions: false`.
 */
function buildInfo() {
  return JSON.parse(native.buildInfoJson())
}

/**
 * Publishes the pack at `path` to an OCI registry as a Wasm artifact, with its signature
 * (`options.signature`, else `PATH.sig` when it exists). Credentials come from
 * PACKHOST_REGISTRY_USERNAME and PACKHOST_REGISTRY_PASSWORD (or PACKHOST_REGISTRY_TOKEN), for
 * the registry PACKHOST_REGISTRY_HOST names.
 * @param {string} path the .wasm file
 * @param {string} reference REGISTRY/NAME:TAG, `oci://` optional
 * @param {{signature?: string}} [options]
 * @returns {Promise<{reference: string, manifest_digest: string, pack_digest: string, signed: boolean}>}
 */
async function push(path, reference, options) {
  const done = await native.pushPack(String(path), String(reference), options?.signature ?? null)
  if (typeof done !== 'string') throw toPackError(done)
  return JSON.parse(done)
}

/**
 * Pulls a pack into the local store (PACKHOST_STORE) with every digest checked, and pins the
 * reference to it: `Pack.load('oci://…')` then loads it with no network.
 * @param {string} reference REGISTRY/NAME:TAG or REGISTRY/NAME@sha256:…, `oci://` optional
 * @returns {Promise<{reference: string, manifest_digest: string, pack_digest: string, path: string, signed: boolean}>}
 */
async function pull(reference) {
  const done = await native.pullPack(String(reference))
  if (typeof done !== 'string') throw toPackError(done)
  return JSON.parse(done)
}

/** Builds the `PackError` for a failure the addon reported as data. */
function toPackError(failure) {
  const report = failure.reportJson === undefined ? {} : JSON.parse(failure.reportJson)
  // A code newer than this file still arrives as a PackError carrying that code.
  const Class = ERROR_CLASSES[failure.code] ?? PackError
  return new Class(failure.message, {
    code: failure.code,
    returnCode: failure.returnCode ?? undefined,
    function: failure.function ?? undefined,
    errorClass: failure.errorClass ?? undefined,
    usage: report.usage,
    logs: report.logs,
    audit: report.audit,
  })
}

/**
 * What one successful call returned: the output bytes, the call's usage, its log lines and
 * its audit trail.
 */
class CallResult {
  /**
   * @param {Buffer} bytes
   * @param {object} usage
   * @param {object[]} logs
   * @param {object[]} audit
   */
  constructor(bytes, usage, logs, audit) {
    /** The bytes the pack returned. */
    this.bytes = bytes
    /**
     * What the call cost: wall_time_us, fuel_consumed, peak_memory_bytes, input_bytes,
     * output_bytes, host_calls, host_time_us, kv_ops, http_requests, http_bytes_sent,
     * http_bytes_received; and whom and what it was for: context, pack_name, pack_version,
     * pack_id, action.
     */
    this.usage = usage
    /** What the pack logged at or above the pack's log level: `{level, message}` records. */
    this.logs = logs
    /**
     * Every capability the pack used, refusals included, in order: `{capability, operation,
     * target, outcome, status?, bytes_sent, bytes_received, reason?}` records.
     */
    this.audit = audit
  }

  /** The output decoded as UTF-8. */
  get text() {
    return this.bytes.toString('utf8')
  }

  /** The output parsed as JSON; throws a SyntaxError when it is not JSON. */
  json() {
    return JSON.parse(this.text)
  }

  toString() {
    return this.text
  }
}

/**
 * Where a pack comes from: a path (string or file: URL) or an `oci://` reference stays text,
 * bytes become a Buffer, and a plain object is an Extism manifest, read by the core as JSON.
 */
function toSource(source) {
  if (typeof source === 'string') return source
  if (source instanceof URL) return source.protocol === 'oci:' ? source.href : fileURLToPath(source)
  if (Buffer.isBuffer(source)) return source
  if (ArrayBuffer.isView(source)) return Buffer.from(source.buffer, source.byteOffset, source.byteLength)
  if (source instanceof ArrayBuffer) return Buffer.from(source)
  if (source !== null && typeof source === 'object' && Object.getPrototypeOf(source) === Object.prototype) {
    return { extismManifest: JSON.stringify(source) }
  }
  throw new TypeError('a pack source must be a path, a file: URL, a Buffer, a typed array, an ArrayBuffer or an Extism manifest object')
}

/** Options cross to the core as JSON text; absent means the core's defaults. */
function toOptionsJson(options) {
  if (options === undefined || options === null) return undefined
  try {
    return JSON.stringify(options)
  } catch (err) {
    throw new InvalidOptionsError(`options: cannot be written as JSON: ${err.message}`)
  }
}

/** Call options (`{ context }`) cross to the core as JSON text; absent means the defaults. */
function toCallOptionsJson(options) {
  if (options === undefined || options === null) return undefined
  try {
    return JSON.stringify(options)
  } catch (err) {
    throw new InvalidOptionsError(`call options: cannot be written as JSON: ${err.message}`)
  }
}

/**
 * An async call's options split in two: the `signal`, which stays on this side, and the rest
 * as JSON text for the core.
 */
function splitSignal(options) {
  const signal = options?.signal
  if (signal === undefined) return { signal: undefined, optionsJson: toCallOptionsJson(options) }
  // Read as an AbortSignal by its shape, so signals of other realms and polyfills work too.
  if (signal !== null && (typeof signal !== 'object' || typeof signal.aborted !== 'boolean' || typeof signal.addEventListener !== 'function' || typeof signal.removeEventListener !== 'function')) {
    throw new TypeError('options.signal must be an AbortSignal')
  }
  // Even a null signal stays here: the core refuses fields it does not know.
  return { signal: signal ?? undefined, optionsJson: toCallOptionsJson(withoutSignal(options)) }
}

/** A copy of call options without their `signal`. */
function withoutSignal(options) {
  const { signal: _signal, ...rest } = options
  return rest
}

/**
 * Runs `start(token)`, an async native call handed a `CancelToken` that `signal` cancels
 * when it aborts, and waits for it.
 */
async function withCancelToken(signal, start) {
  const token = new native.CancelToken()
  let onAbort
  if (signal.aborted) {
    // Still sent to the core, which fails a call with a cancelled token before it runs
    // anything, so the error is the core's own, as for any other code.
    token.cancel()
  } else {
    onAbort = () => token.cancel()
    signal.addEventListener('abort', onAbort, { once: true })
  }
  try {
    return await start(token)
  } finally {
    // A signal may outlive many calls: each call's listener goes when the call settles.
    if (onAbort !== undefined) signal.removeEventListener('abort', onAbort)
  }
}

/** Bytes as a Buffer (without copying, unless shared), or undefined for anything that is not bytes. */
function asBuffer(value) {
  // Memory shared with other threads is copied: the core reads a call's input (and a host
  // function's output) while the pack runs, and another thread could change it meanwhile.
  if (value instanceof SharedArrayBuffer) return Buffer.from(new Uint8Array(value))
  if (ArrayBuffer.isView(value)) {
    if (value.buffer instanceof SharedArrayBuffer) {
      return Buffer.from(new Uint8Array(value.buffer, value.byteOffset, value.byteLength))
    }
    return Buffer.isBuffer(value) ? value : Buffer.from(value.buffer, value.byteOffset, value.byteLength)
  }
  if (value instanceof ArrayBuffer) return Buffer.from(value)
  return undefined
}

/** Input bytes: strings as UTF-8, bytes as they are, anything else as its JSON text. */
function toInput(input) {
  if (input === undefined) return ''
  if (typeof input === 'string') return input
  const bytes = asBuffer(input)
  if (bytes !== undefined) return bytes
  const json = JSON.stringify(input)
  if (json === undefined) throw new TypeError(`a call input cannot be a ${typeof input}`)
  return json
}

/**
 * How many numbers a sync call leaves in its usage array: the eleven numeric usage fields, a
 * flag for waiting log lines or audit entries, then the output length.
 */
const SYNC_USAGE_SLOTS = 13

/** The slot of that flag: 1 when `takeReportJson` holds the call's log lines and audit trail. */
const SYNC_REPORT_WAITING = 11

/** The slot of the output's length. */
const SYNC_OUTPUT_LENGTH = 12

/**
 * Where sync calls leave their usage numbers and their output (when it fits), so a call
 * creates no object on the native side. Shared by all packs: sync calls run one at a time on
 * this thread, and each copies its results out before returning. A handler that calls
 * `callSync` while another sync call runs gets arrays of its own (`syncDepth`).
 */
const SYNC_USAGE = new Float64Array(SYNC_USAGE_SLOTS)
const SYNC_SCRATCH = Buffer.alloc(64 * 1024)
const NO_SCRATCH = Buffer.alloc(0)

/** Sync calls running on this thread: more than one when a host function makes one. */
let syncDepth = 0

/** The logs of a call that logged nothing: one shared, frozen empty list. */
const NO_LOGS = Object.freeze([])

/** The audit trail of a call that used no capability: one shared, frozen empty list. */
const NO_AUDIT = Object.freeze([])

const CONSOLE_METHODS = { trace: 'debug', debug: 'debug', info: 'info', warn: 'warn', error: 'error' }

/** The default log sink: the console method of the record's level, tagged with the pack. */
function logToConsole(record, pack) {
  const method = CONSOLE_METHODS[record.level] ?? 'log'
  console[method](`[packhost ${pack.name}] ${record.message}`)
}

/** How a host function reads its input and writes its output. */
const ENCODINGS = ['bytes', 'string', 'json']

/** What each output encoding accepts, for the message when a handler returns something else. */
const ACCEPTED_OUTPUT = {
  bytes: 'a Buffer, a Uint8Array or a string',
  string: 'a string',
  json: 'a value JSON can write',
}

const HOST_FUNCTION_KEYS = new Set(['handler', 'namespace', 'input', 'output'])

/** One host function as `functions` gives it: a handler, or `{ handler, namespace, input, output }`. */
function hostFunctionEntry(name, spec) {
  const options = typeof spec === 'function' ? { handler: spec } : spec
  if (options === null || typeof options !== 'object' || typeof options.handler !== 'function') {
    throw new TypeError(`host function ${JSON.stringify(name)}: give a function, or { handler, namespace, input, output }`)
  }
  // A typo must not silently fall back to a default encoding or namespace.
  for (const key of Object.keys(options)) {
    if (!HOST_FUNCTION_KEYS.has(key)) throw new TypeError(`host function ${JSON.stringify(name)}: unknown field ${JSON.stringify(key)}`)
  }
  const { handler, namespace, input = 'bytes', output = 'bytes' } = options
  if (namespace !== undefined && typeof namespace !== 'string') {
    throw new TypeError(`host function ${JSON.stringify(name)}: namespace must be a string`)
  }
  for (const [field, encoding] of [['input', input], ['output', output]]) {
    if (!ENCODINGS.includes(encoding)) {
      throw new TypeError(`host function ${JSON.stringify(name)}: ${field} must be 'bytes', 'string' or 'json'`)
    }
  }
  // A handler declaring exactly one parameter never sees the call, so its facts are not
  // parsed for it: that is most of what a host call costs on top of the handler itself.
  return { name, namespace, handler, input, output, wantsCall: handler.length !== 1 }
}

/** The handler's view of its input. */
function decodeInput(encoding, bytes) {
  if (encoding === 'bytes') return bytes
  const text = bytes.toString('utf8')
  return encoding === 'json' ? JSON.parse(text) : text
}

/** The handler's value as output bytes, or undefined when the encoding does not take it. */
function encodeOutput(encoding, value) {
  if (encoding === 'json') {
    const json = JSON.stringify(value)
    return json === undefined ? undefined : Buffer.from(json, 'utf8')
  }
  if (typeof value === 'string') return Buffer.from(value, 'utf8')
  return encoding === 'bytes' ? asBuffer(value) : undefined
}

/** A value's kind in words, for messages. */
function kindOf(value) {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array'
  if (typeof value === 'object') return `an object (${value.constructor?.name ?? 'no prototype'})`
  return value === undefined ? 'undefined' : `a ${typeof value}`
}

/**
 * The class of what a handler threw: its `name` when set to something more telling than
 * `Error`, else its constructor's name (so `class LookupError extends Error {}` reads as
 * `LookupError`). Values that are not objects have no class.
 */
function classOf(thrown) {
  if (thrown === null || (typeof thrown !== 'object' && typeof thrown !== 'function')) return undefined
  const { name } = thrown
  if (typeof name === 'string' && name !== '' && name !== 'Error') return name
  const constructorName = thrown.constructor?.name
  if (typeof constructorName === 'string' && constructorName !== '') return constructorName
  return typeof name === 'string' && name !== '' ? name : undefined
}

/** A host call's failure as the addon takes it, from what the handler threw (or rejected with). */
function failureOf(thrown) {
  try {
    const message = typeof thrown?.message === 'string' ? thrown.message : String(thrown)
    return { message, errorClass: classOf(thrown) }
  } catch {
    // A getter or toString that throws in turn: the call still fails, just less precisely.
    return { message: 'the handler threw a value that cannot be read', errorClass: undefined }
  }
}

/** A host call's answer from the handler's value: its output bytes, or a failure when the value has the wrong type. */
function answerOf(entry, value) {
  let bytes
  try {
    bytes = encodeOutput(entry.output, value)
  } catch (err) {
    // JSON.stringify of a BigInt or a cycle.
    return failureOf(err)
  }
  if (bytes === undefined) {
    return { message: `the handler returned ${kindOf(value)}; output '${entry.output}' takes ${ACCEPTED_OUTPUT[entry.output]}`, errorClass: 'TypeError' }
  }
  return bytes
}

/**
 * Delivers a host call's answer: returned to the addon for a call in place (no reply), sent
 * through the reply for a call queued from the thread pool.
 */
function settle(reply, answer) {
  if (reply === null) return answer
  if (Buffer.isBuffer(answer)) reply.ok(answer)
  else reply.fail(answer.message, answer.errorClass)
  return undefined
}

/** Whether a handler's value is a promise (or any thenable) to wait for. */
function isThenable(value) {
  return value !== null && (typeof value === 'object' || typeof value === 'function') && typeof value.then === 'function'
}

/**
 * Host-function tables of loaded packs by id. The addon knows a pack's handlers only by this
 * id: it holds no reference to them, so a handler that closes over its own pack (to call it
 * again) forms no cycle through native code that the collector could not see. Entries are
 * weak; a pack holds its table, and the table's entry goes when the table is collected.
 */
const HOST_TABLES = new Map()
const HOST_TABLE_CLEANUP = new FinalizationRegistry((id) => {
  if (HOST_TABLES.get(id)?.deref() === undefined) HOST_TABLES.delete(id)
})
let lastTableId = 0

/** The host functions one pack was lent. */
class HostFunctionTable {
  #entries = new Map()
  // The entries in the order the addon numbers them.
  #byIndex = []

  /** Reads `functions` (import name -> handler or spec); throws a TypeError for a bad one. */
  constructor(functions) {
    if (functions === null || typeof functions !== 'object' || Array.isArray(functions)) {
      throw new TypeError('hooks.functions must be an object mapping import names to handlers')
    }
    for (const [name, spec] of Object.entries(functions)) this.#entries.set(name, hostFunctionEntry(name, spec))
    this.#byIndex = [...this.#entries.values()]
    // Ids are u32 for the addon; skipping ids in use keeps them unique even after wrapping.
    do {
      lastTableId = lastTableId >= 0xffffffff ? 1 : lastTableId + 1
    } while (HOST_TABLES.has(lastTableId))
    this.id = lastTableId
    HOST_TABLES.set(this.id, new WeakRef(this))
    HOST_TABLE_CLEANUP.register(this, this.id)
  }

  /**
   * The table as the addon's load functions take it, or undefined when it lends nothing. The
   * addon calls a function by its index here, and sends the call's facts only to a handler
   * that reads them.
   */
  get forAddon() {
    if (this.#byIndex.length === 0) return undefined
    const imports = this.#byIndex.map(({ name, namespace, wantsCall }) => ({ name, namespace, wantsCall }))
    return { table: this.id, imports }
  }

  /**
   * Runs the `index`-th handler on one host call and settles it (see `settle`): in place
   * (`reply` null) by returning the answer, for the thread pool through `reply`, now or once
   * a returned promise settles. Every failure is answered too, never thrown.
   */
  run(index, input, callJson, reply) {
    const entry = this.#byIndex[index]
    let value
    try {
      const call = callJson === null ? undefined : JSON.parse(callJson)
      value = entry.handler(decodeInput(entry.input, input), call)
    } catch (err) {
      return settle(reply, failureOf(err))
    }
    if (!isThenable(value)) return settle(reply, answerOf(entry, value))
    if (reply === null) {
      // Nothing awaits the promise any more, so its rejection must not go unhandled.
      Promise.resolve(value).catch(() => {})
      return { message: 'the handler returned a Promise: async host functions need call() (await), not callSync()', errorClass: 'TypeError' }
    }
    Promise.resolve(value)
      .then(
        (settled) => settle(reply, answerOf(entry, settled)),
        (err) => settle(reply, failureOf(err)),
      )
      // The reply's methods do not throw; should one anyway, the waiting call gives up on
      // its own, and an unhandled rejection must not take the process down meanwhile.
      .catch(() => {})
    return undefined
  }
}

/**
 * The one function the addon calls for every host call of every pack, on this thread: under
 * `callSync` in place, with no reply, returning the answer (output bytes, or the failure as
 * `{message, errorClass}`); for an async call from the thread pool with a `reply`, which the
 * waiting call reads. `err` is set only when the addon could not build the arguments; no
 * reply comes with it, and the call fails on its own. Never throws: a throw from here would
 * be uncaught.
 */
function dispatchHostCall(err, table, index, input, callJson, reply) {
  if (err) return undefined
  try {
    const host = HOST_TABLES.get(table)?.deref()
    if (host === undefined) {
      return settle(reply, { message: 'the pack that lent this host function was collected', errorClass: 'Error' })
    }
    return host.run(index, input, callJson, reply)
  } catch (caught) {
    try {
      return settle(reply, failureOf(caught))
    } catch {
      // The reply is gone with the caught value; the call fails when the reply is collected.
      return undefined
    }
  }
}

// Guards the constructor: packs come from Pack.load / Pack.loadSync only.
const FROM_LOAD = Symbol('packhost.fromLoad')

/** A Pack's native pack (set by `Pack`, which alone can read it), undefined for anything else. */
let nativeOf

/** A loaded pack. Safe to call many times at once; each call gets its own instance. */
class Pack {
  #native
  #onLog
  #manifest
  // The pack's name, version and id as sync calls' usage records give them; read once.
  #names
  // Held for the pack's lifetime: the addon finds the handlers through it, by id only.
  #host

  static {
    // For `Flow`, which binds the core's packs: the native pack of a Pack, else undefined.
    nativeOf = (value) => (value !== null && typeof value === 'object' && #native in value ? value.#native : undefined)
  }

  /** Use `Pack.load` or `Pack.loadSync`. */
  constructor(token, nativePack, hooks, host) {
    if (token !== FROM_LOAD) throw new TypeError('use Pack.load() or Pack.loadSync() to load a pack')
    if (hooks?.onLog != null && typeof hooks.onLog !== 'function') {
      throw new TypeError('hooks.onLog must be a function, or null to keep log lines off the console')
    }
    this.#native = nativePack
    this.#onLog = hooks?.onLog === undefined ? logToConsole : hooks.onLog
    this.#host = host
  }

  /**
   * Loads a pack on the libuv thread pool.
   * @param {string | URL | Buffer | Uint8Array | ArrayBuffer | object} source a .wasm path, an `oci://registry/name:tag` reference (pulled into the local store once, then pinned), the module's bytes, or an Extism manifest ({wasm: [{path}], config, allowed_hosts, ...})
   * @param {object} [options] limits, allowed_hosts, config, log_level, allow_wasi, isolation, kv: read by the core
   * @param {{
   *   onLog?: ((record: {level: string, message: string}, pack: Pack) => void) | null,
   *   functions?: Record<string, Function | {handler: Function, namespace?: string, input?: string, output?: string}>,
   * }} [hooks] `functions` lends the pack host functions, by import name
   * @returns {Promise<Pack>}
   */
  static async load(source, options, hooks) {
    const host = Pack.#hostTable(hooks)
    const loaded = await native.loadPack(toSource(source), toOptionsJson(options), host?.forAddon, host && dispatchHostCall)
    return Pack.#fromLoaded(loaded, hooks, host)
  }

  /** Loads a pack on the calling thread; as `Pack.load` otherwise. */
  static loadSync(source, options, hooks) {
    const host = Pack.#hostTable(hooks)
    const loaded = native.loadPackSync(toSource(source), toOptionsJson(options), host?.forAddon, host && dispatchHostCall)
    return Pack.#fromLoaded(loaded, hooks, host)
  }

  static #hostTable(hooks) {
    return hooks?.functions == null ? undefined : new HostFunctionTable(hooks.functions)
  }

  static #fromLoaded(loaded, hooks, host) {
    if (!(loaded instanceof native.NativePack)) throw toPackError(loaded)
    return new Pack(FROM_LOAD, loaded, hooks, host)
  }

  /**
   * Swaps in the next version of this pack, loaded with the same options and host
   * functions: calls already running finish on the old version, every later call gets the
   * new one. On failure (bytes that do not load, a pack of another name) the promise
   * rejects and the old version stays.
   * @param {string | URL | Buffer | Uint8Array | ArrayBuffer} source a .wasm path, an `oci://` reference or the module's bytes
   * @returns {Promise<Pack>} this pack
   */
  async reload(source) {
    const next = toSource(source)
    if (next !== null && typeof next === 'object' && !Buffer.isBuffer(next)) {
      throw new TypeError('reload takes a path, an oci:// reference or bytes')
    }
    const loaded = await this.#native.loadNext(next)
    if (!(loaded instanceof native.NativePack)) throw toPackError(loaded)
    this.#native = loaded
    this.#manifest = undefined
    this.#names = undefined
    return this
  }

  /** The SHA-256 of the module bytes, in lowercase hex: the pack's identity. */
  get id() {
    return this.#native.id
  }

  /** The pack's manifest (synthesized from its exports when it carries none). */
  get manifest() {
    this.#manifest ??= JSON.parse(this.#native.manifestJson)
    return this.#manifest
  }

  /** The pack's name, from its manifest. */
  get name() {
    return this.manifest.name
  }

  /** The actions the pack can be called with, `pre` and `post` included, in manifest order. */
  get actions() {
    return this.#native.actions
  }

  /**
   * Runs `action` on the libuv thread pool. Host functions the pack calls run on this thread
   * meanwhile; a handler's returned promise is awaited.
   *
   * Aborting `signal` cancels the call: the pack stops (within about a millisecond on the
   * native engine) and the promise rejects with a `CancelledError` (code `cancelled`)
   * carrying the call's usage and logs, as a timeout does; an already aborted signal rejects
   * it without running the pack. A pack waiting on a host function's handler stops once the
   * handler settles. A call that finished before the abort resolves as usual.
   * @param {string} action
   * @param {string | Buffer | Uint8Array | ArrayBuffer | object} [input] objects are sent as JSON
   * @param {{context?: unknown, signal?: AbortSignal | null}} [options] call options: `context` (any JSON) reaches every host function; `signal` cancels the call
   * @returns {Promise<CallResult>} rejects with a PackError subclass
   */
  async call(action, input, options) {
    const { signal, optionsJson } = splitSignal(options)
    const bytes = toInput(input)
    if (signal === undefined) return this.#finish(await this.#native.call(action, bytes, optionsJson))
    return this.#finish(await withCancelToken(signal, (token) => this.#native.call(action, bytes, optionsJson, token)))
  }

  /**
   * Runs `action` on the calling thread, blocking it for up to the call's timeout. Host
   * functions the pack calls run right here and must answer synchronously. Takes no
   * `signal`: the blocked event loop could not deliver an abort while the call runs (use
   * `call`, or `limits.timeout_ms`, to bound it).
   */
  callSync(action, input, options) {
    // Left to the core, a signal would be refused as an unknown field, which hides why. A
    // null signal means none, as on `call`.
    if (options?.signal !== undefined && options.signal !== null) {
      throw new TypeError('a sync call takes no signal: it blocks the event loop, so no abort could reach it while it runs; use call() to cancel')
    }
    const optionsJson = toCallOptionsJson(options?.signal === null ? withoutSignal(options) : options)
    const nested = syncDepth > 0
    const usage = nested ? new Float64Array(SYNC_USAGE_SLOTS) : SYNC_USAGE
    const scratch = nested ? NO_SCRATCH : SYNC_SCRATCH
    let outcome
    syncDepth += 1
    try {
      outcome = this.#native.callSync(action, toInput(input), usage, scratch, optionsJson)
    } finally {
      syncDepth -= 1
    }
    // On success the usage (with a flag for waiting log lines or audit entries, and the
    // output length) is in `usage` and the output in `scratch`, or returned as a Buffer when
    // it did not fit; a failure comes back as a full outcome.
    let bytes
    if (outcome === undefined || outcome === null) {
      const length = usage[SYNC_OUTPUT_LENGTH]
      bytes = Buffer.allocUnsafe(length)
      scratch.copy(bytes, 0, 0, length)
    } else if (Buffer.isBuffer(outcome)) {
      bytes = outcome
    } else {
      return this.#finish(outcome)
    }
    let logs = NO_LOGS
    let audit = NO_AUDIT
    if (usage[SYNC_REPORT_WAITING] === 1) {
      const waiting = JSON.parse(this.#native.takeReportJson())
      logs = waiting.logs
      audit = waiting.audit
      this.#forwardLogs(logs)
    }
    const names = this.#names ?? this.#usageNames()
    return new CallResult(bytes, {
      wall_time_us: usage[0],
      fuel_consumed: usage[1],
      peak_memory_bytes: usage[2],
      input_bytes: usage[3],
      output_bytes: usage[4],
      host_calls: usage[5],
      host_time_us: usage[6],
      kv_ops: usage[7],
      http_requests: usage[8],
      http_bytes_sent: usage[9],
      http_bytes_received: usage[10],
      // The core records the call's context with its usage. It is the options' own, so it
      // is read back from the JSON sent rather than carried back across the boundary. The
      // pack's names and the action are known on this side too, so they do not cross either.
      context: optionsJson === undefined ? null : (JSON.parse(optionsJson).context ?? null),
      pack_name: names.name,
      pack_version: names.version,
      pack_id: names.id,
      action,
    }, logs, audit)
  }

  /**
   * The pack's name and version (from the core's manifest) and id, as usage records name
   * them. Read once, and from the core rather than `this.manifest`, which its holder may
   * have changed.
   */
  #usageNames() {
    const { name, version } = JSON.parse(this.#native.manifestJson)
    this.#names = { name, version, id: this.#native.id }
    return this.#names
  }

  /**
   * Counts and totals of this pack's calls since it was loaded, over sync and async calls
   * alike: `calls`, `errors` (failed calls by error code) and the sums of the calls' usage
   * numbers (wall_time_us, fuel_consumed, input_bytes, output_bytes, host_calls, kv_ops,
   * http_requests, http_bytes_sent, http_bytes_received).
   * @returns {object}
   */
  stats() {
    return JSON.parse(this.#native.statsJson())
  }

  /**
   * Runs the pack's `pre` hook (conventionally over an outgoing request) on the thread pool;
   * takes `context` and `signal` as `call` does.
   */
  pre(input, options) {
    return this.call('pre', input, options)
  }

  /** Runs the pack's `pre` hook on the calling thread. */
  preSync(input, options) {
    return this.callSync('pre', input, options)
  }

  /**
   * Runs the pack's `post` hook (conventionally over a response) on the thread pool; takes
   * `context` and `signal` as `call` does.
   */
  post(input, options) {
    return this.call('post', input, options)
  }

  /** Runs the pack's `post` hook on the calling thread. */
  postSync(input, options) {
    return this.callSync('post', input, options)
  }

  /** Forwards the call's log lines, then returns its result or throws its error. */
  #finish(outcome) {
    if (outcome.error !== undefined) {
      const err = toPackError(outcome.error)
      this.#forwardLogs(err.logs)
      throw err
    }
    const report = JSON.parse(outcome.reportJson)
    this.#forwardLogs(report.logs)
    return new CallResult(outcome.output, report.usage, report.logs, report.audit)
  }

  #forwardLogs(logs) {
    if (!this.#onLog || !logs) return
    for (const record of logs) this.#onLog(record, this)
  }
}

/** A flow definition as the core reads it: JSON text, or an object written as JSON text. */
function toDefinitionJson(definition) {
  if (typeof definition === 'string') return definition
  if (definition === null || typeof definition !== 'object' || Array.isArray(definition)) {
    throw new InvalidOptionsError(`flow: the definition must be an object or its JSON text, not ${kindOf(definition)}`)
  }
  try {
    return JSON.stringify(definition)
  } catch (err) {
    throw new InvalidOptionsError(`flow: the definition cannot be written as JSON: ${err.message}`)
  }
}

/** A flow's input as JSON text: any value JSON can write; undefined is null. */
function toFlowInputJson(input) {
  if (input === undefined) return 'null'
  let json
  try {
    json = JSON.stringify(input)
  } catch (err) {
    throw new InvalidOptionsError(`flow input: cannot be written as JSON: ${err.message}`)
  }
  if (json === undefined) throw new InvalidOptionsError(`flow input: ${kindOf(input)} cannot be written as JSON`)
  return json
}

/**
 * Packs' actions composed as data: each step calls an action of one of the flow's packs,
 * its input built from the flow's input and earlier steps' outputs. The core checks the
 * definition, and that every pack a step names is given and has the step's action, when the
 * flow is made.
 */
class Flow {
  #native
  #definitionJson
  // The packs by the names the steps give, in the order the native flow was bound to them.
  #names
  #packs
  // The native packs the native flow is bound to: a reloaded pack has a new one.
  #bound

  /**
   * @param {object | string} definition `{name, description?, timeout_ms?, steps, output?}`, or its JSON text
   * @param {Record<string, Pack>} packs the packs by the names the steps give
   * @throws {PackError} `InvalidOptionsError` for a bad definition, a missing pack or a value that is not a Pack; `ActionNotFoundError` for a step naming an action its pack lacks
   */
  constructor(definition, packs) {
    this.#definitionJson = toDefinitionJson(definition)
    if (packs === null || typeof packs !== 'object' || Array.isArray(packs)) {
      throw new InvalidOptionsError(`flow packs: give an object mapping the names the steps use to Packs, not ${kindOf(packs)}`)
    }
    const entries = Object.entries(packs)
    for (const [name, pack] of entries) {
      if (nativeOf(pack) === undefined) throw new InvalidOptionsError(`flow packs: ${JSON.stringify(name)} is ${kindOf(pack)}, not a Pack`)
    }
    this.#names = entries.map(([name]) => name)
    this.#packs = entries.map(([, pack]) => pack)
    this.#bind()
  }

  /** Binds the core's flow to the packs' current versions. */
  #bind() {
    const bound = this.#packs.map(nativeOf)
    const created = native.createFlow(this.#definitionJson, this.#names, bound)
    if (!(created instanceof native.NativeFlow)) throw toPackError(created)
    this.#native = created
    this.#bound = bound
  }

  /** The flow's name, from its definition. */
  get name() {
    return this.#native.name
  }

  /**
   * Runs the flow on the libuv thread pool. Every step's call gets `options.context`; a pack
   * reloaded since the last run is run (and checked) at its new version. Aborting
   * `options.signal` cancels the run: it rejects with a `CancelledError`.
   * @param {unknown} [input] any value JSON can write; undefined is null
   * @param {{context?: unknown, signal?: AbortSignal | null}} [options]
   * @returns {Promise<{output: unknown, steps: object[], usage: object}>} rejects with a PackError: the failing step's, its message naming the flow and the step
   */
  async run(input, options) {
    const { signal, optionsJson } = splitSignal(options)
    const inputJson = toFlowInputJson(input)
    if (this.#packs.some((pack, index) => nativeOf(pack) !== this.#bound[index])) this.#bind()
    const flow = this.#native
    const done = signal === undefined
      ? await flow.run(inputJson, optionsJson)
      : await withCancelToken(signal, (token) => flow.run(inputJson, optionsJson, token))
    if (typeof done !== 'string') throw toPackError(done)
    return JSON.parse(done)
  }
}

module.exports = {
  Pack,
  CallResult,
  Flow,
  PackError,
  InvalidPackError,
  InvalidManifestError,
  InvalidOptionsError,
  UntrustedPackError,
  ActionNotFoundError,
  TimeoutError,
  OutOfFuelError,
  CancelledError,
  MemoryLimitError,
  InputTooLargeError,
  OutputTooLargeError,
  HostDeniedError,
  TrapError,
  PluginError,
  HostFunctionError,
  QuotaExceededError,
  IoError,
  InternalError,
  ERROR_CLASSES,
  ERROR_CODES,
  buildInfo,
  push,
  pull,
}
