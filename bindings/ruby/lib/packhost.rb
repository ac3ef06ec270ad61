# frozen_string_literal: true

# Entry point of the packhost gem: run WebAssembly plugins ("packs") in a sandbox with hard
# limits, with the same results as packhost's Rust, Node and Python hosts.
#
# This file loads the Ruby half (version, errors, results, host functions, CancelToken, Pack,
# Flow) and the native extension, and owns the logger plugin log lines go to.

require "json"
require "logger"

require_relative "packhost/version"
require_relative "packhost/error"
require_relative "packhost/results"
require_relative "packhost/host_function"
require "packhost/packhost"
require_relative "packhost/cancel_token"
require_relative "packhost/pack"
require_relative "packhost/flow"

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
  private_class_method :__push_json, :__pull_json

  class << self
    # The Logger plugin log lines go to, after each call, in the calling thread, at their own
    # level (trace as debug) with the pack's name as progname. Which lines a pack records at
    # all is the `log_level` load option. Defaults to $stderr at WARN; set nil to drop them.
    #
    # @return [Logger, nil]
    attr_accessor :logger

    # Publishes the pack at +path+ to an OCI registry as a Wasm artifact, with its signature
    # (+signature:+, else +PATH.sig+ when it exists). The GVL is released while it runs.
    # Credentials come from PACKHOST_REGISTRY_USERNAME and PACKHOST_REGISTRY_PASSWORD (or
    # PACKHOST_REGISTRY_TOKEN), for the registry PACKHOST_REGISTRY_HOST names.
    #
    # @param path [String, Pathname] the .wasm file
    # @param reference [String] +REGISTRY/NAME:TAG+, +oci://+ optional
    # @param signature [String, Pathname, nil] the signature file to publish
    # @return [Hash] "reference", "manifest_digest", "pack_digest", "signed"
    # @raise [IOError] when the registry cannot be reached or refuses
    # @raise [UntrustedPackError] for a signature of other bytes
    def push(path, reference, signature: nil)
      JSON.parse(__push_json(path.to_s, reference.to_s, signature&.to_s))
    end

    # Pulls a pack into the local store (PACKHOST_STORE) with every digest checked, and pins
    # the reference to it: +Pack.load("oci://...")+ then loads it with no network. The GVL
    # is released while it runs.
    #
    # @param reference [String] +REGISTRY/NAME:TAG+ or +REGISTRY/NAME@sha256:...+
    # @return [Hash] "reference", "manifest_digest", "pack_digest", "path", "signed"
    # @raise [InvalidPackError] when the registry's bytes do not match their digest
    # @raise [IOError] when the registry cannot be reached or has no such reference
    def pull(reference)
      JSON.parse(__pull_json(reference.to_s))
    end

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
