# frozen_string_literal: true

# Flows from Ruby: Packhost::Flow made from a Hash or JSON text over loaded packs, a step
# reading the step before, other threads running while a flow runs (the GVL is released), a
# step's timeout_ms and a CancelToken ending a run, host functions of several packs each
# reaching its own handlers, and the types Flow.new refuses.

require_relative "test_helper"

class FlowTest < Minitest::Test
  SHOUT_THEN_COUNT = {
    "name" => "shout_then_count",
    "description" => "uppercase, then count the vowels",
    "steps" => [
      {"id" => "shout", "pack" => "text", "action" => "uppercase", "input" => {"$from" => "/input/text"}},
      {"id" => "count", "pack" => "text", "action" => "count_vowels",
       "input" => {"text" => {"$from" => "/steps/shout/output"}}}
    ]
  }.freeze

  # Bound on every wait here, under the spinning pack's own 30 s timeout, so a cancel that
  # never lands fails the test instead of passing late as a timeout.
  WAIT_SECONDS = 20

  def test_a_step_reads_the_output_of_the_step_before
    text = Packhost::Pack.load(sample_pack("text_tools"))
    [SHOUT_THEN_COUNT, JSON.generate(SHOUT_THEN_COUNT)].each do |definition|
      flow = Packhost::Flow.new(definition, {text: text})
      assert_equal "shout_then_count", flow.name
      assert_equal "uppercase, then count the vowels", flow.description
      assert_equal ["text"], flow.pack_names
      result = flow.run({"text" => "hello world"})
      assert_equal({"count" => 3, "vowels" => "EOO"}, result["output"])
      assert_equal [%w[shout ok], %w[count ok]], result["steps"].map { |step| step.values_at("id", "status") }
      assert_equal %w[uppercase count_vowels], result["steps"].map { |step| step["usage"]["action"] }
      usage = result["usage"]
      assert_equal [2, 0], usage.values_at("steps_run", "steps_skipped")
      assert_equal result["steps"].sum { |step| step["usage"]["fuel_consumed"] }, usage["fuel_consumed"]
      assert_nil usage["context"]
      assert_equal({"tenant" => "acme"}, flow.run({"text" => "hi"}, context: {tenant: "acme"})["usage"]["context"])
    end
  end

  def test_a_flow_runs_a_reloaded_pack_at_its_new_version
    text = Packhost::Pack.load(sample_pack("text_tools"))
    flow = Packhost::Flow.new({"name" => "greeter", "steps" => [{"id" => "hi", "pack" => "text", "action" => "greet", "input" => "x"}]},
                              {"text" => text})
    assert_equal "0.1.0", flow.run["steps"][0]["usage"]["pack_version"]
    text.reload(sample_pack("text_tools_next"))
    assert_equal "9.0.0", flow.run["steps"][0]["usage"]["pack_version"]
  end

  def test_other_threads_run_while_a_step_spins_until_its_timeout
    hostile = Packhost::Pack.load(sample_pack("hostile"), limits: {timeout_ms: 5000, fuel: nil})
    flow = Packhost::Flow.new(spin_flow("timeout_ms" => 200), {"hostile" => hostile})
    ticks = 0
    ticker = Thread.new { loop { ticks += 1; sleep 0.005 } }
    error = assert_raises(Packhost::TimeoutError) { flow.run }
    ticker.kill.join
    assert_operator ticks, :>=, 10, "the ticker thread was starved while the flow ran"
    assert_equal "timeout", error.code
    assert_includes error.message, 'step "spin"'
    assert_includes error.message, "timeout_ms 200"
  end

  def test_a_cancel_token_cancelled_from_another_thread_stops_the_run
    hostile = Packhost::Pack.load(sample_pack("hostile"), limits: {timeout_ms: 30_000, fuel: nil})
    flow = Packhost::Flow.new(spin_flow, {"hostile" => hostile})
    token = Packhost::CancelToken.new
    canceller = Thread.new do
      sleep 0.1
      token.cancel
    end
    started = now
    error = assert_raises(Packhost::CancelledError) { flow.run(nil, cancel: token) }
    canceller.join
    assert_operator now - started, :<, WAIT_SECONDS, "the spin ran on after the cancel"
    assert_equal "cancelled", error.code
    assert_raises(TypeError) { flow.run(nil, cancel: "soon") }
  end

  def test_each_pack_in_a_flow_reaches_its_own_host_functions
    reversing = Packhost::Pack.load(sample_pack("host_calls"), functions: suite_functions)
    shouting = Packhost::Pack.load(sample_pack("host_calls"),
                                   functions: suite_functions.merge("reverse" => ->(input) { input.upcase }))
    flow = Packhost::Flow.new({
      "name" => "reverse_then_shout",
      "steps" => [
        {"id" => "reverse", "pack" => "reversing", "action" => "reverse_via_host", "input" => {"$from" => "/input"}},
        {"id" => "shout", "pack" => "shouting", "action" => "reverse_via_host",
         "input" => {"$from" => "/steps/reverse/output"}}
      ]
    }, {"reversing" => reversing, "shouting" => shouting})
    assert_equal "CBA", flow.run("abc")["output"]

    failing = Packhost::Flow.new({
      "name" => "doomed",
      "steps" => [{"id" => "ask", "pack" => "calls", "action" => "fail_via_host", "input" => "no such customer"}]
    }, {"calls" => reversing})
    error = assert_raises(Packhost::HostFunctionError) { failing.run }
    assert_includes error.message, 'step "ask"'
    assert_instance_of LookupError, error.cause, "the handler's own exception is the cause"
    assert_equal "no such customer", error.cause.message
  end

  def test_packs_must_be_a_hash_of_packhost_packs
    text = Packhost::Pack.load(sample_pack("text_tools"))
    error = assert_raises(Packhost::InvalidOptionsError) do
      Packhost::Flow.new(SHOUT_THEN_COUNT, {"text" => sample_pack("text_tools")})
    end
    assert_equal "invalid_options", error.code
    assert_includes error.message, '"text"'
    assert_raises(Packhost::InvalidOptionsError) { Packhost::Flow.new(SHOUT_THEN_COUNT, [["text", text]]) }
    assert_raises(Packhost::InvalidOptionsError) { Packhost::Flow.new(42, {"text" => text}) }
    missing = assert_raises(Packhost::InvalidOptionsError) { Packhost::Flow.new(SHOUT_THEN_COUNT, {}) }
    assert_includes missing.message, 'no pack named "text"'
    assert_raises(Packhost::InvalidOptionsError) { Packhost::Flow.new("not json", {"text" => text}) }
    assert_raises(TypeError) { Packhost::Flow.allocate }
  end

  private

  # A flow of one step spinning on the hostile pack, with `step` merged into the step.
  def spin_flow(step = {})
    {"name" => "spinning", "steps" => [{"id" => "spin", "pack" => "hostile", "action" => "spin"}.merge(step)]}
  end

  def now
    Process.clock_gettime(Process::CLOCK_MONOTONIC)
  end
end
