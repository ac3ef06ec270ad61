// The official `@extism/extism` Node SDK on the host-function row of `make bench`: a 64-byte
// round trip through `reverse` on host_calls.wasm, timed as bench.js times packhost (sync
// rounds are not available in this SDK, so each call is awaited, as its own anchor does).
// Runs with NODE_PATH pointing at the anchors' node_modules (../shared/anchors/setup.sh).
//
// Usage: node extism_host_fn.mjs HOST_CALLS.wasm
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'

const require = createRequire(join(process.env.NODE_PATH, 'x.js'))
const createPlugin = (await import(require.resolve('@extism/extism'))).default
const median = (xs) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const unused = () => {
  throw new Error('not part of the benchmark')
}

const plugin = await createPlugin({ wasm: [{ data: readFileSync(process.argv[2]) }] }, {
  useWasi: false,
  functions: {
    'extism:host/user': {
      reverse: (context, offset) => context.store(context.read(offset).bytes().reverse()),
      add: unused,
      fail: unused,
      context_echo: unused,
    },
  },
})
const data = 'hello world '.repeat(6).slice(0, 64)
const calls = 20000
await plugin.call('reverse_via_host', data)
const rounds = []
for (let r = 0; r < 5; r++) {
  const start = performance.now()
  for (let i = 0; i < calls; i++) await plugin.call('reverse_via_host', data)
  rounds.push((performance.now() - start) / calls)
}
console.log(`node-extism bytes=64 per_call_us=${(median(rounds) * 1000).toFixed(2)}`)
await plugin.close()
