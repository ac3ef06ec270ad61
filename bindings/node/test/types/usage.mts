// Type-checks the published declarations (packhost.d.ts) against the way the README uses the
// API; `tsc -p bindings/node/test/types` runs in ci.sh. Never executed.
import { Pack, PackError, TimeoutError, type CallResult, type LogRecord, type Usage } from 'packhost'

async function tour(): Promise<number> {
  const seen: LogRecord[] = []
  const pack = await Pack.load('plugins/dist/text_tools.wasm', { limits: { timeout_ms: 250, fuel: null } }, {
    onLog: (record) => seen.push(record),
  })
  const result: CallResult = await pack.call('count_vowels', { text: 'hello' })
  const parsed = result.json<{ count: number }>()
  const usage: Usage = result.usage
  const sync = pack.callSync('uppercase', Buffer.from('abc'))
  const hooks = Pack.loadSync(new URL('file:///tmp/api_errors.wasm'), null, { onLog: null })
  await hooks.pre({ method: 'GET', url: 'https://example.org' })
  hooks.postSync('{"response":{"status":200}}')
  try {
    await pack.call('spin')
  } catch (err) {
    if (err instanceof TimeoutError) return err.usage?.wall_time_us ?? 0
    if (err instanceof PackError && err.code === 'plugin_error') return err.returnCode ?? 1
    throw err
  }
  return parsed.count + usage.fuel_consumed + sync.text.length + pack.actions.length + seen.length
}

void tour
