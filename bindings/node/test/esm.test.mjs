/**
 * The package works from `import` as well as `require`, and both give the same classes.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'

import packhost, { CancelledError, Flow, Pack, PackError, TimeoutError } from 'packhost'

const require = createRequire(import.meta.url)
const textTools = fileURLToPath(new URL('../../../plugins/dist/text_tools.wasm', import.meta.url))

test('named and default imports work and match require()', () => {
  const required = require('packhost')
  assert.equal(Pack, required.Pack)
  assert.equal(Flow, required.Flow)
  assert.equal(PackError, required.PackError)
  assert.equal(TimeoutError, required.TimeoutError)
  assert.equal(CancelledError, required.CancelledError)
  assert.equal(packhost.ERROR_CLASSES.cancelled, CancelledError)
  assert.equal(packhost.Pack, Pack)
})

test('a pack loaded through import answers', async () => {
  const pack = await Pack.load(textTools, {}, { onLog: null })
  const result = await pack.call('count_vowels', { text: 'import' })
  assert.deepEqual(result.json(), { count: 2, vowels: 'io' })
})
