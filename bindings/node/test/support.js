/**
 * Shared helpers for the Node tests: where the repository, the sample packs and the
 * conformance data live, and the conformance suite's host functions.
 */
'use strict'

const fs = require('node:fs')
const path = require('node:path')

const REPO_ROOT = path.resolve(__dirname, '..', '..', '..')
const CONFORMANCE_DIR = path.join(REPO_ROOT, 'tests', 'conformance')
const DIST_DIR = path.join(REPO_ROOT, 'plugins', 'dist')

/** Path of a built sample pack; throws with the fix when the packs were not built. */
function packPath(name) {
  const file = path.join(DIST_DIR, `${name}.wasm`)
  if (!fs.existsSync(file)) {
    throw new Error(`${file} is missing: build the sample packs first with \`make packs\``)
  }
  return file
}

/** A log sink for tests that keeps plugin log lines off the console. */
const quiet = { onLog: null }

/**
 * The conformance suite's host functions (tests/conformance/README.md), written with the
 * Node API. `async: true` makes every handler async, so the returned promises are awaited.
 */
function suiteFunctions({ async = false } = {}) {
  const functions = {
    reverse: (input) => Buffer.from(input).reverse(),
    add: {
      input: 'json',
      output: 'json',
      handler: ({ a, b }) => {
        if (!Number.isInteger(a) || !Number.isInteger(b)) throw new TypeError('a and b must be integers')
        return { sum: a + b }
      },
    },
    fail: (input) => {
      const err = new Error(input.toString('utf8'))
      err.name = 'LookupError'
      throw err
    },
    context_echo: {
      output: 'json',
      handler: (_input, call) => ({ context: call.context, pack: call.packName }),
    },
  }
  if (!async) return functions
  return Object.fromEntries(
    Object.entries(functions).map(([name, spec]) => {
      const { handler, ...encodings } = typeof spec === 'function' ? { handler: spec } : spec
      return [name, { ...encodings, handler: async (input, call) => handler(input, call) }]
    }),
  )
}

module.exports = { REPO_ROOT, CONFORMANCE_DIR, DIST_DIR, packPath, quiet, suiteFunctions }
