# frozen_string_literal: true

# libextism on the host-function row of `make bench`: a 64-byte round trip through `reverse`
# on host_calls.wasm, through Ruby's standard Fiddle, with the calls the official `extism`
# gem makes through the ffi gem (a function with a C callback, a plugin, a call). LIBEXTISM
# names the library (../shared/anchors/setup.sh prints it).
#
# Usage: LIBEXTISM=... ruby extism_host_fn.rb HOST_CALLS.wasm
require "fiddle"
require "fiddle/import"

module LibExtism
  extend Fiddle::Importer
  dlload ENV.fetch("LIBEXTISM")
  extern "void* extism_function_new(char*, void*, unsigned long, void*, unsigned long, void*, void*, void*)"
  extern "void extism_function_set_namespace(void*, char*)"
  extern "void* extism_plugin_new(void*, unsigned long, void*, unsigned long, char, void*)"
  extern "int extism_plugin_call(void*, char*, void*, unsigned long)"
  extern "unsigned long extism_plugin_output_length(void*)"
  extern "void* extism_plugin_output_data(void*)"
  extern "char* extism_plugin_error(void*)"
  extern "void* extism_current_plugin_memory(void*)"
  extern "unsigned long long extism_current_plugin_memory_length(void*, unsigned long long)"
  extern "unsigned long long extism_current_plugin_memory_alloc(void*, unsigned long long)"
end

# ExtismVal: a 4-byte type tag, padding, then an 8-byte union; offsets are i64.
VAL_SIZE = 16
I64 = 1
CALLBACK_TYPES = [Fiddle::TYPE_VOIDP, Fiddle::TYPE_VOIDP, Fiddle::TYPE_SIZE_T, Fiddle::TYPE_VOIDP,
                  Fiddle::TYPE_SIZE_T, Fiddle::TYPE_VOIDP].freeze

reverse = Fiddle::Closure::BlockCaller.new(Fiddle::TYPE_VOID, CALLBACK_TYPES) do |plugin, inputs, _, outputs, _, _|
  offset = Fiddle::Pointer.new(inputs.to_i + 8)[0, 8].unpack1("q<")
  base = LibExtism.extism_current_plugin_memory(plugin).to_i
  length = LibExtism.extism_current_plugin_memory_length(plugin, offset)
  reversed = Fiddle::Pointer.new(base + offset)[0, length].reverse
  out = LibExtism.extism_current_plugin_memory_alloc(plugin, length)
  Fiddle::Pointer.new(base + out)[0, length] = reversed
  Fiddle::Pointer.new(outputs.to_i + 8)[0, 8] = [out].pack("q<")
end
unused = Fiddle::Closure::BlockCaller.new(Fiddle::TYPE_VOID, CALLBACK_TYPES) { |*| nil }

i64 = [I64].pack("l<")
functions = [["reverse", reverse], ["add", unused], ["fail", unused], ["context_echo", unused]].map do |name, callback|
  function = LibExtism.extism_function_new(name, i64, 1, i64, 1, callback, nil, nil)
  LibExtism.extism_function_set_namespace(function, "extism:host/user")
  function
end
table = functions.map(&:to_i).pack("Q*")

wasm = File.binread(ARGV.fetch(0))
errmsg = Fiddle::Pointer.malloc(Fiddle::SIZEOF_VOIDP)
plugin = LibExtism.extism_plugin_new(wasm, wasm.bytesize, table, functions.size, 0, errmsg)
abort "ruby-extism: plugin_new failed" if plugin.null?

data = ("hello world " * 6)[0, 64]
call = lambda do
  rc = LibExtism.extism_plugin_call(plugin, "reverse_via_host", data, data.bytesize)
  raise LibExtism.extism_plugin_error(plugin).to_s if rc != 0

  LibExtism.extism_plugin_output_data(plugin).to_s(LibExtism.extism_plugin_output_length(plugin))
end
abort "ruby-extism: wrong answer" unless call.call == data.reverse
calls = 20_000
rounds = Array.new(5) do
  start = Process.clock_gettime(Process::CLOCK_MONOTONIC)
  calls.times { call.call }
  (Process.clock_gettime(Process::CLOCK_MONOTONIC) - start) / calls
end
printf("ruby-extism bytes=64 per_call_us=%.2f\n", rounds.sort[2] * 1e6)
