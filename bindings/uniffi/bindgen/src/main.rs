//! uniffi's `uniffi-bindgen` command, built from the same uniffi release as the library it
//! reads (`scripts/uniffi-generate.sh` runs it in library mode).

fn main() {
    uniffi::uniffi_bindgen_main()
}
