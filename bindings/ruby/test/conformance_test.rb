# frozen_string_literal: true

# Runs the shared conformance suite (tests/conformance/cases/*.json) through the Ruby
# binding: one test per case and engine, named after both, with the same expectations as the
# Rust runner (outputs, error codes, return codes, messages, logs, actions, host calls,
# key-value operations, audit trails), and every successful call burning exactly the fuel
# tests/conformance/fuel.json records for its engine. Cases with `host_functions` lend the
# suite's functions (test_helper.rb), and a call's `context` goes through the `context:`
# keyword. A case with a `kv` option runs once per KV backend on each engine, each run on a
# fresh store; a `then` step with a `pack` calls that sample pack, loaded with the run's
# options, instead of the case's. A case's `cancel_after_ms` makes its first call with a
# Packhost::CancelToken, cancelled before the call (0) or from another thread that many
# milliseconds after it starts. A case with a `flow` makes a Packhost::Flow over its
# `flow_packs` (each sample pack loaded with the run's options) and runs it once on
# `flow_input` with the case's context, checking the output, the steps' statuses, the
# context every usage records and the run's total fuel.

require "fileutils"
require "tmpdir"
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

  # Every case runs on each engine. The GC.stress pass, which checks that the extension keeps
  # alive every Ruby object it holds, runs each case once (native engine, memory store): the
  # binding's code is the same for every engine and backend, and the full matrix under
  # stress took most of CI's time.
  ENGINES = (PackhostTestSupport::GC_STRESS ? %w[native] : %w[native extism]).freeze

  # The key-value backends a case with a `kv` option runs on, in order.
  KV_BACKENDS = (PackhostTestSupport::GC_STRESS ? %w[memory] : %w[memory sqlite]).freeze

  # This process's sqlite stores, one file per run; removed once the tests have run.
  KV_FOLDER = Dir.mktmpdir("packhost-conformance-kv")
  Minitest.after_run { FileUtils.rm_rf(KV_FOLDER) }

  # Runs on a KV backend so far, numbering each run's fresh store.
  @kv_stores = 0

  class << self
    # The KV backends `kase` runs on: each of KV_BACKENDS for a case whose options have a
    # `kv` object, else one run without (nil).
    def kv_backends(kase)
      options = kase["options"]
      options.is_a?(Hash) && options["kv"].is_a?(Hash) ? KV_BACKENDS : [nil]
    end

    # `kase`, or for a case with `packs`, one case per pack, named `NAME/PACK`.
    def one_per_pack(kase)
      return [kase] unless kase.key?("packs")

      rest = kase.reject { |key, _| key == "packs" }
      kase["packs"].map { |pack| Marshal.load(Marshal.dump(rest)).merge("name" => "#{kase['name']}/#{pack}", "pack" => pack) }
    end

    # How messages and test names name a run: its engine, and its KV backend if any.
    def run_label(engine, backend)
      backend ? "#{engine}, kv #{backend}" : engine
    end

    # The number of a new KV store of this process.
    def next_kv_store
      @kv_stores += 1
    end
  end

  CASE_FILES.each do |file|
    JSON.parse(File.read(file)).fetch("cases").flat_map { |kase| one_per_pack(kase) }.each do |kase|
      ENGINES.each do |engine|
        kv_backends(kase).each do |backend|
          define_method("test_#{kase.fetch('name')} [#{run_label(engine, backend)}]") do
            run_case(kase, engine, backend)
          end
        end
      end
    end
  end

  private

  def run_case(kase, engine, backend)
    @engine = engine
    @label = self.class.run_label(engine, backend)
    options = options_for(kase, backend)
    return check_flow(kase, options) if kase.key?("flow")

    pack = load_pack(kase, options)
    return if pack.nil? # The expected load error happened and was checked.

    assert_equal kase["actions"], pack.actions, "actions" if kase.key?("actions")
    if kase.key?("export")
      check_call(pack, kase, kase["name"], cancel_after_ms: kase["cancel_after_ms"],
                                           fuel_pinned: kase.fetch("fuel_pinned", true))
    else
      assert_expectation_met_without_call(kase)
    end
    kase.fetch("then", []).each_with_index do |step, index|
      key = "#{kase['name']}/then/#{index}"
      target = step["pack"] ? load_step_pack(step, options, key) : pack
      check_call(target, step, key, fuel_pinned: kase.fetch("fuel_pinned", true))
    end
  end

  # The options the case's pack loads with. A null "options" means defaults, as an absent
  # one does in the Rust runner; the engine is added unless the case chose one itself, and
  # on a KV backend, `kv.backend` and a fresh `kv.path` (a new store name for memory, a new
  # file for sqlite) unless the case chose them. The case's own data is never changed.
  def options_for(kase, backend)
    options = kase["options"] || {}
    return options unless options.is_a?(Hash)

    options = { "engine" => @engine }.merge(Marshal.load(Marshal.dump(options)))
    absolute_mounts(options)
    if backend
      kv = options["kv"]
      store = self.class.next_kv_store
      kv["backend"] = backend unless kv.key?("backend")
      kv["path"] = fresh_kv_path(backend, store) unless kv.key?("path")
    end
    options
  end

  # Where a new store lives: a name no other store of this process has for memory, a new
  # file in KV_FOLDER for sqlite.
  def fresh_kv_path(backend, store)
    return File.join(KV_FOLDER, "#{store}.sqlite3") if backend == "sqlite"

    "conformance-#{Process.pid}-#{store}"
  end

  # Loads the case's pack; returns nil when loading failed as the case expects.
  def load_pack(kase, options)
    Packhost::Pack.load(pack_source(kase), options, functions: kase["host_functions"] ? suite_functions : nil)
  rescue Packhost::Error => e
    raise Minitest::Assertion, "load failed unexpectedly: #{e.code}: #{e.message}" unless kase["error"]

    assert_error_matches(kase, e, "#{kase['name']} (load) [#{@label}]")
    nil
  end

  # Makes each host path of holder["allowed_paths"] (after an optional "ro:") absolute,
  # reading it relative to the conformance folder.
  def absolute_mounts(holder)
    paths = holder["allowed_paths"]
    return unless paths.is_a?(Hash)

    holder["allowed_paths"] = paths.to_h do |source, guest|
      prefix = source.start_with?("ro:") ? "ro:" : ""
      [prefix + File.join(PackhostTestSupport::CONFORMANCE_DIR, source.delete_prefix(prefix)), guest]
    end
  end

  # The case's pack: a path, or its Extism manifest with each `wasm[].path` taken as a file in
  # plugins/dist/ and its allowed_paths made absolute.
  def pack_source(kase)
    given = %w[pack pack_file extism_manifest].select { |key| kase.key?(key) }
    flunk "#{kase['name']}: give exactly one of pack, pack_file and extism_manifest" unless given.size == 1
    return sample_pack(kase["pack"]) if kase.key?("pack")
    return File.join(PackhostTestSupport::CONFORMANCE_DIR, kase["pack_file"]) if kase.key?("pack_file")

    manifest = Marshal.load(Marshal.dump(kase["extism_manifest"]))
    absolute_mounts(manifest)
    manifest.fetch("wasm", []).each do |entry|
      entry["path"] = File.join(PackhostTestSupport::DIST_DIR, entry["path"]) if entry.key?("path")
    end
    manifest
  end

  # Loads the sample pack a `then` step names, with the run's options (its KV store
  # included) and no host functions.
  def load_step_pack(step, options, key)
    Packhost::Pack.load(sample_pack(step["pack"]), options)
  rescue Packhost::Error => e
    flunk "#{key} [#{@label}]: loading #{step['pack']} failed: #{e.code}: #{e.message}"
  end

  def assert_expectation_met_without_call(kase)
    return unless kase.key?("error")

    flunk "expected a load error #{kase['error']}, but the pack loaded"
  end

  # Runs one call and checks it; `key` names the call in fuel.json and in messages. With
  # `cancel_after_ms`, the call is made with a token cancelled that many ms in. A case with
  # `fuel_pinned: false` (a pack whose builds are not reproducible) has no fuel.json entry
  # and need only have burnt some fuel.
  def check_call(pack, step, key, cancel_after_ms: nil, fuel_pinned: true)
    label = "#{key} [#{@label}]"
    expected_fuel = EXPECTED_FUEL.fetch(@engine, {})
    input = step.fetch("input", "") * step.fetch("input_repeat", 1)
    begin
      result = with_cancel(cancel_after_ms) do |token|
        invoke(pack, step.fetch("export"), input, step["context"], token)
      end
    rescue Packhost::Error => e
      flunk "#{label}: call failed unexpectedly: #{e.code}: #{e.message}" unless step.key?("error")
      assert_error_matches(step, e, label)
      assert_logs(step, e.logs, label)
      assert_usage(step, e.usage, label)
      assert_audit(step, e.audit, label)
      return
    end
    flunk "#{label}: expected error #{step['error']}, got output #{result.bytes.inspect[0, 200]}" if step.key?("error")
    assert_equal step["output"].b, result.bytes, "#{label}: output" if step.key?("output")
    assert_equal step["output_json"], JSON.parse(result.bytes), "#{label}: output_json" if step.key?("output_json")
    assert_logs(step, result.logs, label)
    assert_usage(step, result.usage, label)
    assert_audit(step, result.audit, label)
    unless fuel_pinned
      assert_operator result.usage.fuel_consumed, :>, 0, "#{label}: fuel burnt"
      return
    end
    assert expected_fuel.key?(key), "#{label}: no fuel.json entry (the Rust runner writes them)"
    assert_equal expected_fuel[key], result.usage.fuel_consumed, "#{label}: fuel (fuel.json)"
  end

  # A flow case: the flow made over its packs (each loaded with the run's options, and the
  # suite's host functions when the case asks) and run once. Making or running it may fail
  # only as `error` says; a successful run has the case's output and steps, records the
  # case's context in its totals and in every step that ran, and burns the fuel fuel.json
  # gives the case in all.
  def check_flow(kase, options)
    label = "#{kase['name']} [#{@label}]"
    functions = kase["host_functions"] ? suite_functions : nil
    packs = kase.fetch("flow_packs").transform_values do |sample|
      Packhost::Pack.load(sample_pack(sample), options, functions: functions)
    rescue Packhost::Error => e
      flunk "#{label}: loading #{sample} failed: #{e.code}: #{e.message}"
    end
    begin
      result = Packhost::Flow.new(kase.fetch("flow"), packs).run(kase["flow_input"], context: kase["context"])
    rescue Packhost::Error => e
      flunk "#{label}: flow failed unexpectedly: #{e.code}: #{e.message}" unless kase.key?("error")
      assert_error_matches(kase, e, label)
      return
    end
    flunk "#{label}: expected error #{kase['error']}, got output #{result['output'].inspect[0, 200]}" if kase.key?("error")
    assert_equal kase["output_json"], result["output"], "#{label}: output_json" if kase.key?("output_json")
    if kase.key?("steps")
      assert_equal kase["steps"], result["steps"].map { |step| step.slice("id", "status") }, "#{label}: steps"
    end
    # The run's totals and each step's usage carry the context as a call's usage does.
    [result["usage"], *result["steps"].filter_map { |step| step["usage"] }].each do |usage|
      assert_usage(kase, Packhost::Usage.from_h(usage), label)
    end
    expected_fuel = EXPECTED_FUEL.fetch(@engine, {})
    return assert_operator(result["usage"]["fuel_consumed"], :>, 0, "#{label}: fuel burnt") if kase["fuel_pinned"] == false

    assert expected_fuel.key?(kase["name"]), "#{label}: no fuel.json entry (the Rust runner writes them)"
    assert_equal expected_fuel[kase["name"]], result["usage"]["fuel_consumed"], "#{label}: fuel (fuel.json)"
  end

  # A null or absent `context` is the same call: no context. `cancel` is the call's
  # CancelToken, nil for none.
  def invoke(pack, export, input, context, cancel)
    case export
    when "pre" then pack.pre(input, context: context, cancel: cancel)
    when "post" then pack.post(input, context: context, cancel: cancel)
    else pack.call(export, input, context: context, cancel: cancel)
    end
  end

  # Yields the token a call with `cancel_after_ms` is made with (nil without one), already
  # cancelled for 0, else cancelled by a thread started just before the call that sleeps
  # that many ms first. The thread is joined before this returns, so no cancel outlives
  # its case.
  def with_cancel(cancel_after_ms)
    return yield(nil) if cancel_after_ms.nil?

    token = Packhost::CancelToken.new
    if cancel_after_ms.zero?
      token.cancel
      return yield(token)
    end
    canceller = Thread.new do
      sleep(cancel_after_ms / 1000.0)
      token.cancel
    end
    begin
      yield token
    ensure
      canceller.join
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

  # `host_calls` and `kv_ops` when the case gives them; and every usage records the call's
  # context.
  def assert_usage(step, usage, label)
    if step.key?("host_calls")
      refute_nil usage, "#{label}: no usage to count host calls in"
      assert_equal step["host_calls"], usage.host_calls, "#{label}: host_calls"
    end
    if step.key?("kv_ops")
      refute_nil usage, "#{label}: no usage to count kv ops in"
      assert_equal step["kv_ops"], usage.kv_ops, "#{label}: kv_ops"
    end
    return if usage.nil?

    if step["context"].nil?
      assert_nil usage.context, "#{label}: usage context"
    else
      assert_equal step["context"], usage.context, "#{label}: usage context"
    end
  end

  # `audit` when the step gives it: as many entries as the list, and each actual entry
  # holds every key of its expected counterpart with the same value (keys the expected
  # entry leaves out are not checked).
  def assert_audit(step, audit, label)
    return unless step.key?("audit")

    expected = step["audit"]
    message = "#{label}: audit #{audit.inspect}, expected #{expected.inspect}"
    assert_equal expected.size, audit.size, message
    expected.zip(audit).each do |want, entry|
      assert_equal want, entry.slice(*want.keys), message
    end
  end

  def assert_logs(step, logs, label)
    return unless step.key?("logs")

    actual = logs.map { |line| {"level" => line.level.to_s, "message" => line.message} }
    assert_equal step["logs"], actual, "#{label}: logs"
  end
end
