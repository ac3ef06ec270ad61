# frozen_string_literal: true

# The values a call returns: its output, its usage record and the lines the pack logged.
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
  # @!attribute [r] context
  #   @return [Object, nil] the call's +context+ as the core recorded it (as JSON: Hash keys
  #     are Strings), nil when it had none
  Usage = Struct.new(:wall_time_us, :fuel_consumed, :peak_memory_bytes, :input_bytes,
                     :output_bytes, :host_calls, :host_time_us, :kv_ops, :context,
                     keyword_init: true) do
    # Builds a Usage from the core's record; fields this version does not know are ignored.
    #
    # @param hash [Hash{String=>Integer}]
    # @return [Usage]
    def self.from_h(hash)
      new(**members.to_h { |field| [field, hash[field.to_s]] }).freeze
    end

    # Builds a Usage from the core's values, in member order.
    #
    # @param values [Array<Integer, Object>] the numbers, then the context
    # @return [Usage]
    def self.from_a(values)
      new(wall_time_us: values[0], fuel_consumed: values[1], peak_memory_bytes: values[2],
          input_bytes: values[3], output_bytes: values[4], host_calls: values[5],
          host_time_us: values[6], kv_ops: values[7], context: values[8]).freeze
    end
  end

  # The logs of a call that logged nothing: one shared, frozen empty list.
  NO_LOGS = [].freeze

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

    # @api private
    # @param text [String] the output: UTF-8 when it is valid UTF-8, else binary
    # @param usage [Array<Integer>] the core's usage numbers, in {Usage}'s member order
    # @param logs [Array<LogRecord>]
    # @param json [Boolean] parse the output as JSON
    def initialize(text, usage, logs, json:)
      @text = text.freeze
      @usage_numbers = usage
      @logs = logs
      @output = json ? JSON.parse(@text) : @text
    end

    # @return [Usage] what the call cost
    def usage
      # Built on first use: most callers of a hot path never look at it.
      @usage ||= Usage.from_a(@usage_numbers)
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
