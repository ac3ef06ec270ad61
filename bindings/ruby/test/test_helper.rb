# frozen_string_literal: true

# Shared set-up of the Ruby test suite: load paths, paths of the sample packs and the
# conformance suite, and the GC.stress mode (PACKHOST_GC_STRESS=1) that ci.sh runs the suite
# in a second time.

# ci.sh runs the suite against the installed gem (PACKHOST_TEST_INSTALLED_GEM=1); by hand,
# it runs against lib/ with an extension built there.
INSTALLED_GEM = ENV["PACKHOST_TEST_INSTALLED_GEM"] == "1"
$LOAD_PATH.unshift(File.expand_path("../lib", __dir__)) unless INSTALLED_GEM

require "minitest/autorun"
require "packhost"

# Plugin log lines would clutter the test output; the logging tests set their own logger.
Packhost.logger = nil

# The conformance suite's `fail` raises a LookupError where the host has classes (Python's
# built-in one); Ruby has none, so the tests define it.
class LookupError < StandardError; end

module PackhostTestSupport
  REPO_ROOT = File.expand_path("../../..", __dir__)
  DIST_DIR = File.join(REPO_ROOT, "plugins", "dist")
  CONFORMANCE_DIR = File.join(REPO_ROOT, "tests", "conformance")
  GC_STRESS = ENV["PACKHOST_GC_STRESS"] == "1"

  module_function

  # Path of a built sample pack; fails with the command that builds them when missing.
  def sample_pack(name)
    path = File.join(DIST_DIR, "#{name}.wasm")
    raise "sample pack #{path} is missing; build the packs first (make packs)" unless File.file?(path)

    path
  end

  # The conformance suite's host functions (tests/conformance/README.md, "The suite's host
  # functions"), written with the binding's own API: a lambda, JSON in and out, text in, and
  # a handler that takes the call.
  def suite_functions
    {
      "reverse" => ->(input) { input.reverse },
      "add" => Packhost::HostFunction.new(input: :json, output: :json) do |args|
        terms = args.values_at("a", "b")
        raise TypeError, "a and b must be integers, not #{terms.inspect}" unless terms.all?(Integer)

        {"sum" => terms.sum}
      end,
      "fail" => Packhost::HostFunction.new(input: :text) { |message| raise LookupError, message },
      "context_echo" => Packhost::HostFunction.new(output: :json) do |_input, call|
        {"context" => call.context, "pack" => call.pack_name}
      end
    }
  end

  # Resident set size of this process in bytes, from /proc (Linux).
  def resident_bytes
    File.foreach("/proc/self/status") do |line|
      return Integer(line.split[1]) * 1024 if line.start_with?("VmRSS:")
    end
    raise "VmRSS not found in /proc/self/status"
  end
end

# Every test runs with GC.stress on in the stress pass, so a Ruby object the extension
# forgot to keep alive is collected (and the bug shows) at once. Only the test body runs
# under stress; minitest's own bookkeeping does not.
module GCStressEachTest
  def before_setup
    super
    GC.stress = true if PackhostTestSupport::GC_STRESS
  end

  def after_teardown
    GC.stress = false
    super
  end

  # Timing and memory-growth tests measure nothing useful while every allocation runs a
  # full collection, so the stress pass leaves them out.
  def skip_under_gc_stress
    skip "timing and memory tests do not run under GC.stress" if PackhostTestSupport::GC_STRESS
  end
end

Minitest::Test.include(PackhostTestSupport)
Minitest::Test.prepend(GCStressEachTest)
