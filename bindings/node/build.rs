//! Build script: sets the linker flags a Node addon needs (undefined napi symbols resolved at load).

fn main() {
    napi_build::setup();
}
