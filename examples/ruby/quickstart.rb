# frozen_string_literal: true

# A tour of packhost from Ruby: load packs, call them, read usage, handle limits, and run
# packs from several threads at once.
#
# Run from anywhere after `make packs`, with the gem installed (`gem install packhost`) or
# from a repository build (`bash bindings/ruby/ci.sh` builds it):
#
#   ruby examples/ruby/quickstart.rb                        # with the installed gem
#   ruby -I bindings/ruby/lib examples/ruby/quickstart.rb   # with the repository build
#   ruby examples/ruby/quickstart.rb DIR                    # packs from another folder

require "json"
require "logger"
require "packhost"

repo = File.expand_path("../..", __dir__)
packs = ARGV.fetch(0, File.join(repo, "plugins", "dist"))

# Plugin log lines go to a Logger of your choice, after each call, at their own level.
Packhost.logger = Logger.new($stdout, level: Logger::INFO, formatter: lambda { |severity, _time, pack, message|
  "  [#{pack} #{severity}] #{message}\n"
})

# START quickstart
# Options are the core's PackOptions as keywords; limits apply to every call.
api_errors = Packhost::Pack.load(File.join(packs, "api_errors.wasm"), limits: {timeout_ms: 500})
response = JSON.parse(File.read(File.join(repo, "examples", "data", "stripe_card_declined.json")))
result = api_errors.post(response, json: true) # Hashes are sent as JSON
error = result.output
puts "#{error['provider']} said #{error['code']}: #{error['message']}"
puts "  fuel #{result.usage.fuel_consumed}, #{result.usage.wall_time_us} µs"
# END quickstart

text_tools = Packhost::Pack.load(File.join(packs, "text_tools.wasm"), config: {greeting: "Bonjour"})
puts text_tools.call("greet", "Ada").output
p text_tools.call("count_vowels", {text: "hello world"}).json

# START errors
hostile = Packhost::Pack.load(File.join(packs, "hostile.wasm"), limits: {timeout_ms: 200, fuel: nil})
begin
  hostile.call("spin") # an endless loop
rescue Packhost::TimeoutError => e
  puts "stopped: #{e.code} after #{e.usage.wall_time_us / 1000} ms"
end
begin
  text_tools.call("fail_with", "bad input")
rescue Packhost::Error => e
  puts "failed: #{e.code} (return code #{e.return_code}): #{e.message}"
end
# END errors

# START threads
# The GVL is released while a pack runs, so threads call one pack in parallel.
words = %w[one two three]
p words.map { |word| Thread.new { text_tools.call("uppercase", word).output } }.map(&:value)
# END threads
