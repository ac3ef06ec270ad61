# frozen_string_literal: true

# Host functions from Ruby, on both engines: lambdas, blocks and methods as handlers, inputs
# and outputs as bytes, text or JSON, the call's context, failures that end the call with
# Packhost::HostFunctionError (the handler's exception as its cause), jumps that go on after
# the call, usage, load-time checks of what a pack imports, re-entrant calls under a
# watchdog, handlers of calls that keep the GVL, and GC (stress and compaction) while
# handlers run.

require_relative "test_helper"

class HostFunctionsTest < Minitest::Test
  ENGINES = %w[native extism].freeze

  # Raised by a handler to show an exception outside StandardError passes through as is.
  class Halt < Exception
  end

  def test_a_lambda_gets_the_input_as_binary_bytes_and_its_string_goes_back
    seen = []
    reverse = lambda do |input|
      seen << input.encoding
      input.reverse
    end
    each_engine(functions: suite_functions.merge("reverse" => reverse)) do |pack, engine|
      result = pack.call("reverse_via_host", "hello")
      assert_equal "olleh", result.output, engine
      assert_equal 1, result.usage.host_calls, engine
      assert_equal [{"capability" => "host_function", "operation" => "call", "target" => "reverse", "outcome" => "ok"}],
                   result.audit.map { |entry| entry.slice("capability", "operation", "target", "outcome") }, engine
      assert_equal "", pack.call("reverse_via_host", "").output, "#{engine}: the empty block both ways"
    end
    assert_equal [Encoding::BINARY], seen.uniq
  end

  def test_blocks_and_methods_are_handlers_too
    ENGINES.each do |engine|
      lent = suite_functions.slice("fail", "context_echo")
      pack = Packhost::Pack.load(sample_pack("host_calls"), engine: engine, functions: lent) do |host|
        host.function("reverse") { |input| input.reverse }
        host.function(:add, method(:add), input: :json, output: :json)
      end
      assert_equal "cba", pack.call("reverse_via_host", "abc").output, engine
      assert_equal({"sum" => 42}, pack.call("add_via_host", {a: 2, b: 40}, json: true).output, engine)
    end
  end

  def test_a_raising_handler_ends_the_call_with_host_function_error
    each_engine do |pack, engine|
      error = assert_raises(Packhost::HostFunctionError, engine) { pack.call("fail_via_host", "no such customer") }
      assert_equal "host_function_error", error.code
      assert_equal "fail", error.function
      assert_equal "LookupError", error.error_class
      assert_includes error.message, "no such customer"
      assert_instance_of LookupError, error.cause, "#{engine}: the handler's own exception is the cause"
      assert_equal "no such customer", error.cause.message
      assert_equal 1, error.usage.host_calls
      assert_equal [%w[fail failed]], error.audit.map { |entry| entry.values_at("target", "outcome") }, engine
      assert_equal "ko", pack.call("reverse_via_host", "ok").output, "#{engine}: the pack works after the failure"
    end
  end

  def test_a_handler_that_returns_no_string_fails_with_type_error
    each_engine(functions: suite_functions.merge("reverse" => ->(input) { input.size })) do |pack, engine|
      error = assert_raises(Packhost::HostFunctionError, engine) { pack.call("reverse_via_host", "abc") }
      assert_equal ["reverse", "TypeError"], [error.function, error.error_class]
      assert_instance_of TypeError, error.cause
      assert_includes error.message, "output: :json"
    end
  end

  def test_json_output_takes_any_json_value
    add = Packhost::HostFunction.new(input: :json, output: :json) { |args| {sum: args["a"] + args["b"]} }
    each_engine(functions: suite_functions.merge("add" => add)) do |pack, engine|
      result = pack.call("add_via_host", '{"a": 2, "b": 40}', json: true)
      assert_equal({"sum" => 42}, result.output, engine)
      assert_equal [:info], result.logs.map(&:level), "#{engine}: the pack keeps logging"
    end
  end

  def test_the_context_reaches_the_handler_with_the_calling_pack_and_the_usage_record
    calls = []
    echo = Packhost::HostFunction.new(output: :json) do |_input, call|
      calls << call
      {"context" => call.context, "pack" => call.pack_name}
    end
    each_engine(functions: suite_functions.merge("context_echo" => echo)) do |pack, engine|
      called = pack.call("context_via_host", context: {tenant: "acme", request: 7}, json: true)
      result = called.output
      assert_equal({"context" => {"tenant" => "acme", "request" => 7}, "pack" => "host_calls"}, result, engine)
      # The usage record names whom each call was for, a failed call's too.
      assert_equal({"tenant" => "acme", "request" => 7}, called.usage.context, engine)
      error = assert_raises(Packhost::HostFunctionError) { pack.call("fail_via_host", "x", context: ["req", 7]) }
      assert_equal ["req", 7], error.usage.context, engine
      assert_equal [pack.id, "context_echo"], [calls.last.pack_id, calls.last.function]
      plain = pack.call("context_via_host")
      assert_nil plain.json["context"], "#{engine}: the next call does not inherit it"
      assert_nil plain.usage.context, engine
    end
  end

  def test_an_import_that_is_not_lent_fails_at_load_naming_it
    ENGINES.each do |engine|
      error = assert_raises(Packhost::InvalidPackError) { Packhost::Pack.load(sample_pack("host_calls"), engine: engine) }
      assert_includes error.message, '"reverse"'
      assert_includes error.message, "did not register"
    end
    error = assert_raises(Packhost::InvalidOptionsError) do
      Packhost::Pack.load(sample_pack("host_calls"), functions: suite_functions) do |host|
        host.function("reverse") { |input| input }
      end
    end
    assert_includes error.message, "twice"
    assert_raises(ArgumentError) { Packhost::Pack.load(sample_pack("host_calls"), functions: {"reverse" => 42}) }
  end

  def test_usage_counts_host_calls_and_their_time
    each_engine do |pack, engine|
      usage = pack.call("reverse_repeatedly", "abcde").usage
      assert_equal 5, usage.host_calls, "#{engine}: counted per call, not per instance"
      assert_operator usage.host_time_us, :<=, usage.wall_time_us
    end
    usage = Packhost::Pack.load(sample_pack("text_tools")).call("echo", "x").usage
    assert_equal [0, 0], [usage.host_calls, usage.host_time_us]
  end

  def test_a_handler_may_call_the_same_pack_again_without_deadlock
    ENGINES.each do |engine|
      pack = nil
      # Answers `add` by asking the same pack to reverse the input through the host.
      add = Packhost::HostFunction.new(output: :json) { |input| {"sum" => pack.call("reverse_via_host", input).text} }
      pack = Packhost::Pack.load(sample_pack("host_calls"), engine: engine, functions: suite_functions.merge("add" => add))
      assert_equal({"sum" => '}1:"a"{'}, within_seconds(10) { pack.call("add_via_host", '{"a":1}').json }, engine)
    end
  end

  def test_an_exception_outside_standard_error_and_a_throw_go_on_after_the_call
    each_engine(functions: suite_functions.merge("reverse" => ->(_input) { raise Halt, "stop" })) do |pack, engine|
      assert_raises(Halt, engine) { pack.call("reverse_via_host", "x") }
      assert_equal({"sum" => 2}, pack.call("add_via_host", {a: 1, b: 1}, json: true).output, engine)
    end
    each_engine(functions: suite_functions.merge("reverse" => ->(_input) { throw :found, "thrown" })) do |pack, engine|
      caught = within_seconds(10) { catch(:found) { pack.call("reverse_via_host", "x") && :not_thrown } }
      assert_equal "thrown", caught, engine
      assert_equal({"sum" => 2}, pack.call("add_via_host", {a: 1, b: 1}, json: true).output, engine)
    end
  end

  # After a short call the core keeps the GVL through the next calls of the action, so their
  # handlers run without taking it back: results, failures, jumps and re-entry stay the same.
  def test_handlers_behave_the_same_in_calls_that_keep_the_gvl
    pack = nil
    add = Packhost::HostFunction.new(output: :json) { |input| {"sum" => pack.call("reverse_via_host", input).text} }
    escaping = lambda do |input|
      throw :found, "thrown" if input == "throw"
      input.reverse
    end
    functions = suite_functions.merge("add" => add, "reverse" => escaping)
    pack = Packhost::Pack.load(sample_pack("host_calls"), functions: functions)
    5.times do
      assert_equal "cba", pack.call("reverse_via_host", "abc").output
      error = assert_raises(Packhost::HostFunctionError) { pack.call("fail_via_host", "no such customer") }
      assert_instance_of LookupError, error.cause
      assert_equal "thrown", within_seconds(10) { catch(:found) { pack.call("reverse_via_host", "throw") && :not_thrown } }
      assert_equal({"sum" => '}1:"a"{'}, within_seconds(10) { pack.call("add_via_host", '{"a":1}').json })
    end
  end

  # Every test runs under GC.stress in ci.sh's second pass; this one also does in the first,
  # and moves objects (GC.compact) while a call's handlers are running.
  def test_handlers_survive_gc_stress_and_compaction
    compact = GC.respond_to?(:compact)
    reverse = lambda do |input|
      GC.compact if compact
      Array.new(10) { |i| "garbage #{i}" }
      input.reverse
    end
    failing = lambda do |message|
      GC.compact if compact
      raise LookupError, message
    end
    functions = suite_functions.merge("reverse" => reverse, "fail" => failing)
    ENGINES.each do |engine|
      # A handler's time counts against the call's limit, and every allocation under
      # GC.stress is a full collection.
      options = {engine: engine, limits: {timeout_ms: 60_000}}
      pack = Packhost::Pack.load(sample_pack("host_calls"), options, functions: functions)
      stress, GC.stress = GC.stress, true
      begin
        assert_equal "edcba", pack.call("reverse_repeatedly", "abcde").output, engine
        error = assert_raises(Packhost::HostFunctionError) { pack.call("fail_via_host", "gone") }
      ensure
        GC.stress = stress
      end
      GC.compact if compact
      assert_equal "gone", error.cause.message, "#{engine}: the kept exception outlived the collections"
    end
  end

  private

  # Yields the host_calls pack loaded on each engine, lent `functions` (the suite's by
  # default), with the engine's name.
  def each_engine(functions: suite_functions)
    ENGINES.each do |engine|
      yield Packhost::Pack.load(sample_pack("host_calls"), engine: engine, functions: functions), engine
    end
  end

  def add(args)
    {"sum" => args["a"] + args["b"]}
  end

  # Runs the block on a thread and fails the test if it has not finished in `seconds`: a
  # deadlock fails instead of hanging the suite.
  def within_seconds(seconds, &work)
    worker = Thread.new(&work)
    worker.report_on_exception = false
    flunk "no result within #{seconds} s: the call deadlocked" unless worker.join(seconds)
    worker.value
  end
end
