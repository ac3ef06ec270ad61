/**
 * One loaded pack serves many callers at once: concurrent async calls each get their own
 * instance and their own answer.
 */
'use strict'

const { test } = require('node:test')
const assert = require('node:assert/strict')

const { Pack } = require('packhost')
const { packPath, quiet } = require('./support.js')

test('100 concurrent async calls on one pack all succeed with their own output', async () => {
  const pack = await Pack.load(packPath('text_tools'), {}, quiet)
  const texts = Array.from({ length: 100 }, (_, i) => `call ${i}: ${'a'.repeat(i)}`)
  const results = await Promise.all(texts.map((text) => pack.call('uppercase', text)))
  assert.equal(results.length, 100)
  results.forEach((result, i) => assert.equal(result.text, texts[i].toUpperCase()))
})

test('concurrent calls that fail do not disturb the ones that succeed', async () => {
  const pack = await Pack.load(packPath('text_tools'), {}, quiet)
  const calls = Array.from({ length: 40 }, (_, i) =>
    i % 2 === 0 ? pack.call('fail_with', `no ${i}`) : pack.call('count_vowels', { text: 'aeiou'.repeat(i) }),
  )
  const settled = await Promise.allSettled(calls)
  settled.forEach((outcome, i) => {
    if (i % 2 === 0) {
      assert.equal(outcome.status, 'rejected')
      assert.equal(outcome.reason.code, 'plugin_error')
      assert.equal(outcome.reason.message, `no ${i}`)
    } else {
      assert.equal(outcome.status, 'fulfilled')
      assert.equal(outcome.value.json().count, 5 * i)
    }
  })
})
