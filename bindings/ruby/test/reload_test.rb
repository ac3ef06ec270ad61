# frozen_string_literal: true

# Live version swaps: Pack#reload loads the next version with the same options and host
# functions, calls on other threads keep working through it, and a failed reload keeps the
# old version serving.

require_relative "test_helper"

class ReloadTest < Minitest::Test
  def test_a_reload_swaps_the_next_version_in_with_the_same_options
    pack = Packhost::Pack.load(sample_pack("text_tools"), limits: { timeout_ms: 5000 })
    assert_equal "0.1.0", pack.call("greet", "x").usage.pack_version
    assert_same pack, pack.reload(sample_pack("text_tools_next"))
    assert_equal "9.0.0", pack.version
    assert_equal "9.0.0", pack.call("greet", "after").usage.pack_version
    pack.reload(File.binread(sample_pack("text_tools")))
    assert_equal "0.1.0", pack.version
  end

  def test_calls_on_other_threads_keep_working_through_reloads
    pack = Packhost::Pack.load(sample_pack("text_tools"))
    stop = false
    callers = Array.new(3) do
      Thread.new do
        calls = 0
        until stop
          assert_equal "Hello, t!", pack.call("greet", "t").output
          calls += 1
        end
        calls
      end
    end
    10.times do
      pack.reload(sample_pack("text_tools_next"))
      pack.reload(sample_pack("text_tools"))
    end
    stop = true
    assert callers.map(&:value).all?(&:positive?)
  end

  def test_a_reload_that_fails_leaves_the_old_version_serving
    pack = Packhost::Pack.load(sample_pack("text_tools"))
    assert_raises(Packhost::InvalidPackError) { pack.reload("not wasm".b) }
    error = assert_raises(Packhost::InvalidPackError) { pack.reload(sample_pack("hostile")) }
    assert_match(/next version of "text-tools" must be "text-tools", not "hostile"/, error.message)
    assert_raises(TypeError) { pack.reload({ "wasm" => [] }) }
    assert_equal "Hello, still!", pack.call("greet", "still").output
    assert_equal "0.1.0", pack.version
  end
end
