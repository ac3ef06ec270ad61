# frozen_string_literal: true

# Runs the shared conformance suite (tests/conformance/cases/*.json) through the Ruby
# binding: one test per case and engine, named after both, with the same expectations as the
# Rust runner (outputs, error codes, return codes, messages, logs, actions, host calls), and
# every successful call burning exactly the fuel tests/conformance/fuel.json records for its
# engine. Cases with `host_functions` lend the suite's functions (test_helper.rb), and a
# call's `context` goes through the `context:` keyword.

require_relative "test_helper"

class ConformanceTest < Minitest::Test
  CASE_FILES = Dir.glob(File.join(PackhostTestSupport::CONFORMANCE_DIR, "cases", "*.json")).sort
  FUEL_FILE = File.join(PackhostTestSupport::CONFORMANCE_DIR, "fuel.json")
  # Expected fuel of each successful call, by engine, then by case name for the first call
  # and "NAME/then/I" for the I-th follow-up call.
  EXPECTED_FUEL = File.file?(FUEL_FILE) ? JSON.parse(File.read(FUEL_FILE)).freeze : {}.freeze

  def test_the_suite_has_cases_and_fuel_counts
    refute_empty CASE_FILES, "no case files in #{PackhostTestSupport::CONFORMANCE_DIR}/cases"
    assert File.file?(FUEL_FILE), "#{FUEL_FILE} is missing"
  end

  # Every case runs on each engine.
  ENGINES = %w[native extism].freeze

  CASE_FILES.each do |file|
    JSON.parse(File.read(file)).fetch("cases").each do |kase|
      ENGINES.each do |engine|
        define_method("test_#{kase.fetch('name')} [#{engine}]") { run_case(kase, engine) }
      end
    end
  end

  private

  def run_case(kase, engine)
    @engine = engine
    pack = load_pack(kase)
    return if pack.nil? # The expected load error happened and was checked.

    assert_equal kase["actions"], pack.actions, "actions" if kase.key?("actions")
    if kase.key?("export")
      check_call(pack, kase, kase["name"])
    else
      assert_expectation_met_without_call(kase)
    end
    kase.fetch("then", []).each_with_index do |step, index|
      check_call(pack, step, "#{kase['name']}/then/#{index}")
    end
  end

  # Loads the case's pack; returns nil when loading failed as the case expects.
  def load_pack(kase)
    path = if kase.key?("pack_file")
             File.join(PackhostTestSupport::CONFORMANCE_DIR, kase["pack_file"])
           else
             sample_pack(kase.fetch("pack"))
           end
    # A null "options" means defaults, as an absent one does in the Rust runner; the engine
    # is added unless the case chose one itself.
    options = kase["options"] || {}
    options = { "engine" => @engine }.merge(options) if options.is_a?(Hash)
    Packhost::Pack.load(path, options, functions: kase["host_functions"] ? suite_functions : nil)
  rescue Packhost::Error => e
    raise Minitest::Assertion, "load failed unexpectedly: #{e.code}: #{e.message}" unless kase["error"]

    assert_error_matches(kase, e, "#{kase['name']} (load)")
    nil
  end

  def assert_expectation_met_without_call(kase)
    return unless kase.key?("error")

    flunk "expected a load error #{kase['error']}, but the pack loaded"
  end

  # Runs one call and checks it; `key` names the call in fuel.json and in messages.
  def check_call(pack, step, key)
    label = "#{key} [#{@engine}]"
    expected_fuel = EXPECTED_FUEL.fetch(@engine, {})
    input = step.fetch("input", "") * step.fetch("input_repeat", 1)
    begin
      result = invoke(pack, step.fetch("export"), input, step["context"])
    rescue Packhost::Error => e
      flunk "#{label}: call failed unexpectedly: #{e.code}: #{e.message}" unless step.key?("error")
      assert_error_matches(step, e, label)
      assert_logs(step, e.logs, label)
      assert_usage(step, e.usage, label)
      return
    end
    flunk "#{label}: expected error #{step['error']}, got output #{result.bytes.inspect[0, 200]}" if step.key?("error")
    assert_equal step["output"].b, result.bytes, "#{label}: output" if step.key?("output")
    assert_equal step["output_json"], JSON.parse(result.bytes), "#{label}: output_json" if step.key?("output_json")
    assert_logs(step, result.logs, label)
    assert_usage(step, result.usage, label)
    assert expected_fuel.key?(key), "#{label}: no fuel.json entry (the Rust runner writes them)"
    assert_equal expected_fuel[key], result.usage.fuel_consumed, "#{label}: fuel (fuel.json)"
  end

  # A null or absent `context` is the same call: no context.
  def invoke(pack, export, input, context)
    case export
    when "pre" then pack.pre(input, context: context)
    when "post" then pack.post(input, context: context)
    else pack.call(export, input, context: context)
    end
  end

  def assert_error_matches(step, error, label)
    assert_equal step["error"], error.code, "#{label}: error code (message: #{error.message})"
    assert_kind_of Packhost::Error.for_code(step["error"]), error, "#{label}: exception class"
    if step.key?("message_contains")
      assert_includes error.message, step["message_contains"], "#{label}: message"
    end
    assert_equal step["return_code"], error.return_code, "#{label}: return_code" if step.key?("return_code")
  end

  # `host_calls` when the case gives it; and every usage records the call's context.
  def assert_usage(step, usage, label)
    if step.key?("host_calls")
      refute_nil usage, "#{label}: no usage to count host calls in"
      assert_equal step["host_calls"], usage.host_calls, "#{label}: host_calls"
    end
    return if usage.nil?

    if step["context"].nil?
      assert_nil usage.context, "#{label}: usage context"
    else
      assert_equal step["context"], usage.context, "#{label}: usage context"
    end
  end

  def assert_logs(step, logs, label)
    return unless step.key?("logs")

    actual = logs.map { |line| {"level" => line.level.to_s, "message" => line.message} }
    assert_equal step["logs"], actual, "#{label}: logs"
  end
end
