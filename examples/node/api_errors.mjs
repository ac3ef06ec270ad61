/**
 * Example: the api_errors pack's `pre` and `post` hooks around a real HTTP exchange.
 *
 * A local server plays a Stripe-like API that declines a card. The client checks the
 * outgoing request with `pre` (it warns about the missing Idempotency-Key), sends it, and
 * hands the response to `post`, which pulls out the error type, code and docs link.
 *
 *   node examples/node/api_errors.mjs [path/to/api_errors.wasm]
 */
import http from 'node:http'
import { fileURLToPath } from 'node:url'

import { Pack, PackError } from 'packhost'

const packFile =
  process.argv[2] ?? fileURLToPath(new URL('../../plugins/dist/api_errors.wasm', import.meta.url))

/** A stand-in for api.stripe.com on a loopback port: every charge is declined. */
function startFakeStripe() {
  const server = http.createServer((req, res) => {
    res.writeHead(402, { 'content-type': 'application/json', 'request-id': 'req_demo42' })
    res.end(
      JSON.stringify({
        error: {
          type: 'card_error',
          code: 'card_declined',
          decline_code: 'insufficient_funds',
          message: 'Your card has insufficient funds.',
          doc_url: 'https://stripe.com/docs/error-codes/card-declined',
        },
      }),
    )
  })
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)))
}

const pack = await Pack.load(packFile, { limits: { timeout_ms: 500 } })
const server = await startFakeStripe()
try {
  // The request as the application describes it; the pack sees the public URL it stands for.
  const request = {
    method: 'POST',
    url: 'https://api.stripe.com/v1/charges',
    headers: { Authorization: 'Bearer sk_test_demo' },
    body: { amount: 2000, currency: 'eur' },
  }

  const checked = await pack.pre(request)
  for (const warning of checked.json().warnings) console.log(`pre:  warning: ${warning}`)

  const { port } = server.address()
  const response = await fetch(`http://127.0.0.1:${port}/v1/charges`, {
    method: request.method,
    headers: request.headers,
    body: JSON.stringify(request.body),
  })
  const exchange = {
    request: { method: request.method, url: request.url },
    response: {
      status: response.status,
      headers: Object.fromEntries(response.headers),
      body: await response.json(),
    },
  }

  const verdict = await pack.post(exchange)
  const error = verdict.json()
  console.log(`post: ${error.provider} ${error.type}/${error.code} (HTTP ${error.status}): ${error.message}`)
  console.log(`post: docs ${error.doc_url}`)
  console.log(`post: cost ${verdict.usage.fuel_consumed} fuel, ${verdict.usage.wall_time_us} µs`)
} catch (err) {
  if (err instanceof PackError) console.error(`packhost: ${err.code}: ${err.message}`)
  throw err
} finally {
  server.close()
}
