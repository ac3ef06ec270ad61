# frozen_string_literal: true

# Host functions: Ruby callables lent to packs, imported the way every Extism PDK imports
# them (`host_fn!` in Rust, `//go:wasmimport extism:host/user` in Go).
#
# Everything here is conversion. The native extension hands each function's adapter the
# input bytes and the call's facts as JSON, holding the GVL for that, and takes a
# String back; the core does the rest (limits, usage, the host_function_error a raised
# exception becomes).
module Packhost
  # The import module every Extism PDK's host-function helper uses, and the default.
  EXTISM_USER = "extism:host/user"

  # A call that lends host functions runs with interrupts (Thread#raise and #kill from other
  # threads, Ctrl-C) deferred, and lets them in only while a handler runs. Ruby checks for
  # interrupts as it gives the GVL back to the pack after a handler; one raised there would
  # unwind through the frames of the pack and of Rust, where nothing may unwind.
  DEFER_INTERRUPTS = {Object => :never}.freeze
  ALLOW_INTERRUPTS = {Object => :immediate}.freeze
  private_constant :DEFER_INTERRUPTS, :ALLOW_INTERRUPTS

  # What a handler knows about the call it serves. A handler gets it as its second argument
  # when it takes two (see {HostFunction}).
  class HostCall
    # @api private
    # @param info_json [String] the call's facts as the native extension writes them
    def initialize(info_json)
      @info_json = info_json
    end

    # @return [Object] the +context:+ the caller passed to {Pack#call}, as parsed JSON (Hashes
    #   with String keys); nil when none
    def context
      info["context"]
    end

    # @return [String] the calling pack's name
    def pack_name
      info["pack_name"]
    end

    # @return [String] the calling pack's id (SHA-256 of its module, lowercase hex)
    def pack_id
      info["pack_id"]
    end

    # @return [String] the import name of the host function called
    def function
      info["function"]
    end

    # @return [Hash{Symbol=>Object}]
    def to_h
      {context: context, pack_name: pack_name, pack_id: pack_id, function: function}
    end

    # @return [String]
    def inspect
      "#<#{self.class} #{function} from #{pack_name}>"
    end

    private

    # Parsed on first use: a handler that never looks at its call costs no JSON parsing.
    def info
      @info ||= JSON.parse(@info_json)
    end
  end

  # A handler with the namespace and encodings it is lent under. In {Pack.load}'s
  # +functions:+ Hash, a plain callable stands for +HostFunction.new(callable)+.
  #
  # A handler is a Proc, lambda, Method or anything with #call. It gets the input and, when
  # it takes two parameters (or *args), the {HostCall}; what it returns goes back to the pack.
  # What it raises ends the call with {HostFunctionError}, whose #cause it becomes; the pack
  # is not resumed. An exception outside StandardError (Interrupt, SystemExit) or a +throw+
  # also ends the call, and then goes on as it began.
  #
  # @example
  #   Packhost::HostFunction.new(input: :json, output: :json) { |args| {sum: args["a"] + args["b"]} }
  #   Packhost::HostFunction.new(method(:lookup), input: :text)
  class HostFunction
    # What a handler can get: the bytes as a binary String, the same bytes as a UTF-8 String
    # (not validated), or the bytes parsed as JSON (nil for no bytes).
    INPUTS = %i[bytes text json].freeze
    # What a handler can return: a String, sent as its bytes, or any value JSON.generate
    # takes, sent as its JSON.
    OUTPUTS = %i[bytes json].freeze

    # @return [#call] the handler
    attr_reader :handler
    # @return [String] the import module, {EXTISM_USER} unless given
    attr_reader :namespace
    # @return [Symbol] what the handler gets: one of {INPUTS}
    attr_reader :input
    # @return [Symbol] what the handler returns: one of {OUTPUTS}
    attr_reader :output

    # @param handler [#call, nil] the handler, or nil to give it as the block
    # @param namespace [String] the import module
    # @param input [Symbol] one of {INPUTS}
    # @param output [Symbol] one of {OUTPUTS}
    # @raise [ArgumentError] for no handler, both a handler and a block, a handler that
    #   takes no input, or an unknown encoding
    def initialize(handler = nil, namespace: EXTISM_USER, input: :bytes, output: :bytes, &block)
      raise ArgumentError, "give a handler or a block, not both" if handler && block

      handler ||= block
      unless handler.respond_to?(:call)
        raise ArgumentError, "a host function needs a handler (a Proc, Method or anything with #call), " \
                             "not #{handler.inspect}"
      end
      @handler = handler
      @namespace = namespace.to_s.dup.freeze
      @input = encoding(input, INPUTS, "input")
      @output = encoding(output, OUTPUTS, "output")
      @wants_call = wants_call?(handler)
      freeze
    end

    class << self
      # @api private
      # The native extension's registrations and the adapters behind them, in one order:
      # `[[namespace, name], ...]` and a frozen Array of lambdas taking the input bytes and
      # the call's facts as JSON and returning a String.
      #
      # @param functions [Array<Array(String, HostFunction)>]
      # @return [Array(Array<Array(String, String)>, Array<Proc>)]
      def lend(functions)
        specs = functions.map { |name, function| [function.namespace, name] }
        adapters = functions.map { |name, function| function.adapter(name) }
        [specs, adapters.freeze]
      end

      # @api private
      # `[name, HostFunction]` pairs from {Pack.load}'s +functions:+ Hash.
      #
      # @param functions [Hash{String, Symbol => #call, HostFunction}]
      # @return [Array<Array(String, HostFunction)>]
      def pairs(functions)
        unless functions.respond_to?(:each_pair)
          raise TypeError, "functions: must be a Hash of import names to handlers, not #{functions.class}"
        end

        functions.each_pair.map do |name, value|
          [name.to_s, value.is_a?(HostFunction) ? value : new(value)]
        rescue ArgumentError => e
          raise ArgumentError, "host function #{name.to_s.inspect}: #{e.message}"
        end
      end
    end

    # The input bytes (a fresh binary String) as the handler gets them, by {#input}.
    DECODERS = {
      bytes: ->(bytes) { bytes },
      text: ->(bytes) { bytes.force_encoding(Encoding::UTF_8) },
      json: ->(bytes) { bytes.empty? ? nil : JSON.parse(bytes.force_encoding(Encoding::UTF_8)) }
    }.freeze
    private_constant :DECODERS

    # @api private
    # The adapter the native extension calls for this function lent as +name+: the input
    # bytes and the call's facts as JSON in, a String out.
    #
    # @param name [String] the import name, for messages
    # @return [Proc]
    def adapter(name)
      handler = @handler
      decode = DECODERS.fetch(@input)
      encode = if @output == :json
                 ->(value) { JSON.generate(value) }
               else
                 lambda do |value|
                   return value if value.is_a?(String)

                   raise TypeError, "host function #{name.inspect} returned #{value.class}, not a String; " \
                                    "lend it with output: :json to return data"
                 end
               end
      if @wants_call
        lambda do |bytes, info_json|
          Thread.handle_interrupt(ALLOW_INTERRUPTS) do
            encode.call(handler.call(decode.call(bytes), HostCall.new(info_json)))
          end
        end
      else
        lambda do |bytes, _info_json|
          Thread.handle_interrupt(ALLOW_INTERRUPTS) { encode.call(handler.call(decode.call(bytes))) }
        end
      end
    end

    private

    def encoding(value, allowed, what)
      symbol = value.respond_to?(:to_sym) ? value.to_sym : value
      return symbol if allowed.include?(symbol)

      raise ArgumentError, "#{what}: must be one of #{allowed.map(&:inspect).join(', ')}, not #{value.inspect}"
    end

    # True when the handler takes a second positional argument (the HostCall): arity-1
    # handlers get only the input. A lambda or method that takes no argument at all could
    # never be called with the input, so it is refused here rather than at its first call.
    def wants_call?(handler)
      callable = handler.is_a?(Proc) || handler.is_a?(Method) ? handler : handler.method(:call)
      parameters = callable.parameters
      return true if parameters.any? { |kind, _| kind == :rest }

      positional = parameters.count { |kind, _| kind == :req || kind == :opt }
      strict = !callable.is_a?(Proc) || callable.lambda?
      raise ArgumentError, "the handler takes no argument; it gets the input (and the call)" if positional.zero? && strict

      positional >= 2
    end
  end

  # The block form of {Pack.load}: collects the functions it lends.
  #
  # @example
  #   Packhost::Pack.load("host_calls.wasm") do |host|
  #     host.function("reverse") { |input| input.reverse }
  #     host.function("add", input: :json, output: :json) { |args| {sum: args["a"] + args["b"]} }
  #   end
  class HostFunctions
    # @api private
    # @return [Array<Array(String, HostFunction)>] the functions defined, in order
    attr_reader :pairs

    # @api private
    def initialize
      @pairs = []
    end

    # Lends a function under the import name +name+.
    #
    # @param name [String, Symbol] the import name
    # @param handler [#call, HostFunction, nil] the handler, or nil to give it as the block
    # @param options [Hash] +namespace:+, +input:+ and +output:+, as for {HostFunction#initialize}
    # @return [self]
    def function(name, handler = nil, **options, &block)
      if handler.is_a?(HostFunction)
        raise ArgumentError, "give a HostFunction or options and a handler, not both" unless options.empty? && block.nil?

        @pairs << [name.to_s, handler]
      else
        @pairs << [name.to_s, HostFunction.new(handler, **options, &block)]
      end
      self
    rescue ArgumentError => e
      raise ArgumentError, "host function #{name.to_s.inspect}: #{e.message}"
    end
  end
end
