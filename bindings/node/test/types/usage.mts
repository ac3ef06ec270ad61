// Type-checks the published declarations (packhost.d.ts) against the way the README uses the
// API; `tsc -p bindings/node/test/types` runs in ci.sh. Never executed.
import {
  CancelledError,
  Flow,
  HostFunctionError,
  Pack,
  PackError,
  QuotaExceededError,
  TimeoutError,
  type AsyncCallOptions,
  type AuditEntry,
  type CallResult,
  type FlowResult,
  type FlowStep,
  type HostFunctions,
  type LogRecord,
  type PackStats,
  type Usage,
} from 'packhost'

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
    if (err instanceof QuotaExceededError) return err.usage?.kv_ops ?? 0
    if (err instanceof PackError && err.code === 'host_denied') return err.audit?.filter((entry) => entry.outcome === 'denied').length ?? 0
    if (err instanceof PackError && err.code === 'plugin_error') return err.returnCode ?? 1
    throw err
  }
  return parsed.count + usage.fuel_consumed + sync.text.length + pack.actions.length + seen.length
}

async function hostFunctions(): Promise<number> {
  class LookupError extends Error {}
  const lent = await Pack.load('plugins/dist/host_calls.wasm', {}, {
    functions: {
      reverse: (input: Buffer) => Buffer.from(input).reverse(),
      add: { input: 'json', output: 'json', handler: async ({ a, b }: { a: number; b: number }) => ({ sum: a + b }) },
      fail: (input: Buffer) => {
        throw new LookupError(`no customer ${input}`)
      },
      context_echo: {
        output: 'json',
        handler: (_input, call) => ({ tenant: (call.context as { tenant?: string } | null)?.tenant, pack: call.packName }),
      },
    },
  })
  const echoed = await lent.call('context_via_host', '', { context: { tenant: 'acme' } })
  const trail: AuditEntry[] = echoed.audit
  const called = trail.filter((entry) => entry.capability === 'host_function' && entry.status === undefined)
  const usage: Usage = lent.callSync('reverse_via_host', 'abc', null).usage
  const functions: HostFunctions = { reverse: { handler: (text: string) => text, input: 'string', output: 'string' } }
  await Pack.load('plugins/dist/host_calls.wasm', null, { functions, onLog: null })
  try {
    lent.callSync('fail_via_host', 'c42')
  } catch (err) {
    if (err instanceof HostFunctionError) return (err.function ?? '').length + (err.errorClass ?? '').length
    throw err
  }
  const tenant: unknown = echoed.usage.context
  return echoed.json<{ pack: string }>().pack.length + usage.host_calls + usage.host_time_us + usage.kv_ops + (tenant === null ? 0 : 1) + called.length
}

function accounting(pack: Pack): string {
  const usage: Usage = pack.callSync('uppercase', 'abc').usage
  const billed = usage.http_requests + usage.http_bytes_sent + usage.http_bytes_received
  const stats: PackStats = pack.stats()
  const failed = stats.errors.plugin_error ?? 0
  const totals = stats.calls + failed + stats.wall_time_us + stats.fuel_consumed + stats.input_bytes + stats.output_bytes
  const capabilities = stats.host_calls + stats.kv_ops + stats.http_requests + stats.http_bytes_sent + stats.http_bytes_received
  const reasons = pack.callSync('uppercase', 'abc').audit.map((entry: AuditEntry) => entry.reason ?? `${entry.bytes_sent + entry.bytes_received}`)
  return `${usage.pack_name}@${usage.pack_version} ${usage.pack_id} ${usage.action} ${billed + totals + capabilities} ${reasons.join()}`
}

async function cancelling(pack: Pack): Promise<string> {
  const controller = new AbortController()
  const options: AsyncCallOptions = { context: { tenant: 'acme' }, signal: controller.signal }
  const pending = pack.call('spin', '', options)
  setTimeout(() => controller.abort(), 50)
  await pack.pre('{}', { signal: AbortSignal.timeout(1000) })
  await pack.post('{}', { signal: null })
  // @ts-expect-error sync calls take no signal: they block the event loop
  pack.callSync('uppercase', 'abc', { signal: controller.signal })
  try {
    await pending
  } catch (err) {
    if (err instanceof CancelledError) return `${err.code} ${err.usage?.wall_time_us ?? 0}`
    if (err instanceof PackError && err.code === 'cancelled') return err.message
    throw err
  }
  return ''
}

async function flows(text: Pack): Promise<number> {
  const flow = new Flow(
    {
      name: 'shout_then_count',
      steps: [
        { id: 'shout', pack: 'text', action: 'uppercase', input: { $from: '/input/text' } },
        { id: 'count', pack: 'text', action: 'count_vowels', input: { text: { $from: '/steps/shout/output' } } },
      ],
    },
    { text },
  )
  const result: FlowResult = await flow.run({ text: 'hello' }, { context: { tenant: 'acme' }, signal: AbortSignal.timeout(1000) })
  const ran: FlowStep[] = result.steps.filter((step) => step.status === 'ok')
  const fuel = ran.reduce((sum, step) => sum + (step.usage?.fuel_consumed ?? 0), 0)
  await new Flow('{"name": "one", "steps": []}', {}).run()
  return flow.name.length + fuel + result.usage.steps_run + result.usage.steps_skipped + (result.output === null ? 0 : 1)
}

void tour
void flows
void cancelling
void hostFunctions
void accounting
