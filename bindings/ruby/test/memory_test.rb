# frozen_string_literal: true

# Long-running hosts do not leak: many calls, and many load/drop cycles, leave resident
# memory flat once warmed up.

require_relative "test_helper"

class MemoryTest < Minitest::Test
  # Growth allowed over one batch once warmed up: room for the allocator's and the GC's own
  # slack, while a leak of a few hundred bytes per call, or of the module bytes per load,
  # exceeds it.
  ALLOWED_GROWTH = 24 * 1024 * 1024

  # A leak grows memory in every batch; allocator slack (heap fragmentation left by earlier
  # tests in this process) settles. So a batch may be repeated this many times, and one
  # flat batch passes.
  BATCHES = 3

  def test_100_000_calls_do_not_grow_resident_memory
    skip_under_gc_stress
    pack = Packhost::Pack.load(sample_pack("text_tools"))
    call = -> { pack.call("count_vowels", '{"text":"hello world"}') }
    assert_flat(warm_up: 10_000, runs: 100_000, &call)
  end

  def test_100_000_failing_calls_do_not_grow_resident_memory
    skip_under_gc_stress
    pack = Packhost::Pack.load(sample_pack("text_tools"))
    call = lambda do
      pack.call("fail_with", "declined")
    rescue Packhost::PluginError
      nil
    end
    assert_flat(warm_up: 10_000, runs: 100_000, &call)
  end

  def test_10_000_load_and_drop_cycles_do_not_grow_resident_memory
    skip_under_gc_stress
    bytes = File.binread(sample_pack("text_tools"))
    load = -> { Packhost::Pack.load(bytes) }
    # Dropped packs are freed when Ruby's GC runs, which it does as their memory (reported
    # to it by the extension) adds up.
    assert_flat(warm_up: 2_000, runs: 10_000, &load)
  end

  private

  def assert_flat(warm_up:, runs:)
    warm_up.times { yield }
    growths = []
    BATCHES.times do
      GC.start
      before = resident_bytes
      runs.times { yield }
      GC.start
      growths << resident_bytes - before
      break if growths.last < ALLOWED_GROWTH
    end
    assert_operator growths.last, :<, ALLOWED_GROWTH,
                    "resident memory grew in every batch of #{runs} runs, by " \
                    "#{growths.map { |bytes| bytes / 1024 }.join(', ')} KiB"
  end
end
