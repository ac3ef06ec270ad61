/**
 * Live version swaps: `pack.reload()` loads the next version with the same options and
 * host functions, calls already running finish on the old one, and a failed reload keeps
 * the old version serving.
 */
'use strict'

const { test } = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')

const { Pack, InvalidPackError } = require('packhost')
const { packPath, quiet } = require('./support.js')

test('a reload swaps the next version in, keeping the options, while running calls finish on the old', async () => {
  const pack = await Pack.load(packPath('text_tools'), { limits: { timeout_ms: 5000 } }, quiet)
  assert.equal((await pack.call('greet', 'x')).usage.pack_version, '0.1.0')
  const running = pack.call('greet', 'before')

  assert.equal(await pack.reload(packPath('text_tools_next')), pack)
  assert.equal(pack.manifest.version, '9.0.0')
  const before = await running
  assert.equal(before.toString(), 'Hello, before!')
  assert.equal(before.usage.pack_version, '0.1.0', 'the call started before the swap ran on the old version')
  const after = await pack.call('greet', 'after')
  assert.equal(after.usage.pack_version, '9.0.0')
  assert.equal(pack.callSync('greet', 'sync').usage.pack_version, '9.0.0')

  // From bytes too, back to the first version.
  await pack.reload(fs.readFileSync(packPath('text_tools')))
  assert.equal((await pack.call('greet', 'x')).usage.pack_version, '0.1.0')
})

test('a reload that fails leaves the old version serving', async () => {
  const pack = await Pack.load(packPath('text_tools'), {}, quiet)
  await assert.rejects(pack.reload(Buffer.from('not wasm')), InvalidPackError)
  await assert.rejects(pack.reload(packPath('hostile')), (err) => {
    assert.ok(err instanceof InvalidPackError)
    assert.match(err.message, /next version of "text-tools" must be "text-tools", not "hostile"/)
    return true
  })
  await assert.rejects(pack.reload({ wasm: [] }), TypeError)
  assert.equal((await pack.call('greet', 'still')).toString(), 'Hello, still!')
  assert.equal(pack.manifest.version, '0.1.0')
})
