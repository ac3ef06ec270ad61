# frozen_string_literal: true

# The Ruby example (examples/ruby/quickstart.rb) and the README's Ruby host-function block run
# against the build under test and print what their comments promise.

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

  def test_the_readme_host_function_block_runs
    skip_under_gc_stress
    readme = File.read(File.join(PackhostTestSupport::REPO_ROOT, "README.md"))
    ruby_section = readme[/^### Ruby\n(.*?)(?=^##)/m, 1]
    refute_nil ruby_section, "README.md has no ### Ruby section"
    block = ruby_section.scan(/^```ruby\n(.*?)^```$/m).flatten.find { |code| code.include?("functions:") }
    refute_nil block, "the README's Ruby section has no host-function block"
    load_path = INSTALLED_GEM ? [] : ["-I", File.expand_path("../lib", __dir__)]
    # The block names packs by their path from the repository root, as a reader runs it.
    output, status = Open3.capture2e(RbConfig.ruby, *load_path, "-e", block, chdir: PackhostTestSupport::REPO_ROOT)
    assert status.success?, output
    assert_match(/"tenant"\s*=>\s*"acme", "pack"\s*=>\s*"host_calls"/, output)
    assert_includes output, "fail failed: no customer c42"
  end
end
