# frozen_string_literal: true

# The exception classes of packhost: one per stable core error code, under Packhost::Error.
#
# They are plain Ruby classes so they read and rescue like any other; the native extension
# raises them by asking Packhost::Error.for_code for the class of a core code. Match on the
# class or on #code, never on the message.
module Packhost
  # Base class of every packhost failure.
  #
  # @example Rescue any failure and report its code
  #   begin
  #     pack.call("count_vowels", {text: "hi"})
  #   rescue Packhost::Error => e
  #     warn "#{e.code}: #{e.message}"
  #   end
  class Error < StandardError
    class << self
      # @return [String, nil] the stable snake_case core code this class stands for.
      attr_reader :code

      # The exception class for a core error code. An unknown code (from a newer core than
      # this Ruby code knows) maps to {InternalError}, so it is still rescued as an Error.
      #
      # @param code [String] a core error code, e.g. "timeout"
      # @return [Class<Error>]
      def for_code(code)
        BY_CODE.fetch(code.to_s, InternalError)
      end

      private

      # Declares the code of an error class and registers it.
      def code_is(code)
        @code = code.freeze
        BY_CODE[@code] = self
      end
    end

    # Every error class by its code; filled in by the class definitions below.
    BY_CODE = {} # rubocop:disable Style/MutableConstant

    # @return [Integer, nil] the non-zero value the pack's export returned, for {PluginError}.
    attr_reader :return_code

    # @return [Usage, nil] what the failed call cost; nil when the failure was not a call's.
    attr_reader :usage

    # @return [Array<LogRecord>] what the pack logged during the failed call.
    attr_reader :logs

    # @return [Array<Hash{String=>String, Integer}>] every capability the pack used during the
    #   failed call, refusals included, in order; see {CallResult#audit} for the entries'
    #   keys. Empty when the failure was not a call's.
    attr_reader :audit

    # @param message [String] the message for people
    # @param return_code [Integer, nil] see {#return_code}
    # @param usage [Hash, Usage, nil] the usage record of the failed call
    # @param logs [Array<Hash, LogRecord>] the log lines of the failed call
    # @param audit [Array<Hash>] the audit trail of the failed call (its entries are frozen)
    def initialize(message = nil, return_code: nil, usage: nil, logs: [], audit: [])
      super(message)
      @return_code = return_code
      @usage = usage.is_a?(Hash) ? Usage.from_h(usage) : usage
      @logs = logs.map { |line| line.is_a?(Hash) ? LogRecord.from_h(line) : line }.freeze
      @audit = Packhost.freeze_audit(audit)
    end

    # @return [String] the stable snake_case code, e.g. "timeout".
    def code
      self.class.code
    end
  end

  # The bytes are not a WebAssembly module packhost can run.
  class InvalidPackError < Error
    code_is "invalid_pack"
  end

  # The pack's embedded manifest is malformed or contradicts the module.
  class InvalidManifestError < Error
    code_is "invalid_manifest"
  end

  # The load options could not be read: an unknown field, a wrong type, a bad host pattern.
  class InvalidOptionsError < Error
    code_is "invalid_options"
  end

  # The trust policy (trusted_keys, require_signature) refused the pack: unsigned where a
  # signature is required, or signed wrongly or by a key the host does not trust.
  class UntrustedPackError < Error
    code_is "untrusted_pack"
  end

  # The pack has no action of that name.
  class ActionNotFoundError < Error
    code_is "action_not_found"
  end

  # Parent of the errors that mean a call hit one of the limits it was loaded with.
  class LimitError < Error
  end

  # The call ran past its wall-clock limit.
  class TimeoutError < LimitError
    code_is "timeout"
  end

  # The call used up its fuel (instruction budget).
  class OutOfFuelError < LimitError
    code_is "out_of_fuel"
  end

  # The pack tried to grow its memory past the limit.
  class MemoryLimitError < LimitError
    code_is "memory_limit"
  end

  # The input is larger than the limit; the pack was not called.
  class InputTooLargeError < LimitError
    code_is "input_too_large"
  end

  # The pack produced more output than the limit allows.
  class OutputTooLargeError < LimitError
    code_is "output_too_large"
  end

  # The host cancelled the call through the {CancelToken} it was made with (the +cancel:+
  # keyword of {Pack#call}). A call stopped while running carries its usage and logs, as a
  # timeout does; a call made with a token already cancelled never ran, and carries none.
  # Not a {LimitError}: no limit was hit, the host chose to stop.
  #
  # @example
  #   token = Packhost::CancelToken.new
  #   worker = Thread.new { pack.call("spin", cancel: token) }
  #   token.cancel
  #   worker.value  # raises Packhost::CancelledError (code "cancelled")
  class CancelledError < Error
    code_is "cancelled"
  end

  # The pack used a capability the host did not grant, such as an HTTP host.
  class HostDeniedError < Error
    code_is "host_denied"
  end

  # The pack trapped: unreachable code, a stack overflow, an out-of-bounds access.
  class TrapError < Error
    code_is "trap"
  end

  # The pack reported an error of its own; {#return_code} holds its code and the message is
  # the pack's.
  class PluginError < Error
    code_is "plugin_error"
  end

  # A host function the pack called failed: its handler raised, or returned something other
  # than a String without +output: :json+. The pack was not resumed. The exception the
  # handler raised is this error's #cause.
  #
  # @example
  #   begin
  #     pack.call("fail_via_host", "c42")
  #   rescue Packhost::HostFunctionError => e
  #     e.function     # => "fail"
  #     e.error_class  # => "LookupError"
  #     e.cause        # => #<LookupError: no customer c42>
  #   end
  class HostFunctionError < Error
    code_is "host_function_error"

    # @return [String, nil] the import name of the host function that failed
    attr_reader :function

    # @return [String, nil] the class name of the exception its handler raised, e.g.
    #   "KeyError" ("TypeError" for a handler that returned the wrong type, "panic" for a
    #   bug in packhost)
    attr_reader :error_class

    # @api private
    # @return [Exception, nil] what the handler raised, until {Pack#call} raises this error
    #   with it as its #cause (Ruby sets a cause only as an exception is raised)
    attr_reader :handler_exception

    # @param message (see Error#initialize)
    # @param function [String, nil] see {#function}
    # @param error_class [String, nil] see {#error_class}
    # @param handler_exception [Exception, nil] what the handler raised
    # @param details [Hash] as for {Error#initialize}
    def initialize(message = nil, function: nil, error_class: nil, handler_exception: nil, **details)
      super(message, **details)
      @function = function
      @error_class = error_class
      @handler_exception = handler_exception
    end
  end

  # The pack went past a quota of a capability: a key or value too large, a tenant's
  # storage full, too many operations in one call.
  class QuotaExceededError < Error
    code_is "quota_exceeded"
  end

  # Reading a pack failed (its file, or a registry that cannot be reached, refuses the
  # credentials or lacks the reference), or a capability's storage did.
  class IOError < Error
    code_is "io"
  end

  # A fault inside packhost itself: a bug to report, never the pack's doing.
  class InternalError < Error
    code_is "internal"
  end

  Error::BY_CODE.freeze
end
