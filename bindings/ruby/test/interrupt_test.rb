# frozen_string_literal: true

# Interrupts during a pack call (Thread#raise, Thread#kill, Timeout.timeout) wait for the
# call to end and then arrive in Ruby code, as the exact exception sent: they never unwind
# through the extension's Rust frames, so a call they interrupt leaks nothing and the pack
# keeps answering calls correctly afterwards.

require_relative "test_helper"
require "timeout"

class InterruptTest < Minitest::Test
  # Sent into threads with Thread#raise.
  class Stop < StandardError
  end

  # How long the spin action runs: the pack's timeout ends it, as nothing else can.
  SPIN_TIMEOUT_MS = 300

  # Bound on every wait here: far above SPIN_TIMEOUT_MS, so only a hang reaches it.
  # Under GC.stress (every allocation a full collection) a call and its error take far
  # longer; CI saw 5.04 s there.
  WAIT_SECONDS = PackhostTestSupport::GC_STRESS ? 25 : 5

  BUSY_INPUT = {rounds: 1000}.freeze

  # The input of each call in the leak test, above what the allowed growth can hide once
  # a few calls have leaked it.
  LEAK_INPUT_BYTES = 4 * 1024 * 1024
  LEAK_CALLS = 12
  ALLOWED_GROWTH = 24 * 1024 * 1024
  BATCHES = 3

  def test_thread_raise_during_a_call_ends_the_thread_with_that_exception
    pack = spinning_pack
    expected = pack.call("busy", BUSY_INPUT).output
    worker = spinning_worker(pack)
    worker.raise(Stop, "stopped mid-call")
    error = assert_raises(Stop) { worker.join(WAIT_SECONDS) }
    assert_instance_of Stop, error, "the thread ends with the exception sent, not another"
    assert_equal "stopped mid-call", error.message
    assert_pack_still_works(pack, expected)
  end

  def test_timeout_timeout_around_a_call_raises_timeout_error_once_the_call_ends
    pack = spinning_pack
    expected = pack.call("busy", BUSY_INPUT).output
    started = now
    assert_raises(Timeout::Error) { Timeout.timeout(0.05) { pack.call("spin") } }
    # The call cannot be cut short: Timeout's exception arrives when the pack's own
    # timeout ends it.
    assert_operator now - started, :<, WAIT_SECONDS
    assert_pack_still_works(pack, expected)
  end

  def test_a_thread_killed_during_a_call_dies_quietly
    pack = spinning_pack
    expected = pack.call("busy", BUSY_INPUT).output
    worker = spinning_worker(pack)
    worker.kill
    assert worker.join(WAIT_SECONDS), "the killed thread did not end within #{WAIT_SECONDS} s"
    assert_equal false, worker.status, "killed, not ended by an exception"
    assert_pack_still_works(pack, expected)
  end

  def test_twenty_calls_in_a_row_each_interrupted_by_thread_raise_end_with_that_exception
    # Under GC.stress the main thread can take longer than 100 ms to see the worker inside its
    # call and raise into it; the call must still be running when the Stop arrives.
    pack = spinning_pack(timeout_ms: PackhostTestSupport::GC_STRESS ? 3000 : 100)
    expected = pack.call("busy", BUSY_INPUT).output
    outcomes = interrupted_calls(pack, "", 20)
    assert_equal [Stop] * 20, outcomes.map(&:class)
    assert_pack_still_works(pack, expected)
  end

  def test_calls_interrupted_by_thread_raise_do_not_grow_resident_memory
    skip_under_gc_stress
    pack = spinning_pack(timeout_ms: 150)
    input = "x" * LEAK_INPUT_BYTES
    interrupted_calls(pack, input, 3)
    growths = []
    BATCHES.times do
      GC.start
      before = resident_bytes
      outcomes = interrupted_calls(pack, input, LEAK_CALLS)
      GC.start
      growths << resident_bytes - before
      assert_equal [Stop] * LEAK_CALLS, outcomes.map(&:class)
      break if growths.last < ALLOWED_GROWTH
    end
    assert_operator growths.last, :<, ALLOWED_GROWTH,
                    "resident memory grew in every batch of #{LEAK_CALLS} interrupted calls of " \
                    "#{LEAK_INPUT_BYTES / 1024} KiB input, by #{growths.map { |bytes| bytes / 1024 }.join(', ')} KiB"
  end

  # A call that lends host functions runs under Thread.handle_interrupt(Object => :never),
  # which flags a deferred exception again as it begins; Ruby then declines to release the
  # GVL for the call. The call must still run (holding the GVL), and the exception arrive
  # when the caller's own block ends.
  def test_a_call_made_while_an_interrupt_is_deferred_runs_and_the_interrupt_arrives_after
    expected = spinning_pack.call("busy", BUSY_INPUT).output
    pack = Packhost::Pack.load(sample_pack("hostile"), limits: {timeout_ms: SPIN_TIMEOUT_MS, fuel: nil},
                                                        functions: {"reverse" => ->(input) { input.reverse }})
    output = nil
    error = assert_raises(Stop) do
      Thread.handle_interrupt(Object => :never) do
        Thread.current.raise(Stop, "deferred")
        output = pack.call("busy", BUSY_INPUT).output
      end
    end
    assert_equal "deferred", error.message
    assert_equal expected, output, "the call ran, and to its end"
    assert_pack_still_works(pack, expected)
  end

  private

  def spinning_pack(timeout_ms: SPIN_TIMEOUT_MS)
    Packhost::Pack.load(sample_pack("hostile"), limits: {timeout_ms: timeout_ms, fuel: nil})
  end

  def now
    Process.clock_gettime(Process::CLOCK_MONOTONIC)
  end

  # A thread calling `spin` on `pack`, once it is inside the call.
  def spinning_worker(pack)
    worker = Thread.new { pack.call("spin") }
    worker.report_on_exception = false
    wait_until_inside_a_call(worker)
    worker
  end

  # Waits until `worker` is inside a pack call, which runs with the GVL released
  # (Thread#status then reads "sleep"), or has ended, for WAIT_SECONDS at most. With `ready`,
  # a Queue the worker pushes to before each call, waits for the next such signal too, and
  # takes it.
  def wait_until_inside_a_call(worker, ready = nil)
    deadline = now + WAIT_SECONDS
    while worker.alive? && now < deadline
      break if (ready.nil? || !ready.empty?) && worker.status == "sleep"

      sleep 0.002
    end
    ready.pop if ready && !ready.empty?
  end

  # Makes `count` calls of `spin` one after the other on one worker thread, sending Stop into
  # each while it runs, and returns what ended each call.
  def interrupted_calls(pack, input, count)
    ready = Queue.new
    worker = Thread.new do
      Array.new(count) do
        ready << true
        pack.call("spin", input)
      rescue Stop, Packhost::Error => e
        e
      end
    end
    worker.report_on_exception = false
    count.times do
      # The worker signals each call before making it: the "sleep" seen after a signal is
      # that call's, never the one already sent its Stop.
      wait_until_inside_a_call(worker, ready)
      worker.raise(Stop, "stopped mid-call") if worker.alive?
    end
    assert worker.join(WAIT_SECONDS), "the worker did not end within #{WAIT_SECONDS} s"
    worker.value
  end

  # The pack answers normal calls correctly, many times, and its timeout still holds.
  def assert_pack_still_works(pack, expected)
    calls = PackhostTestSupport::GC_STRESS ? 5 : 50
    calls.times { assert_equal expected, pack.call("busy", BUSY_INPUT).output }
    assert_raises(Packhost::TimeoutError) { pack.call("spin") }
  end
end
