/**
 * Example: the webhook_guard pack drops retried webhook deliveries and rate-limits each
 * tenant, keeping its state in key-value storage (an SQLite file that outlives the process).
 *
 *   node examples/node/webhook_guard.mjs [folder holding webhook_guard.wasm]
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

import { Pack, PackError } from 'packhost'

const packs = process.argv[2] ?? fileURLToPath(new URL('../../plugins/dist', import.meta.url))
const packFile = path.join(packs, 'webhook_guard.wasm')

/** Sends one delivery for a tenant; the call's `context` names the tenant whose state it uses. */
function deliver(pack, tenant, id, timestamp) {
  return pack.call('deliver', { id, timestamp, payload: { amount: 5 } }, { context: { tenant } })
}

const tmp = mkdtempSync(path.join(tmpdir(), 'webhook-guard-'))
try {
  // Load options are the core's PackOptions; the state lives in one SQLite file.
  const options = {
    kv: { backend: 'sqlite', path: path.join(tmp, 'webhook-guard.sqlite3') },
    config: { per_minute: '2' }, // no `endpoint`: nothing is forwarded over HTTP
    secrets: { endpoint_token: 'tok_example' },
  }
  const pack = await Pack.load(packFile, options)

  const deliveries = [
    ['acme', 'evt_1', 1764000000],
    ['acme', 'evt_1', 1764000001], // a retry of the first
    ['acme', 'evt_2', 1764000002],
    ['acme', 'evt_3', 1764000003], // the third this minute, over per_minute
    ['globex', 'evt_1', 1764000004], // another tenant: its own ids and window
  ]
  const results = []
  for (const [tenant, id, timestamp] of deliveries) {
    const result = await deliver(pack, tenant, id, timestamp)
    const verdict = result.json()
    console.log(`${tenant.padEnd(6)} ${id} -> ${verdict.status} (${verdict.in_window} this minute)`)
    results.push({ result, status: verdict.status })
  }
  const statuses = results.map(({ status }) => status).join(',')
  if (statuses !== 'accepted,duplicate,accepted,rate_limited,accepted') {
    throw new Error(`expected accepted,duplicate,accepted,rate_limited,accepted, got ${statuses}`)
  }

  // Every capability a call used, in order: key-value operations, keys, outcomes.
  const first = results[0].result
  console.log('audit of the first call:')
  for (const entry of first.audit) {
    console.log(`  ${entry.capability} ${entry.operation} ${entry.target} ${entry.outcome}`)
  }
  console.log(`  kv_ops ${first.usage.kv_ops}`)

  // A new load, as a restarted process would make, finds the state the calls left.
  const reloaded = await Pack.load(packFile, options)
  const again = (await deliver(reloaded, 'acme', 'evt_1', 1764000005)).json()
  console.log(`after reload: acme   evt_1 -> ${again.status} (${again.in_window} this minute)`)
  if (again.status !== 'duplicate') {
    throw new Error(`state did not survive the reload: evt_1 was ${again.status}`)
  }

  const stats = pack.stats()
  console.log(`stats: ${stats.calls} calls, ${stats.kv_ops} kv operations`)
} catch (err) {
  if (err instanceof PackError) console.error(`packhost: ${err.code}: ${err.message}`)
  throw err
} finally {
  rmSync(tmp, { recursive: true, force: true })
}
