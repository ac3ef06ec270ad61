# frozen_string_literal: true

# The Ruby example (examples/ruby/quickstart.rb) runs against the build under test and prints what
# its comments promise.

require_relative "test_helper"
require "open3"
require "rbconfig"

class ExampleTest < Minitest::Test
  def test_quickstart_runs
    skip_under_gc_stress
    example = File.join(PackhostTestSupport::REPO_ROOT, "examples", "ruby", "quickstart.rb")
    load_path = INSTALLED_GEM ? [] : ["-I", File.expand_path("../lib", __dir__)]
    output, status = Open3.capture2e(RbConfig.ruby, *load_path, example, PackhostTestSupport::DIST_DIR)
    assert status.success?, output
    assert_includes output, "stripe said card_declined: Your card has insufficient funds."
    assert_includes output, "Bonjour, Ada!"
    assert_includes output, "stopped: timeout after"
    assert_includes output, "failed: plugin_error (return code 1): bad input"
    assert_includes output, '["ONE", "TWO", "THREE"]'
  end
end
