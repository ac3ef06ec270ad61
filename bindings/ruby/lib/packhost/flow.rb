# frozen_string_literal: true

# Packhost::Flow: packs' actions composed as data. The native extension defines the class
# and its low-level methods; this file adds the idiomatic API over them.
module Packhost
  # A checked flow definition bound to loaded packs, ready to run any number of times from
  # any thread. Each step calls one pack's action on input built from the flow's input and
  # earlier steps' outputs (+{"$from" => POINTER}+), may run only when its +"if"+ holds, and
  # may run in +"parallel"+ branches; see the README's "Flows" for the definition.
  #
  # Each run calls each pack's current version, so a {Pack#reload} reaches the flow's later
  # runs.
  #
  # Host functions: a step calling a pack that lends Ruby host functions runs its handlers on
  # the thread running the flow, as {Pack#call} does. A step in a +"parallel"+ branch other
  # than the first runs on a thread of the core's, where no Ruby code can run: such a step
  # fails with {HostFunctionError} if its pack calls a host function.
  #
  # @example Shout, then count the vowels of the shout
  #   text = Packhost::Pack.load("plugins/dist/text_tools.wasm")
  #   flow = Packhost::Flow.new({
  #     "name" => "shout_then_count",
  #     "steps" => [
  #       {"id" => "shout", "pack" => "text", "action" => "uppercase", "input" => {"$from" => "/input/text"}},
  #       {"id" => "count", "pack" => "text", "action" => "count_vowels",
  #        "input" => {"text" => {"$from" => "/steps/shout/output"}}}
  #     ]
  #   }, {"text" => text})
  #   flow.run({"text" => "hello world"})["output"]  # => {"count"=>3, "vowels"=>"EOO"}
  class Flow
    class << self
      # Reads and checks a flow definition against the packs its steps name: every pack is
      # given and has every action a step calls.
      #
      # @param definition [Hash, String] the definition, or its JSON text
      # @param packs [Hash{String, Symbol => Pack}] each pack by the name the steps give
      # @return [Flow]
      # @raise [InvalidOptionsError] for a definition that is not a valid flow, packs that
      #   are not a Hash of {Pack}s, or a step naming a pack not given
      # @raise [ActionNotFoundError] for a step naming an action its pack does not have
      def new(definition, packs)
        definition_json = case definition
                          when String then definition
                          when Hash then JSON.generate(definition)
                          else
                            raise InvalidOptionsError, "flow: the definition must be a Hash or JSON text, " \
                                                       "not #{definition.class}"
                          end
        unless packs.is_a?(Hash)
          raise InvalidOptionsError, "flow: packs must be a Hash of names to Packhost::Pack, not #{packs.class}"
        end

        pairs = packs.map do |name, pack|
          unless pack.is_a?(Pack)
            raise InvalidOptionsError, "flow: pack #{name.to_s.inspect} must be a Packhost::Pack, not #{pack.class}"
          end

          [name.to_s, pack]
        end
        flow = __new(definition_json, pairs)
        # Each run hands the packs (whose current version it runs, so a Pack#reload reaches
        # the flow's later runs) and their adapters to the native side, which keeps no Ruby
        # object.
        flow.instance_variable_set(:@packs, pairs.freeze)
        adapters = pairs.map { |_, pack| pack.send(:host_adapters) }
        flow.instance_variable_set(:@host_adapters, adapters.freeze) if adapters.any?
        flow
      end
    end

    # Runs the flow. The GVL is released while it runs (held while a host function's
    # handler runs, on this thread). Interrupts (Thread#raise and #kill, Ctrl-C) wait for the
    # run to end, or reach a handler; to stop a run from another thread, give it a
    # {CancelToken} and cancel that.
    #
    # @param input [Object] the flow's input: any value JSON.generate takes (a String is a
    #   JSON string, not JSON text); nil for none
    # @param context [Object] any JSON-able value every step's call gets as its context (see
    #   {Pack#call}); nil for none
    # @param cancel [CancelToken, nil] stops the run with {CancelledError} when cancelled
    #   from another thread
    # @return [Hash{String=>Object}] parsed JSON with String keys: "output" (the flow's
    #   output), "steps" (each step in the definition's order: "id", "pack", "action",
    #   "status" ("ok" or "skipped"), "usage" (nil when skipped), "logs", "audit") and
    #   "usage" (the run's totals, with "steps_run", "steps_skipped" and "context")
    # @raise [Error] the failing step's error (its class and code, the failed call's usage,
    #   logs and audit trail), its message naming the flow and the step: as {Pack#call}
    #   raises, {TimeoutError} also when the step's +timeout_ms+ or the flow's ended it, and
    #   {InvalidOptionsError} when a +$from+ without +"default"+ finds no value
    # @raise [TypeError] when +cancel+ is neither nil nor a {CancelToken}
    def run(input = nil, context: nil, cancel: nil)
      input_json = JSON.generate(input)
      call_options = context.nil? ? nil : JSON.generate({"context" => context})
      json = if @host_adapters
               Thread.handle_interrupt(DEFER_INTERRUPTS) do
                 __run(input_json, call_options, cancel, @host_adapters, @packs)
               end
             else
               __run(input_json, call_options, cancel, nil, @packs)
             end
      result = JSON.parse(json)
      result.fetch("steps").each do |step|
        logs = step["logs"]
        next if logs.nil? || logs.empty?

        Packhost.forward_logs(logs.map { |line| LogRecord.from_h(line) }, step.dig("usage", "pack_name"))
      end
      result
    rescue HostFunctionError => e
      Packhost.forward_logs(e.logs, e.usage&.pack_name)
      # Ruby sets an exception's cause only as it is raised: the handler's exception
      # becomes this error's cause here.
      raise e, cause: e.handler_exception
    rescue Error => e
      Packhost.forward_logs(e.logs, e.usage&.pack_name)
      raise
    end

    # @return [String]
    def inspect
      "#<#{self.class} #{name} packs=#{pack_names.join(',')}>"
    end

    # @!method name
    #   @return [String] the flow's name, from its definition
    # @!method description
    #   @return [String] what the flow does, from its definition (may be empty)
    # @!method pack_names
    #   @return [Array<String>] the pack names its steps give, each once, sorted

    private :__run
    private_class_method :__new
  end
end
