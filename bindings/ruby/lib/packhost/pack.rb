# frozen_string_literal: true

# Packhost::Pack: load a pack and call its actions. The native extension defines the class
# and its low-level methods; this file adds the idiomatic API over them.
module Packhost
  # A loaded, validated pack. Safe to share between threads: concurrent calls run in
  # parallel (each gets its own instance) and release the GVL while the pack runs, except
  # calls the core expects to take a few microseconds, which keep it.
  #
  # @example Count vowels with the text_tools sample pack
  #   pack = Packhost::Pack.load("plugins/dist/text_tools.wasm", limits: {timeout_ms: 250})
  #   result = pack.call("count_vowels", {text: "hello world"}, json: true)
  #   result.output               # => {"count"=>3, "vowels"=>"eoo"}
  #   result.usage.fuel_consumed  # => 123456
  class Pack
    # The first bytes of every WebAssembly module.
    WASM_MAGIC = "\0asm".b.freeze
    private_constant :WASM_MAGIC

    class << self
      # Loads a pack from a `.wasm` file, from module bytes, or from an Extism manifest (a
      # Hash such as +{wasm: [{path: "plugin.wasm"}], config: {...}}+; see the README's
      # "Coming from Extism").
      #
      # A Pathname, or a String that is neither binary (ASCII-8BIT, as File.binread returns)
      # nor starts with the WebAssembly magic bytes, is read as a path; any other String is
      # the module itself.
      #
      # Options are handed to the core unchanged (as JSON), which applies its defaults and
      # rejects unknown fields. See the core's PackOptions: +limits+ (+memory_bytes+,
      # +timeout_ms+, +fuel+, +max_input_bytes+, +max_output_bytes+, +max_var_bytes+),
      # +allowed_hosts+, +allowed_paths+, +config+, +log_level+, +allow_wasi+, +isolation+ (+"call"+, the default: no
      # instance serves two calls; +"context"+; +"pack"+), +kv+ (key-value storage for packs
      # whose manifest asks for it: +backend+, +path+ and its quotas; nil, the default: not
      # granted). Give them as keywords, as a Hash (string keys are fine, e.g. straight from
      # a JSON or YAML config file), or both.
      #
      # Host functions the pack imports are lent with +functions:+, a Hash of import names
      # to handlers (see {HostFunction}), with the block ({HostFunctions}), or both. Every
      # function the pack imports must be lent; functions it does not import are ignored.
      #
      # @example
      #   Packhost::Pack.load("text_tools.wasm", limits: {timeout_ms: 200, fuel: nil})
      #   Packhost::Pack.load(File.binread("text_tools.wasm"), {"config" => {"greeting" => "Hi"}})
      #   Packhost::Pack.load("host_calls.wasm", functions: {"reverse" => ->(input) { input.reverse }, ...})
      #
      # @param source [String, Pathname, Hash] a path, an +oci://registry/name:tag+ reference
      #   (pulled into the local store once, then pinned), the module bytes, or an Extism manifest
      # @param options [Hash, nil] load options
      # @param functions [Hash{String, Symbol => #call, HostFunction}, nil] host functions
      # @param keywords [Hash] more load options, e.g. `limits: {timeout_ms: 200}`
      # @yieldparam host [HostFunctions] lend more functions with +host.function(name) { ... }+
      # @return [Pack]
      # @raise [InvalidPackError] also when the pack imports a function that is not lent, or
      #   lent with another signature
      # @raise [InvalidOptionsError] also for a function lent twice under one name
      # @raise [InvalidManifestError, HostDeniedError, IOError] when the pack cannot be loaded
      # @raise [UntrustedPackError] when the trust policy (trusted_keys, require_signature)
      #   refuses it
      def load(source, options = nil, functions: nil, **keywords)
        options_json = JSON.generate(options.nil? ? keywords : options.merge(keywords))
        lent = functions.nil? ? [] : HostFunction.pairs(functions)
        if block_given?
          host = HostFunctions.new
          yield host
          lent += host.pairs
        end
        specs, adapters = HostFunction.lend(lent)
        pack = if source.is_a?(Hash)
                 __load_extism_manifest(JSON.generate(source), options_json, specs)
               elsif module_bytes?(source)
                 __load_bytes(source, options_json, specs)
               else
                 __load_file(source.to_s, options_json, specs)
               end
        # The pack hands its adapters to every call: the native side keeps no Ruby object.
        pack.instance_variable_set(:@host_adapters, adapters) unless adapters.empty?
        pack
      end

      private

      def module_bytes?(source)
        return false if source.respond_to?(:to_path) && !source.is_a?(String)

        source = String(source)
        source.encoding == Encoding::BINARY || source.byteslice(0, 4).b == WASM_MAGIC
      end
    end

    # Calls an action.
    #
    # The GVL is released while the pack runs (unless the core expects the call to take a
    # few microseconds) and held while a host function's handler runs, on this thread; a
    # handler may call packs itself, this one included.
    # Interrupts (Thread#raise and #kill, Ctrl-C) wait for the call to end, or reach a handler.
    # To stop a running call from another thread, make it with a {CancelToken} and cancel
    # that.
    #
    # @example Stop a call from another thread
    #   token = Packhost::CancelToken.new
    #   Thread.new { sleep 0.5; token.cancel }
    #   pack.call("crunch", input, cancel: token)  # raises Packhost::CancelledError after 0.5 s
    #
    # @param action [String, Symbol] the action (export) name
    # @param input [String, Hash, Array, Object] a String is sent as its bytes; anything else
    #   is sent as its JSON
    # @param json [Boolean] parse the output as JSON into {CallResult#output}
    # @param context [Object] any JSON-able value the pack's host functions see as
    #   {HostCall#context} during this call (a tenant, a request id); nil for none
    # @param cancel [CancelToken, nil] ends the call with {CancelledError} when cancelled from
    #   another thread while it runs; a token already cancelled fails the call at once
    # @return [CallResult] the output with the call's usage, log lines and audit trail
    # @raise [Error] a subclass per failure: {ActionNotFoundError}, {TimeoutError},
    #   {OutOfFuelError}, {CancelledError}, {MemoryLimitError}, {InputTooLargeError},
    #   {OutputTooLargeError}, {HostDeniedError}, {TrapError}, {PluginError},
    #   {HostFunctionError}, {QuotaExceededError} or {IOError}; each carries the call's
    #   usage, logs and audit trail. A +throw+ out of a handler, or an exception outside
    #   StandardError (Interrupt, SystemExit), ends the call and then goes on as it began.
    # @raise [TypeError] when +cancel+ is neither nil nor a {CancelToken}
    def call(action, input = "", json: false, context: nil, cancel: nil)
      action = action.to_s
      input = Packhost.encode_input(input)
      call_options = context.nil? ? nil : JSON.generate({"context" => context})
      output, usage, logs, audit = if @host_adapters
                                     Thread.handle_interrupt(DEFER_INTERRUPTS) do
                                       __call(action, input, call_options, cancel, @host_adapters)
                                     end
                                   else
                                     __call(action, input, call_options, cancel, nil)
                                   end
      if logs
        logs = logs.map { |line| LogRecord.from_h(line) }.freeze
        Packhost.forward_logs(logs, name)
      end
      CallResult.new(output, usage, logs || NO_LOGS, json: json, audit: Packhost.freeze_audit(audit))
    rescue HostFunctionError => e
      Packhost.forward_logs(e.logs, name)
      # Ruby sets an exception's cause only as it is raised: the handler's exception
      # becomes this error's cause here.
      raise e, cause: e.handler_exception
    rescue Error => e
      Packhost.forward_logs(e.logs, name)
      raise
    end

    # Runs the pack's `pre` hook, conventionally over an outgoing request as JSON.
    #
    # @param input (see #call)
    # @param json (see #call)
    # @param context (see #call)
    # @param cancel (see #call)
    # @return (see #call)
    # @raise [ActionNotFoundError] when the pack has no `pre`; else as {#call}
    def pre(input = "", json: false, context: nil, cancel: nil)
      call("pre", input, json: json, context: context, cancel: cancel)
    end

    # Runs the pack's `post` hook, conventionally over a response as JSON.
    #
    # @param input (see #call)
    # @param json (see #call)
    # @param context (see #call)
    # @param cancel (see #call)
    # @return (see #call)
    # @raise [ActionNotFoundError] when the pack has no `post`; else as {#call}
    def post(input = "", json: false, context: nil, cancel: nil)
      call("post", input, json: json, context: context, cancel: cancel)
    end

    # Swaps in the next version of this pack, loaded with the same options and host
    # functions: calls already running (on any thread) finish on the old version, every later
    # call gets the new one. Loading releases the GVL.
    #
    # @param source [String, Pathname] a `.wasm` path, an `oci://` reference, or the
    #   module's bytes (a binary String)
    # @return [Pack] self
    # @raise [InvalidPackError] when it does not load or is another pack (the old version
    #   stays); else as {Pack.load}
    def reload(source)
      raise TypeError, "reload takes a path or the module's bytes" if source.is_a?(Hash)

      if self.class.send(:module_bytes?, source)
        __reload_bytes(String(source))
      else
        __reload_file(source.to_s)
      end
      @manifest = nil
      self
    end

    # @return [Hash] the pack's manifest (name, version, description, actions,
    #   capabilities), synthesized from its exports when the pack carries none
    def manifest
      @manifest ||= JSON.parse(__manifest_json).freeze
    end

    # @return [String] the pack's name from its manifest
    def name
      manifest["name"]
    end

    # @return [String] the pack's own version from its manifest
    def version
      manifest["version"]
    end

    # @param action [String, Symbol]
    # @return [Boolean] whether the pack has this action
    def action?(action)
      actions.include?(action.to_s)
    end

    # Counts and totals of this pack's calls since it was loaded, failed calls included,
    # kept by the core. A fresh Hash with String keys on every read:
    #
    # - "calls" [Integer]: calls made, failed ones included
    # - "errors" [Hash{String=>Integer}]: calls that failed, by error code
    # - "wall_time_us", "fuel_consumed", "input_bytes", "output_bytes", "host_calls",
    #   "kv_ops", "http_requests", "http_bytes_sent", "http_bytes_received" [Integer]: sums
    #   of the calls' {Usage} fields of the same names
    #
    # Calls refused before they ran (an unknown action, an input over the limit, a
    # {CancelToken} already cancelled) are not counted.
    #
    # @example
    #   pack.stats  # => {"calls"=>3, "errors"=>{"plugin_error"=>1}, "wall_time_us"=>412, ...}
    #
    # @return [Hash{String=>Integer, Hash{String=>Integer}}]
    def stats
      JSON.parse(__stats_json)
    end

    # @return [String]
    def inspect
      "#<#{self.class} #{name} #{version} id=#{id[0, 12]}>"
    end

    # @api private
    # @return [Array<Proc>, nil] the adapters of the host functions lent to this pack, which
    #   {#call} (and a {Flow} running this pack) hands to the native extension; nil when none
    attr_reader :host_adapters

    # @!method id
    #   @return [String] the SHA-256 of the module bytes in lowercase hex: the pack's identity
    # @!method actions
    #   @return [Array<String>] the callable action names, `pre` and `post` included
    # @!method embedded_manifest?
    #   @return [Boolean] true when the manifest came from the module's own section
    # @!method allowed_hosts
    #   @return [Array<String>] the HTTP host patterns the pack may reach: what it asked
    #     for, narrowed by the `allowed_hosts` option (a plugin without a manifest gets the
    #     whole option)

    private :__call, :__manifest_json, :__stats_json, :host_adapters
    private_class_method :__load_bytes, :__load_file, :__load_extism_manifest
  end
end
