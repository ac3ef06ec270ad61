/**
 * Packs from an OCI registry, as a Node host meets them: push, pull, and Pack.load of an
 * `oci://` reference, against a real registry (docker-registry on loopback, started by
 * scripts/test-registry.sh) with the pack store in a temporary folder.
 */
'use strict'

const { describe, test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { execFileSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const packhost = require('packhost')
const { Pack, UntrustedPackError, InvalidPackError, IoError } = packhost
const { REPO_ROOT, packPath, quiet } = require('./support.js')

const TRUSTED_KEY = 'ed25519:0sLITBOFnLRkcIZCvSK4e6fXBIs8B7VBadXrC+4Sh6k='
const trusting = { trusted_keys: [TRUSTED_KEY], require_signature: true }
const script = path.join(REPO_ROOT, 'scripts', 'test-registry.sh')

let scratch
let registry

before(() => {
  scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'packhost-node-registry-'))
  registry = execFileSync('bash', [script, 'start', path.join(scratch, 'registry')], { encoding: 'utf8' }).trim()
  // The store every load and pull of this process uses.
  process.env.PACKHOST_STORE = path.join(scratch, 'store')
})

after(() => {
  execFileSync('bash', [script, 'stop', path.join(scratch, 'registry')])
  fs.rmSync(scratch, { recursive: true, force: true })
})

function registryBlob(digest) {
  const hex = digest.slice('sha256:'.length)
  return path.join(scratch, 'registry', 'data', 'docker', 'registry', 'v2', 'blobs', 'sha256', hex.slice(0, 2), hex, 'data')
}

describe('packs from a registry', () => {
  test('a signed pack pushed from Node loads by reference under a trust policy', async () => {
    const reference = `${registry}/packs/text-tools:1.0`
    const pushed = await packhost.push(packPath('text_tools'), reference)
    assert.equal(pushed.signed, true)
    assert.match(pushed.manifest_digest, /^sha256:[0-9a-f]{64}$/)
    const pack = await Pack.load(`oci://${reference}`, trusting, quiet)
    assert.equal(`sha256:${pack.id}`, pushed.pack_digest)
    assert.equal(pack.callSync('uppercase', 'from node').text, 'FROM NODE')
    // The same reference as a URL, synchronously: pinned now, so no registry is asked.
    const again = Pack.loadSync(new URL(`oci://${reference}`), trusting, quiet)
    assert.equal(again.id, pack.id)
  })

  test('pull stores the pack with its signature and pins the reference', async () => {
    const reference = `${registry}/packs/pulled:1`
    const pushed = await packhost.push(packPath('text_tools'), reference)
    const pulled = await packhost.pull(`oci://${reference}`)
    assert.equal(pulled.pack_digest, pushed.pack_digest)
    assert.equal(pulled.signed, true)
    assert.ok(fs.existsSync(pulled.path) && fs.existsSync(`${pulled.path}.sig`))
  })

  test('packs signed by an untrusted key, or unsigned, are refused with untrusted_pack', async () => {
    const hostile = `${registry}/packs/hostile:1`
    await packhost.push(packPath('hostile'), hostile)
    await assert.rejects(Pack.load(`oci://${hostile}`, trusting, quiet), (err) => {
      assert.ok(err instanceof UntrustedPackError)
      assert.equal(err.code, 'untrusted_pack')
      assert.match(err.message, /not among trusted_keys/)
      return true
    })
    const unsigned = `${registry}/packs/api-errors:1`
    assert.equal((await packhost.push(packPath('api_errors'), unsigned)).signed, false)
    assert.throws(() => Pack.loadSync(`oci://${unsigned}`, trusting, quiet), (err) => err instanceof UntrustedPackError && /not signed/.test(err.message))
  })

  test('a blob tampered with in the registry is refused with a digest error', async () => {
    const reference = `${registry}/packs/tampered:1`
    const pushed = await packhost.push(packPath('plain'), reference)
    fs.writeFileSync(registryBlob(pushed.pack_digest), fs.readFileSync(packPath('hostile')))
    await assert.rejects(packhost.pull(reference), (err) => err instanceof InvalidPackError && /digest/.test(err.message))
    await assert.rejects(Pack.load(`oci://${reference}`, {}, quiet), InvalidPackError)
  })

  test('what the registry does not hold is an io error', async () => {
    await assert.rejects(packhost.pull(`${registry}/packs/nothing:1`), IoError)
    await assert.rejects(packhost.push(packPath('plain'), 'not a reference!'), IoError)
  })
})
