# frozen_string_literal: true

# The webhook_guard pack from Ruby: drop retried webhook deliveries and rate-limit each
# tenant, keeping the state in key-value storage (an SQLite file that outlives the process).
#
# Run from anywhere after `make packs`, with the gem installed (`gem install packhost`) or
# from a repository build (`bash bindings/ruby/ci.sh` builds it):
#
#   ruby examples/ruby/webhook_guard.rb                        # with the installed gem
#   ruby -I bindings/ruby/lib examples/ruby/webhook_guard.rb   # with the repository build
#   ruby examples/ruby/webhook_guard.rb DIR                    # the pack from another folder

require "packhost"
require "tmpdir"

repo = File.expand_path("../..", __dir__)
pack_file = File.join(ARGV.fetch(0, File.join(repo, "plugins", "dist")), "webhook_guard.wasm")

# Sends one delivery for a tenant; the call's context names the tenant whose state it uses.
def deliver(pack, tenant, id, timestamp)
  delivery = {id: id, timestamp: timestamp, payload: {amount: 5}}
  pack.call("deliver", delivery, json: true, context: {tenant: tenant})
end

Dir.mktmpdir("webhook-guard-") do |tmp|
  # Load options are the core's PackOptions; the state lives in one SQLite file.
  options = {
    kv: {backend: "sqlite", path: File.join(tmp, "webhook-guard.sqlite3")},
    config: {per_minute: "2"}, # no endpoint: nothing is forwarded over HTTP
    secrets: {endpoint_token: "tok_example"}
  }
  pack = Packhost::Pack.load(pack_file, **options)

  deliveries = [
    ["acme", "evt_1", 1_764_000_000],
    ["acme", "evt_1", 1_764_000_001], # a retry of the first
    ["acme", "evt_2", 1_764_000_002],
    ["acme", "evt_3", 1_764_000_003], # the third this minute, over per_minute
    ["globex", "evt_1", 1_764_000_004] # another tenant: its own ids and window
  ]
  results = deliveries.map do |tenant, id, timestamp|
    result = deliver(pack, tenant, id, timestamp)
    puts "#{tenant.ljust(6)} #{id} -> #{result.output['status']} (#{result.output['in_window']} this minute)"
    result
  end
  statuses = results.map { |result| result.output["status"] }
  expected = %w[accepted duplicate accepted rate_limited accepted]
  abort "webhook_guard: expected statuses #{expected}, got #{statuses}" unless statuses == expected

  # Every capability a call used, in order: key-value operations, keys, outcomes.
  first = results.first
  puts "audit of the first call:"
  first.audit.each do |entry|
    puts "  #{entry['capability']} #{entry['operation']} #{entry['target']} #{entry['outcome']}"
  end
  puts "  kv_ops #{first.usage.kv_ops}"

  # A new load, as a restarted process would make, finds the state the calls left.
  reloaded = Packhost::Pack.load(pack_file, **options)
  again = deliver(reloaded, "acme", "evt_1", 1_764_000_005).output
  puts "after reload: acme   evt_1 -> #{again['status']} (#{again['in_window']} this minute)"
  unless again["status"] == "duplicate"
    abort "webhook_guard: state did not survive the reload: evt_1 was #{again['status']}"
  end

  stats = pack.stats
  puts "stats: #{stats['calls']} calls, #{stats['kv_ops']} kv operations"
end
