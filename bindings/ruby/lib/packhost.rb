# frozen_string_literal: true

# Entry point of the packhost gem: run WebAssembly plugins ("packs") in a sandbox with hard
# limits, with the same results as packhost's Rust, Node and Python hosts.
#
# This file loads the Ruby half (version, errors, results, host functions, CancelToken, Pack)
# and the native extension, and owns the logger plugin log lines go to.

require "json"
require "logger"

require_relative "packhost/version"
require_relative "packhost/error"
require_relative "packhost/results"
require_relative "packhost/host_function"
require "packhost/packhost"
require_relative "packhost/cancel_token"
require_relative "packhost/pack"

# Run WebAssembly plugins ("packs") on the Extism plugin ABI in a sandbox with hard limits.
#
# @example
#   require "packhost"
#   Packhost.logger = Logger.new($stdout)
#   pack = Packhost::Pack.load("text_tools.wasm")
#   puts pack.call("uppercase", "hello").output   # => HELLO
module Packhost
  unless NATIVE_VERSION == VERSION
    raise LoadError, "packhost: the native extension is version #{NATIVE_VERSION} " \
                     "but the Ruby code is #{VERSION}; rebuild the extension"
  end

  # Logger severities of the core's plugin log levels; Logger has no trace, so trace lines
  # are logged as debug.
  SEVERITIES = {
    trace: Logger::DEBUG,
    debug: Logger::DEBUG,
    info: Logger::INFO,
    warn: Logger::WARN,
    error: Logger::ERROR
  }.freeze
  private_constant :SEVERITIES

  @logger = Logger.new($stderr, level: Logger::WARN, progname: "packhost")

  class << self
    # The Logger plugin log lines go to, after each call, in the calling thread, at their own
    # level (trace as debug) with the pack's name as progname. Which lines a pack records at
    # all is the `log_level` load option. Defaults to $stderr at WARN; set nil to drop them.
    #
    # @return [Logger, nil]
    attr_accessor :logger

    # @api private
    # Sends a call's log lines to {logger}.
    def forward_logs(logs, pack_name)
      logger = @logger
      return if logger.nil? || logs.empty?

      logs.each do |line|
        logger.add(SEVERITIES.fetch(line.level, Logger::UNKNOWN), line.message, pack_name)
      end
    end

    # @api private
    # The bytes sent to a pack: a String as is, anything else as its JSON.
    def encode_input(input)
      input.is_a?(String) ? input : JSON.generate(input)
    end
  end
end
