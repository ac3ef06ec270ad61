# frozen_string_literal: true

# The Ruby API of Packhost::Pack as a user meets it: loading from paths and bytes, inputs
# as Strings or JSON values, results with usage and audit trails, the pack's stats, the error
# classes, and the logger.

require_relative "test_helper"
require "pathname"
require "stringio"

class PackTest < Minitest::Test
  def text_tools(**options)
    Packhost::Pack.load(sample_pack("text_tools"), **options)
  end

  def test_version_of_the_ruby_code_matches_the_native_extension
    assert_equal Packhost::VERSION, Packhost::NATIVE_VERSION
  end

  def test_loads_from_a_path_a_pathname_or_bytes_as_the_same_pack
    path = sample_pack("text_tools")
    packs = [
      Packhost::Pack.load(path),
      Packhost::Pack.load(Pathname(path)),
      Packhost::Pack.load(File.binread(path))
    ]
    assert_equal 1, packs.map(&:id).uniq.size
    assert_match(/\A[0-9a-f]{64}\z/, packs.first.id)
    assert_equal "text-tools", packs.first.name
    assert packs.first.embedded_manifest?
    assert packs.first.action?(:count_vowels)
    refute packs.first.action?("nope")
  end

  def test_a_pack_without_manifest_is_named_after_its_file
    pack = Packhost::Pack.load(sample_pack("plain"))
    assert_equal "plain", pack.name
    refute pack.embedded_manifest?
  end

  def test_manifest_describes_actions
    manifest = text_tools.manifest
    assert_equal "text-tools", manifest["name"]
    assert_includes manifest["actions"].map { |action| action["name"] }, "count_vowels"
    assert manifest.frozen?
  end

  def test_hash_input_is_sent_as_json_and_json_output_is_parsed_on_request
    result = text_tools.call("count_vowels", {text: "hello world"}, json: true)
    assert_equal({"count" => 3, "vowels" => "eoo"}, result.output)
    assert_equal '{"count":3,"vowels":"eoo"}', result.text
  end

  def test_string_input_is_sent_byte_for_byte_and_output_is_utf8_text
    result = text_tools.call(:uppercase, "grüße")
    assert_equal "GRÜSSE", result.output
    assert_equal Encoding::UTF_8, result.output.encoding
    assert_equal Encoding::BINARY, result.bytes.encoding
  end

  def test_result_carries_the_usage_record
    pack = text_tools
    usage = pack.call("echo", "12345").usage
    assert_kind_of Packhost::Usage, usage
    assert_equal 5, usage.input_bytes
    assert_equal 5, usage.output_bytes
    assert_operator usage.fuel_consumed, :>, 0
    assert_operator usage.peak_memory_bytes, :>, 0
    assert_equal [0, 0, 0], [usage.http_requests, usage.http_bytes_sent, usage.http_bytes_received]
    assert_nil usage.context
    assert_equal ["text-tools", pack.version, pack.id, "echo"],
                 [usage.pack_name, usage.pack_version, usage.pack_id, usage.action]
  end

  def test_usage_members_follow_the_core_record
    assert_equal %i[wall_time_us fuel_consumed peak_memory_bytes input_bytes output_bytes host_calls
                    host_time_us kv_ops http_requests http_bytes_sent http_bytes_received context
                    pack_name pack_version pack_id action],
                 Packhost::Usage.members
  end

  def test_a_call_that_uses_no_capability_has_an_empty_frozen_audit_trail
    result = text_tools.call("uppercase", "quiet")
    assert_equal [], result.audit
    assert result.audit.frozen?
  end

  def test_pre_and_post_call_the_hooks
    pack = Packhost::Pack.load(sample_pack("api_errors"))
    assert pack.action?("pre")
    assert pack.action?("post")
    assert_raises(Packhost::ActionNotFoundError) { text_tools.pre("{}") }
  end

  def test_plugin_error_carries_message_return_code_and_usage
    error = assert_raises(Packhost::PluginError) { text_tools.call("fail_with", "card declined") }
    assert_equal "plugin_error", error.code
    assert_equal "card declined", error.message
    assert_equal 1, error.return_code
    assert_equal 13, error.usage.input_bytes
    assert_equal ["text-tools", "fail_with"], [error.usage.pack_name, error.usage.action]
    assert_equal 0, error.usage.http_requests
    assert_equal [], error.audit
  end

  def test_stats_count_the_calls_of_the_pack_failed_ones_included
    pack = text_tools
    2.times { assert_equal "HI", pack.call("uppercase", "hi").output }
    assert_raises(Packhost::PluginError) { pack.call("fail_with", "card declined") }
    stats = pack.stats
    assert_equal 3, stats["calls"]
    assert_equal({"plugin_error" => 1}, stats["errors"])
    assert_operator stats["output_bytes"], :>, 0
    assert_equal 4 + 13, stats["input_bytes"]
    assert_equal 0, stats["http_requests"]
    assert_equal 0, text_tools.stats["calls"], "another load of the pack counts its own calls"
  end

  def test_every_core_code_has_its_own_error_class
    Packhost::ERROR_CODES.each do |code|
      klass = Packhost::Error.for_code(code)
      assert_operator klass, :<, Packhost::Error
      assert_equal code, klass.code
      assert_equal code, klass.new("x").code
    end
    assert_equal Packhost::ERROR_CODES.size, Packhost::ERROR_CODES.map { |c| Packhost::Error.for_code(c) }.uniq.size
  end

  def test_limit_errors_share_a_parent
    pack = Packhost::Pack.load(sample_pack("hostile"), limits: {timeout_ms: 10_000, fuel: 1_000_000})
    error = assert_raises(Packhost::LimitError) { pack.call("spin") }
    assert_instance_of Packhost::OutOfFuelError, error
    assert_operator error.usage.fuel_consumed, :>=, 1_000_000
  end

  def test_options_reach_the_core_unchanged
    error = assert_raises(Packhost::InvalidOptionsError) { text_tools(limits: {timeout: 5}) }
    assert_includes error.message, "timeout"
    assert_equal "Bonjour, Ada!", text_tools(config: {greeting: "Bonjour"}).call("greet", "Ada").output
    from_config_file = Packhost::Pack.load(sample_pack("text_tools"), {"config" => {"greeting" => "Hej"}})
    assert_equal "Hej, Ada!", from_config_file.call("greet", "Ada").output
  end

  def test_load_errors_are_rescuable_by_class
    assert_raises(Packhost::IOError) { Packhost::Pack.load("/nonexistent/pack.wasm") }
    assert_raises(Packhost::InvalidPackError) { Packhost::Pack.load("not a module".b) }
  end

  def test_plugin_log_lines_go_to_the_logger_at_their_level
    output = StringIO.new
    Packhost.logger = Logger.new(output, level: Logger::DEBUG)
    Packhost.logger.formatter = ->(severity, _time, progname, message) { "#{severity} #{progname}: #{message}\n" }
    result = text_tools(log_level: "debug").call("chatty", "")
    lines = output.string.lines.map(&:chomp)
    assert_includes lines, "INFO text-tools: info line"
    assert_includes lines, "WARN text-tools: warn line"
    assert_includes lines, "ERROR text-tools: error line"
    assert_equal result.logs.size, lines.size
  ensure
    Packhost.logger = nil
  end

  def test_log_lines_of_a_failed_call_reach_the_logger_too
    output = StringIO.new
    Packhost.logger = Logger.new(output)
    error = assert_raises(Packhost::PluginError) { text_tools.call("fail_with", "declined") }
    assert_equal error.logs.size, output.string.lines.size
  ensure
    Packhost.logger = nil
  end

  def test_a_panic_in_the_extension_is_an_internal_error_not_a_crash
    # Rust still prints the panic; a backtrace of a deliberate panic is only noise here.
    backtrace, ENV["RUST_BACKTRACE"] = ENV["RUST_BACKTRACE"], "0"
    error = assert_raises(Packhost::InternalError) { Packhost.__panic_probe }
    assert_equal "internal", error.code
    assert_includes error.message, "deliberate panic"
  ensure
    ENV["RUST_BACKTRACE"] = backtrace
  end

  def test_build_info_says_how_the_extension_was_built
    info = Packhost.build_info
    assert_equal %w[debug_assertions opt_level profile version wasmtime], info.keys.sort
    assert_equal Packhost::VERSION, info["version"]
    assert_match(/\A43\./, info["wasmtime"])
    assert_equal info["opt_level"] == "0", info["profile"] == "dev"
    # ci.sh runs this suite against the gem as `gem install` builds it.
    return unless ENV["PACKHOST_EXPECT_RELEASE"] == "1"

    assert_equal ["release", "3", false], info.values_at("profile", "opt_level", "debug_assertions")
  end

  def test_packs_cannot_be_made_without_load
    assert_raises(TypeError) { Packhost::Pack.new }
  end

  def test_other_threads_run_while_a_pack_is_called
    pack = Packhost::Pack.load(sample_pack("hostile"), limits: {timeout_ms: 300, fuel: nil})
    ticks = 0
    ticker = Thread.new { loop { ticks += 1; sleep 0.005 } }
    assert_raises(Packhost::TimeoutError) { pack.call("spin") }
    ticker.kill.join
    assert_operator ticks, :>=, 10, "the ticker thread was starved while the pack ran"
  end
end
