/**
 * packhost for Node: the public API (`Pack`, `CallResult` and the `PackError` classes) over
 * the native addon that `index.js` loads.
 *
 * This file converts values and maps errors; it decides nothing. Options go to the core as
 * JSON text, unchanged. Every core failure reaches JavaScript as plain data and becomes a
 * `PackError` subclass in `toPackError`, the one place errors are mapped.
 */
'use strict'

const { fileURLToPath } = require('node:url')
const native = require('./index.js')

/** Base class of every failure packhost reports; `code` is the core's snake_case code. */
class PackError extends Error {
  /**
   * @param {string} message
   * @param {{code?: string, returnCode?: number, usage?: object, logs?: object[]}} [details]
   */
  constructor(message, details = {}) {
    super(message)
    this.name = new.target.name
    this.code = details.code ?? new.target.code ?? 'internal'
    if (details.returnCode !== undefined) this.returnCode = details.returnCode
    if (details.usage !== undefined) this.usage = details.usage
    if (details.logs !== undefined) this.logs = details.logs
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
const ActionNotFoundError = errorClass('ActionNotFoundError', 'action_not_found')
const TimeoutError = errorClass('TimeoutError', 'timeout')
const OutOfFuelError = errorClass('OutOfFuelError', 'out_of_fuel')
const MemoryLimitError = errorClass('MemoryLimitError', 'memory_limit')
const InputTooLargeError = errorClass('InputTooLargeError', 'input_too_large')
const OutputTooLargeError = errorClass('OutputTooLargeError', 'output_too_large')
const HostDeniedError = errorClass('HostDeniedError', 'host_denied')
const TrapError = errorClass('TrapError', 'trap')
const PluginError = errorClass('PluginError', 'plugin_error')
const IoError = errorClass('IoError', 'io')
const InternalError = errorClass('InternalError', 'internal')

/** The error class for each core code. */
const ERROR_CLASSES = Object.freeze(
  Object.fromEntries(
    [
      InvalidPackError,
      InvalidManifestError,
      InvalidOptionsError,
      ActionNotFoundError,
      TimeoutError,
      OutOfFuelError,
      MemoryLimitError,
      InputTooLargeError,
      OutputTooLargeError,
      HostDeniedError,
      TrapError,
      PluginError,
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

/** Builds the `PackError` for a failure the addon reported as data. */
function toPackError(failure) {
  const report = failure.reportJson === undefined ? {} : JSON.parse(failure.reportJson)
  // A code newer than this file still arrives as a PackError carrying that code.
  const Class = ERROR_CLASSES[failure.code] ?? PackError
  return new Class(failure.message, {
    code: failure.code,
    returnCode: failure.returnCode ?? undefined,
    usage: report.usage,
    logs: report.logs,
  })
}

/** What one successful call returned: the output bytes, the call's usage and its log lines. */
class CallResult {
  /**
   * @param {Buffer} bytes
   * @param {object} usage
   * @param {object[]} logs
   */
  constructor(bytes, usage, logs) {
    /** The bytes the pack returned. */
    this.bytes = bytes
    /** What the call cost: wall_time_us, fuel_consumed, peak_memory_bytes, input_bytes, output_bytes. */
    this.usage = usage
    /** What the pack logged at or above the pack's log level: `{level, message}` records. */
    this.logs = logs
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

/** Where a pack comes from: a path (string or file: URL) stays a path, bytes become a Buffer. */
function toSource(source) {
  if (typeof source === 'string') return source
  if (source instanceof URL) return fileURLToPath(source)
  if (Buffer.isBuffer(source)) return source
  if (ArrayBuffer.isView(source)) return Buffer.from(source.buffer, source.byteOffset, source.byteLength)
  if (source instanceof ArrayBuffer) return Buffer.from(source)
  throw new TypeError('a pack source must be a path, a file: URL, a Buffer, a typed array or an ArrayBuffer')
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

/** Input bytes: strings as UTF-8, bytes as they are, anything else as its JSON text. */
function toInput(input) {
  if (input === undefined) return ''
  if (typeof input === 'string' || Buffer.isBuffer(input)) return input
  if (ArrayBuffer.isView(input)) return Buffer.from(input.buffer, input.byteOffset, input.byteLength)
  if (input instanceof ArrayBuffer) return Buffer.from(input)
  const json = JSON.stringify(input)
  if (json === undefined) throw new TypeError(`a call input cannot be a ${typeof input}`)
  return json
}

/**
 * Where sync calls leave their usage numbers and their output (when it fits), so a call
 * creates no object on the native side. Shared by all packs: sync calls run one at a time on
 * this thread, and each copies its results out before returning.
 */
const SYNC_USAGE = new Float64Array(7)
const SYNC_SCRATCH = Buffer.alloc(64 * 1024)

/** The logs of a call that logged nothing: one shared, frozen empty list. */
const NO_LOGS = Object.freeze([])

const CONSOLE_METHODS = { trace: 'debug', debug: 'debug', info: 'info', warn: 'warn', error: 'error' }

/** The default log sink: the console method of the record's level, tagged with the pack. */
function logToConsole(record, pack) {
  const method = CONSOLE_METHODS[record.level] ?? 'log'
  console[method](`[packhost ${pack.name}] ${record.message}`)
}

// Guards the constructor: packs come from Pack.load / Pack.loadSync only.
const FROM_LOAD = Symbol('packhost.fromLoad')

/** A loaded pack. Safe to call many times at once; each call gets its own instance. */
class Pack {
  #native
  #onLog
  #manifest

  /** Use `Pack.load` or `Pack.loadSync`. */
  constructor(token, nativePack, hooks) {
    if (token !== FROM_LOAD) throw new TypeError('use Pack.load() or Pack.loadSync() to load a pack')
    if (hooks?.onLog != null && typeof hooks.onLog !== 'function') {
      throw new TypeError('hooks.onLog must be a function, or null to keep log lines off the console')
    }
    this.#native = nativePack
    this.#onLog = hooks?.onLog === undefined ? logToConsole : hooks.onLog
  }

  /**
   * Loads a pack on the libuv thread pool.
   * @param {string | URL | Buffer | Uint8Array | ArrayBuffer} source a .wasm path or the module's bytes
   * @param {object} [options] limits, allowed_hosts, config, log_level, allow_wasi: read by the core
   * @param {{onLog?: ((record: {level: string, message: string}, pack: Pack) => void) | null}} [hooks]
   * @returns {Promise<Pack>}
   */
  static async load(source, options, hooks) {
    return Pack.#fromLoaded(await native.loadPack(toSource(source), toOptionsJson(options)), hooks)
  }

  /** Loads a pack on the calling thread; as `Pack.load` otherwise. */
  static loadSync(source, options, hooks) {
    return Pack.#fromLoaded(native.loadPackSync(toSource(source), toOptionsJson(options)), hooks)
  }

  static #fromLoaded(loaded, hooks) {
    if (!(loaded instanceof native.NativePack)) throw toPackError(loaded)
    return new Pack(FROM_LOAD, loaded, hooks)
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
   * Runs `action` on the libuv thread pool.
   * @param {string} action
   * @param {string | Buffer | Uint8Array | ArrayBuffer | object} [input] objects are sent as JSON
   * @returns {Promise<CallResult>} rejects with a PackError subclass
   */
  async call(action, input) {
    return this.#finish(await this.#native.call(action, toInput(input)))
  }

  /** Runs `action` on the calling thread, blocking it for up to the call's timeout. */
  callSync(action, input) {
    const usage = SYNC_USAGE
    const outcome = this.#native.callSync(action, toInput(input), usage, SYNC_SCRATCH)
    // On success the usage (with a flag for waiting log lines and the output length) is in
    // SYNC_USAGE and the output in SYNC_SCRATCH, or returned as a Buffer when it did not
    // fit; a failure comes back as a full outcome.
    let bytes
    if (outcome === undefined || outcome === null) {
      const length = usage[6]
      bytes = Buffer.allocUnsafe(length)
      SYNC_SCRATCH.copy(bytes, 0, 0, length)
    } else if (Buffer.isBuffer(outcome)) {
      bytes = outcome
    } else {
      return this.#finish(outcome)
    }
    let logs = NO_LOGS
    if (usage[5] === 1) {
      logs = JSON.parse(this.#native.takeLogsJson())
      this.#forwardLogs(logs)
    }
    return new CallResult(bytes, {
      wall_time_us: usage[0],
      fuel_consumed: usage[1],
      peak_memory_bytes: usage[2],
      input_bytes: usage[3],
      output_bytes: usage[4],
    }, logs)
  }

  /** Runs the pack's `pre` hook (conventionally over an outgoing request) on the thread pool. */
  pre(input) {
    return this.call('pre', input)
  }

  /** Runs the pack's `pre` hook on the calling thread. */
  preSync(input) {
    return this.callSync('pre', input)
  }

  /** Runs the pack's `post` hook (conventionally over a response) on the thread pool. */
  post(input) {
    return this.call('post', input)
  }

  /** Runs the pack's `post` hook on the calling thread. */
  postSync(input) {
    return this.callSync('post', input)
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
    return new CallResult(outcome.output, report.usage, report.logs)
  }

  #forwardLogs(logs) {
    if (!this.#onLog || !logs) return
    for (const record of logs) this.#onLog(record, this)
  }
}

module.exports = {
  Pack,
  CallResult,
  PackError,
  InvalidPackError,
  InvalidManifestError,
  InvalidOptionsError,
  ActionNotFoundError,
  TimeoutError,
  OutOfFuelError,
  MemoryLimitError,
  InputTooLargeError,
  OutputTooLargeError,
  HostDeniedError,
  TrapError,
  PluginError,
  IoError,
  InternalError,
  ERROR_CLASSES,
  ERROR_CODES,
  buildInfo,
}
