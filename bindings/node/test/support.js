/**
 * Shared helpers for the Node tests: where the repository, the sample packs and the
 * conformance data live.
 */
'use strict'

const fs = require('node:fs')
const path = require('node:path')

const REPO_ROOT = path.resolve(__dirname, '..', '..', '..')
const CONFORMANCE_DIR = path.join(REPO_ROOT, 'tests', 'conformance')

/** Path of a built sample pack; throws with the fix when the packs were not built. */
function packPath(name) {
  const file = path.join(REPO_ROOT, 'plugins', 'dist', `${name}.wasm`)
  if (!fs.existsSync(file)) {
    throw new Error(`${file} is missing: build the sample packs first with \`make packs\``)
  }
  return file
}

/** A log sink for tests that keeps plugin log lines off the console. */
const quiet = { onLog: null }

module.exports = { REPO_ROOT, CONFORMANCE_DIR, packPath, quiet }
