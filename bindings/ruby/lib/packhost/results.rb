# frozen_string_literal: true

# The values a call returns: its output, its usage record, the lines the pack logged and its
# audit trail.
module Packhost
  # What one call cost, and whom it was for. Every number is measured by the core, never
  # estimated.
  #
  # @!attribute [r] wall_time_us
  #   @return [Integer] wall-clock time inside the engine, in microseconds
  # @!attribute [r] fuel_consumed
  #   @return [Integer] fuel burnt: the pack's instructions plus the Extism ABI's
  # @!attribute [r] peak_memory_bytes
  #   @return [Integer] largest total linear memory during the call, in bytes
  # @!attribute [r] input_bytes
  #   @return [Integer] size of the input, in bytes
  # @!attribute [r] output_bytes
  #   @return [Integer] size of the output, in bytes (0 when the call failed)
  # @!attribute [r] host_calls
  #   @return [Integer] host functions the pack called
  # @!attribute [r] host_time_us
  #   @return [Integer] time spent in host functions' handlers, in microseconds (part of
  #     wall_time_us)
  # @!attribute [r] kv_ops
  #   @return [Integer] key-value operations the pack made (get, set, delete, list,
  #     compare_and_set), refused ones included
  # @!attribute [r] http_requests
  #   @return [Integer] HTTP requests the pack made, refused ones included
  # @!attribute [r] http_bytes_sent
  #   @return [Integer] bytes of HTTP request bodies the pack sent
  # @!attribute [r] http_bytes_received
  #   @return [Integer] bytes of HTTP response bodies the pack received
  # @!attribute [r] context
  #   @return [Object, nil] the call's +context+ as the core recorded it (as JSON: Hash keys
  #     are Strings), nil when it had none
  # @!attribute [r] pack_name
  #   @return [String] the pack's name, from its manifest
  # @!attribute [r] pack_version
  #   @return [String] the pack's version, from its manifest
  # @!attribute [r] pack_id
  #   @return [String] the pack's id: the SHA-256 of its module, in lowercase hex
  # @!attribute [r] action
  #   @return [String] the action called
  Usage = Struct.new(:wall_time_us, :fuel_consumed, :peak_memory_bytes, :input_bytes,
                     :output_bytes, :host_calls, :host_time_us, :kv_ops, :http_requests,
                     :http_bytes_sent, :http_bytes_received, :context, :pack_name,
                     :pack_version, :pack_id, :action,
                     keyword_init: true) do
    # Builds a Usage from the core's record; fields this version does not know are ignored.
    #
    # @param hash [Hash{String=>Integer, String, Object}]
    # @return [Usage]
    def self.from_h(hash)
      new(**members.to_h { |field| [field, hash[field.to_s]] }).freeze
    end

    # Builds a Usage from the core's values, in member order.
    #
    # @param values [Array<Integer, Object, String>] the numbers, then the context, then the
    #   pack's name, version and id and the action
    # @return [Usage]
    def self.from_a(values)
      new(wall_time_us: values[0], fuel_consumed: values[1], peak_memory_bytes: values[2],
          input_bytes: values[3], output_bytes: values[4], host_calls: values[5],
          host_time_us: values[6], kv_ops: values[7], http_requests: values[8],
          http_bytes_sent: values[9], http_bytes_received: values[10], context: values[11],
          pack_name: values[12], pack_version: values[13], pack_id: values[14],
          action: values[15]).freeze
    end
  end

  # The logs of a call that logged nothing: one shared, frozen empty list.
  NO_LOGS = [].freeze

  # The audit trail of a call that used no capability: one shared, frozen empty list.
  NO_AUDIT = [].freeze

  # @api private
  # Freezes the core's audit entries (Hashes with String keys) in place, and their list.
  #
  # @param entries [Array<Hash{String=>String, Integer}>, nil]
  # @return [Array<Hash{String=>String, Integer}>] {NO_AUDIT} when there are none
  def self.freeze_audit(entries)
    return NO_AUDIT if entries.nil? || entries.empty?

    entries.each(&:freeze).freeze
  end

  # One line a pack logged.
  #
  # @!attribute [r] level
  #   @return [Symbol] :trace, :debug, :info, :warn or :error
  # @!attribute [r] message
  #   @return [String]
  LogRecord = Struct.new(:level, :message) do
    # @param hash [Hash{String=>String}] the core's record
    # @return [LogRecord]
    def self.from_h(hash)
      new(hash["level"].to_sym, hash["message"]).freeze
    end
  end

  # The result of a successful call.
  class CallResult
    # @return [String, Object] the output: text (a UTF-8 String, or a binary String when
    #   the bytes are not UTF-8), or the parsed JSON value when the call asked for `json: true`
    attr_reader :output

    # @return [Array<LogRecord>] what the pack logged, in order
    attr_reader :logs

    # Every capability the pack used during the call (HTTP requests, key-value operations,
    # secret reads, host-function calls), refusals included, in order. Each entry is a frozen
    # Hash with String keys, as the core records it:
    #
    # - "capability" [String]: "http", "kv", "secret" or "host_function"
    # - "operation" [String]: the HTTP method; "get", "set", "delete", "list" or
    #   "compare_and_set"; "read" for a secret; "call" for a host function
    # - "target" [String]: the HTTP host; the key (a list's prefix); the secret's name (never
    #   its value); the host function's name
    # - "outcome" [String]: "ok", "denied" (a grant or a quota refused it) or "failed"
    # - "status" [Integer]: the HTTP response's status (only when there was one)
    # - "bytes_sent", "bytes_received" [Integer]: bytes the pack sent and received
    # - "reason" [String]: why it was refused or failed (absent when it was not; on the last
    #   entry of a trail cut at the core's limit, how many later entries were not kept)
    #
    # @example
    #   result.audit.first
    #   # => {"capability"=>"kv", "operation"=>"get", "target"=>"a", "outcome"=>"ok",
    #   #     "bytes_sent"=>0, "bytes_received"=>3}
    #
    # @return [Array<Hash{String=>String, Integer}>] the call's audit trail; empty when the
    #   pack used no capability
    attr_reader :audit

    # @api private
    # @param text [String] the output: UTF-8 when it is valid UTF-8, else binary
    # @param usage [Array<Integer, Object, String>] the core's usage values, in {Usage}'s
    #   member order
    # @param logs [Array<LogRecord>]
    # @param json [Boolean] parse the output as JSON
    # @param audit [Array<Hash>] the audit trail (frozen)
    def initialize(text, usage, logs, json:, audit: NO_AUDIT)
      @text = text.freeze
      @usage_values = usage
      @logs = logs
      @audit = audit
      @output = json ? JSON.parse(@text) : @text
    end

    # @return [Usage] what the call cost
    def usage
      # Built on first use: most callers of a hot path never look at it.
      @usage ||= Usage.from_a(@usage_values)
    end

    # @return [String] the output bytes exactly as the pack returned them (binary encoding)
    def bytes
      @bytes ||= (@text.encoding == Encoding::BINARY ? @text : @text.b.freeze)
    end

    # @return [String] the output as text: UTF-8 when valid, else the binary String
    def text
      @text
    end

    # Parses the output as JSON, whatever `json:` the call was made with.
    #
    # @return [Object] the parsed value
    # @raise [JSON::ParserError] when the output is not JSON
    def json
      JSON.parse(@text)
    end

    # @return [String] the output as text
    def to_s
      text
    end
  end
end
