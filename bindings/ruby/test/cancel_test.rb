# frozen_string_literal: true

# Cancelling calls with a Packhost::CancelToken: a call running without the GVL ends with
# Packhost::CancelledError within milliseconds of another thread cancelling its token, a call on
# the same pack in a third thread runs on untouched, and a call made with a token already
# cancelled never runs.

require_relative "test_helper"

class CancelTest < Minitest::Test
  TRIALS = 5

  # The native engine looks at the token on every 1 ms epoch tick; the rest is the wasm
  # stack unwinding, the error's report and the calling thread taking the GVL back.
  MEDIAN_LATENCY = 0.010
  WORST_LATENCY = 1.0

  # Bound on every wait here: under the spin's 30 s timeout, so a cancel that never lands
  # fails the test instead of passing late as a timeout. Under GC.stress every allocation
  # is a full collection, and a cancelled call building its error while another thread
  # keeps calling has taken over 5 s (CI): that pass waits longer, still under 30 s.
  WAIT_SECONDS = PackhostTestSupport::GC_STRESS ? 25 : 5

  # How long a trial lets the spin run before cancelling it, so the cancel meets a call
  # that is running wasm, not one still being set up.
  SPIN_BEFORE_CANCEL = 0.02

  BUSY_INPUT = '{"rounds":10}'
  BUSY_OUTPUT = 1_845_767_244_449_711

  # A cap on the busy calls made while a spin is being cancelled, so a cancel that never
  # lands cannot keep that thread going for the spin's whole timeout.
  MAX_BUSY_CALLS = 10_000

  def test_a_running_call_ends_with_cancelled_within_milliseconds_of_the_cancel
    skip_under_gc_stress
    pack = spinning_pack
    # The first cancelled call of a process calibrates the fuel it bills (a one-off
    # measurement of tens of ms): done here, unmeasured, so the trials time cancelling only.
    cancel_a_spin(pack)
    latencies = Array.new(TRIALS) do
      error, latency = cancel_a_spin(pack)
      assert_instance_of Packhost::CancelledError, error
      assert_equal "cancelled", error.code
      assert_includes error.message, "cancelled"
      refute_nil error.usage, "a call cancelled while running carries its usage, as a timeout does"
      assert_equal "spin", error.usage.action
      latency
    end
    report = "ms from cancel to the call returning: #{latencies.map { |s| (s * 1000).round(2) }}"
    assert_operator latencies.max, :<, WORST_LATENCY, report
    assert_operator latencies.sort[TRIALS / 2], :<=, MEDIAN_LATENCY, "median over 10 ms; #{report}"
    assert_equal BUSY_OUTPUT, pack.call("busy", BUSY_INPUT, json: true).output, "the pack still works"
    assert_equal TRIALS + 1, pack.stats.fetch("errors")["cancelled"]
  end

  def test_cancelling_a_call_leaves_a_concurrent_call_on_the_same_pack_untouched
    pack = spinning_pack
    token = Packhost::CancelToken.new
    spinner = spinning_worker(pack, token)
    outputs = Queue.new
    busy = Thread.new do
      # Until the spin has ended, so these calls run while it is being cancelled.
      MAX_BUSY_CALLS.times do
        outputs << pack.call("busy", BUSY_INPUT, json: true).output
        break unless spinner.alive?
      end
    end
    busy.report_on_exception = false
    # Cancelled once the busy calls have begun, so that they overlap the cancellation.
    sleep 0.001 while outputs.empty? && busy.alive?
    token.cancel
    assert spinner.join(WAIT_SECONDS), "the cancelled call did not end within #{WAIT_SECONDS} s"
    assert busy.join(WAIT_SECONDS), "the busy calls did not end within #{WAIT_SECONDS} s"
    error, = spinner.value
    assert_instance_of Packhost::CancelledError, error
    busy_outputs = Array.new(outputs.size) { outputs.pop }
    refute_empty busy_outputs
    assert_equal [BUSY_OUTPUT], busy_outputs.uniq, "every concurrent busy call returned its own output"
    assert_equal BUSY_OUTPUT, pack.call("busy", BUSY_INPUT, json: true).output
  end

  def test_a_token_cancelled_before_the_call_fails_it_at_once_and_for_good
    pack = spinning_pack
    token = Packhost::CancelToken.new
    refute token.cancelled?
    token.cancel
    token.cancel
    assert token.cancelled?
    started = now
    error = assert_raises(Packhost::CancelledError) { pack.call("spin", cancel: token) }
    assert_operator now - started, :<, WAIT_SECONDS, "the spin never ran to its timeout"
    assert_equal "cancelled", error.code
    assert_nil error.usage, "the pack never ran, so there is no usage"
    # Sticky: the token fails every later call, pre and post included; calls without it run.
    assert_raises(Packhost::CancelledError) { pack.call("busy", BUSY_INPUT, cancel: token) }
    hooks = Packhost::Pack.load(sample_pack("api_errors"))
    assert_raises(Packhost::CancelledError) { hooks.pre("{}", cancel: token) }
    assert_raises(Packhost::CancelledError) { hooks.post("{}", cancel: token) }
    assert_equal BUSY_OUTPUT, pack.call("busy", BUSY_INPUT, json: true, cancel: Packhost::CancelToken.new).output
    assert_equal 1, pack.stats["calls"], "calls refused before they ran are not counted"
  end

  def test_cancel_takes_only_a_cancel_token
    pack = spinning_pack
    assert_raises(TypeError) { pack.call("busy", BUSY_INPUT, cancel: "soon") }
    assert_raises(TypeError) { pack.call("busy", BUSY_INPUT, cancel: pack) }
    assert_raises(NoMethodError, TypeError) { Packhost::CancelToken.allocate.cancel }
  end

  private

  def spinning_pack
    Packhost::Pack.load(sample_pack("hostile"), limits: {timeout_ms: 30_000, fuel: nil})
  end

  def now
    Process.clock_gettime(Process::CLOCK_MONOTONIC)
  end

  # Starts a spin with a fresh token, cancels it once it runs, and returns what the call
  # raised and the seconds from the cancel to the call returning.
  def cancel_a_spin(pack)
    token = Packhost::CancelToken.new
    worker = spinning_worker(pack, token)
    sleep SPIN_BEFORE_CANCEL
    cancelled_at = now
    token.cancel
    # Joining releases the GVL at once, so the worker takes it back as soon as its call ends.
    assert worker.join(WAIT_SECONDS), "the cancelled call did not end within #{WAIT_SECONDS} s"
    error, returned_at = worker.value
    [error, returned_at - cancelled_at]
  end

  # A thread calling `spin` on `pack` with `token`, once it is inside the call. Its value is
  # what the call returned or raised, and when it did.
  def spinning_worker(pack, token)
    worker = Thread.new do
      outcome = begin
        pack.call("spin", cancel: token)
      rescue Packhost::Error => e
        e
      end
      [outcome, now]
    end
    worker.report_on_exception = false
    wait_until_inside_a_call(worker)
    worker
  end

  # Waits until `worker` is inside its pack call, which runs with the GVL released
  # (Thread#status then reads "sleep"), or has ended, for WAIT_SECONDS at most.
  def wait_until_inside_a_call(worker)
    deadline = now + WAIT_SECONDS
    sleep 0.002 while worker.alive? && worker.status != "sleep" && now < deadline
  end
end
