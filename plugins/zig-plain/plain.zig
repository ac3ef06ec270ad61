//! A test pack written in Zig on the plain Extism ABI, with no PDK: the imports are declared
//! here, and input and output move through kernel memory 8 bytes and then 1 byte at a time.
//! Built by `make packs` with the Zig compiler from PyPI's `ziglang` package (pinned in
//! scripts/setup.sh, installed under .tools/) for wasm32-freestanding.
//!
//! Actions: greet (config), count (vars), shout (logs), fail (errors), fetch (HTTP),
//! reverse (a host function). Cases: tests/conformance/cases/zig.json.

const std = @import("std");

extern "extism:host/env" fn input_length() u64;
extern "extism:host/env" fn input_load_u8(index: u64) u8;
extern "extism:host/env" fn input_load_u64(index: u64) u64;
extern "extism:host/env" fn alloc(size: u64) u64;
extern "extism:host/env" fn free(block: u64) void;
extern "extism:host/env" fn length(block: u64) u64;
extern "extism:host/env" fn load_u8(offset: u64) u8;
extern "extism:host/env" fn load_u64(offset: u64) u64;
extern "extism:host/env" fn store_u8(offset: u64, byte: u8) void;
extern "extism:host/env" fn store_u64(offset: u64, word: u64) void;
extern "extism:host/env" fn output_set(block: u64, size: u64) void;
extern "extism:host/env" fn error_set(block: u64) void;
extern "extism:host/env" fn config_get(key: u64) u64;
extern "extism:host/env" fn var_get(key: u64) u64;
extern "extism:host/env" fn var_set(key: u64, value: u64) void;
extern "extism:host/env" fn log_info(message: u64) void;
extern "extism:host/env" fn log_warn(message: u64) void;
extern "extism:host/env" fn http_request(request: u64, body: u64) u64;

// The suite's host function, under another Zig name than the action that calls it.
const host_reverse = @extern(*const fn (u64) callconv(.C) u64, .{
    .name = "reverse",
    .library_name = "extism:host/user",
});

/// Everything an action allocates, given back when it returns (`release`), so an instance
/// that serves many calls does not grow.
var arena = std.heap.ArenaAllocator.init(std.heap.wasm_allocator);
const allocator = arena.allocator();

fn release() void {
    _ = arena.reset(.retain_capacity);
}

/// Copies the kernel bytes at `offset` into `out`, 8 bytes at a time.
fn loadBlock(offset: u64, out: []u8) void {
    var i: usize = 0;
    while (i + 8 <= out.len) : (i += 8) {
        std.mem.writeInt(u64, out[i..][0..8], load_u64(offset + i), .little);
    }
    while (i < out.len) : (i += 1) {
        out[i] = load_u8(offset + i);
    }
}

/// A new kernel block holding `data`, written 8 bytes at a time.
fn storeBlock(data: []const u8) u64 {
    const offset = alloc(data.len);
    var i: usize = 0;
    while (i + 8 <= data.len) : (i += 8) {
        store_u64(offset + i, std.mem.readInt(u64, data[i..][0..8], .little));
    }
    while (i < data.len) : (i += 1) {
        store_u8(offset + i, data[i]);
    }
    return offset;
}

/// The bytes of the kernel block at `offset` (the caller frees them); null for offset 0.
fn blockBytes(offset: u64) ?[]u8 {
    if (offset == 0) return null;
    const bytes = allocator.alloc(u8, @intCast(length(offset))) catch @panic("out of memory");
    loadBlock(offset, bytes);
    return bytes;
}

fn input() []u8 {
    const bytes = allocator.alloc(u8, @intCast(input_length())) catch @panic("out of memory");
    var i: usize = 0;
    while (i + 8 <= bytes.len) : (i += 8) {
        std.mem.writeInt(u64, bytes[i..][0..8], input_load_u64(i), .little);
    }
    while (i < bytes.len) : (i += 1) {
        bytes[i] = input_load_u8(i);
    }
    return bytes;
}

fn output(data: []const u8) void {
    output_set(storeBlock(data), data.len);
}

fn print(comptime format: []const u8, args: anytype) []u8 {
    return std.fmt.allocPrint(allocator, format, args) catch @panic("out of memory");
}

/// "<greeting>, <input>!", the greeting from config key `greeting` (default "Hello").
export fn greet() i32 {
    defer release();
    const name = input();
    // The host takes the key's block.
    const greeting = blockBytes(config_get(storeBlock("greeting")));
    output(print("{s}, {s}!", .{ greeting orelse "Hello", name }));
    return 0;
}

/// Counts its calls in var `count` (kept while the instance is) and returns the count.
export fn count() i32 {
    defer release();
    const previous = blockBytes(var_get(storeBlock("count")));
    const seen = if (previous) |text| std.fmt.parseInt(u64, text, 10) catch 0 else 0;
    const text = print("{d}", .{seen + 1});
    var_set(storeBlock("count"), storeBlock(text));
    output(text);
    return 0;
}

/// Logs its input at info, a warning after it, and returns the input in capitals.
export fn shout() i32 {
    defer release();
    const text = input();
    log_info(storeBlock(text));
    log_warn(storeBlock("shouting"));
    for (text) |*byte| byte.* = std.ascii.toUpper(byte.*);
    output(text);
    return 0;
}

/// Fails with return code 3 and the message "refused: <input>".
export fn fail() i32 {
    defer release();
    error_set(storeBlock(print("refused: {s}", .{input()})));
    return 3;
}

/// GETs the URL in the input and returns the response body.
export fn fetch() i32 {
    defer release();
    const request = print("{{\"url\":\"{s}\",\"method\":\"GET\"}}", .{input()});
    output(blockBytes(http_request(storeBlock(request), 0)) orelse "");
    return 0;
}

/// Returns what the host's `reverse` makes of the input.
export fn reverse() i32 {
    defer release();
    output(blockBytes(host_reverse(storeBlock(input()))) orelse "");
    return 0;
}
