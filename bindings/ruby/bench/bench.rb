# frozen_string_literal: true

# Times packhost from Ruby the way ../shared/anchors times the official SDK (libextism):
# per-call medians over 5 rounds on the anchors' input, plus calls per second with one and
# two threads and resident memory per loaded pack with one idle instance; then a 64-byte
# round trip through a host function, on host_calls.wasm from the same folder. One line per
# figure, for scripts/bench_report.py. `--smoke` runs everything once with tiny counts (CI).
#
# Usage: ruby -Ilib bench.rb PACK.wasm [--smoke]   (or, without -Ilib, an installed gem)

require "packhost"

HOST = "packhost-ruby"

def payload(size)
  ("hello world " * ((size / 12) + 1))[0, size]
end

def median(values)
  values.sort[values.size / 2]
end

def now
  Process.clock_gettime(Process::CLOCK_MONOTONIC)
end

def per_call(pack, action, size, scale, rounds)
  data = payload(size)
  calls = [([[20_000_000 / [size, 1000].max, 20_000].min, 20].max * scale).to_i, 1].max
  pack.call(action, data)
  times = Array.new(rounds) do
    start = now
    calls.times { pack.call(action, data) }
    (now - start) / calls
  end
  median(times) * 1e6
end

def calls_per_second(pack, action, size, threads, seconds)
  data = payload(size)
  pack.call(action, data)
  start = Queue.new
  workers = Array.new(threads) do
    Thread.new do
      start.pop
      began = now
      calls = 0
      while now - began < seconds
        16.times { pack.call(action, data) }
        calls += 16
      end
      calls
    end
  end
  threads.times { start << :go }
  workers.sum(&:value) / seconds
end

def resident_kib
  File.read("/proc/self/statm").split[1].to_i * 4
end

def per_idle_instance_kib(path, count)
  Packhost::Pack.load(path, isolation: "pack").call("length", "x")
  before = resident_kib
  packs = Array.new(count) do
    pack = Packhost::Pack.load(path, isolation: "pack")
    pack.call("length", "x")
    pack
  end
  kib = (resident_kib - before).to_f / count
  packs.clear
  kib
end

path = ARGV.fetch(0)
smoke = ARGV.include?("--smoke")
scale, rounds = smoke ? [0.001, 1] : [1.0, 5]
pack = Packhost::Pack.load(path, isolation: "pack")
%w[length echo].each do |action|
  [0, 1024, 102_400].each do |size|
    puts format("%s %s bytes=%d per_call_us=%.2f", HOST, action, size, per_call(pack, action, size, scale, rounds))
  end
end
seconds, windows = smoke ? [0.02, 1] : [0.25, 9]
[["length", 1024], ["count_vowels", 102_400]].each do |action, size|
  # One and two threads in alternating windows, each reported as its median: this VM's slow
  # spells last seconds, and would skew a ratio measured one after the other.
  rates = {1 => [], 2 => []}
  windows.times do
    [1, 2].each { |threads| rates[threads] << calls_per_second(pack, action, size, threads, seconds) }
  end
  [1, 2].each do |threads|
    rate = rates[threads].sort[windows / 2]
    puts format("%s threads action=%s bytes=%d threads=%d calls_per_s=%.0f", HOST, action, size, threads, rate)
  end
end
puts format("%s idle_instance rss_kib=%.0f", HOST, per_idle_instance_kib(path, smoke ? 2 : 16))
unused = ->(_input) { raise "not part of the benchmark" }
lent = Packhost::Pack.load(
  File.join(File.dirname(path), "host_calls.wasm"),
  isolation: "pack",
  functions: {"reverse" => ->(input) { input.reverse }, "add" => unused, "fail" => unused, "context_echo" => unused}
)
puts format("%s host_fn bytes=64 per_call_us=%.2f", HOST, per_call(lent, "reverse_via_host", 64, scale, rounds))
