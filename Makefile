# packhost's one task runner. `make help` lists the verbs; the README's two commands are
# `make demo` (the main job) and `make test` (every test). Both set up what they need.
#
# Everything here builds one profile, `release`: the packages users install must be release
# builds, so the Rust tests, the CLI, the examples and the fuzz targets use it too, and a
# fresh machine compiles wasmtime optimised once instead of twice (Cargo.toml, profiles).

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

TARGET_DIR := $(abspath $(or $(CARGO_TARGET_DIR),$(CURDIR)/target))
WASM_OUT := $(TARGET_DIR)/wasm32-unknown-unknown/release
PACKHOST := $(TARGET_DIR)/release/packhost
# Packs built with packhost-pdk get their manifest embedded; `plain` is a plain extism-pdk
# plugin and ships as cargo built it.
PDK_PACKS := api_errors text_tools hostile bench host_calls_pdk kv_probe webhook_guard
PLAIN_PACKS := plain bench_plain host_calls
# Packs written in other languages on the plain Extism ABI, each with its own toolchain
# (`make setup` installs them): C with Debian's clang, lld and wasi-libc, Zig with the
# compiler from PyPI's `ziglang` under .tools/, AssemblyScript with `asc` from npm.
C_FLAGS := --target=wasm32-wasi -mexec-model=reactor -Os -Wall -Wextra -Werror -Wl,--strip-all
ZIG := PYTHONPATH=$(CURDIR)/.tools/ziglang python3 -m ziglang
ZIG_FLAGS := -target wasm32-freestanding -fno-entry -rdynamic -O ReleaseSmall \
	--cache-dir $(TARGET_DIR)/zig-cache --global-cache-dir $(TARGET_DIR)/zig-global-cache
# AssemblyScript's start function becomes `_initialize`, which Extism hosts run after
# instantiation, and its `abort` is the pack's own (no host lends `env.abort`).
AS_FLAGS := --runtime incremental --optimize --exportStart _initialize --use abort=assembly/index/packAbort

.PHONY: help setup packs cli demo test test-rust test-node test-python test-ruby test-kotlin test-crates test-authoring test-runner lint fmt bench release fuzz

help: ## List the verbs.
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

setup: ## Install the toolchain pieces the build needs (wasm32 target, redis-server, the C, Zig and AssemblyScript toolchains for the packs in those languages).
	@bash scripts/setup.sh

cli: setup
	cargo build --release -p packhost-cli

packs: cli ## Build the sample packs into plugins/dist/ (manifests embedded).
	cargo build --manifest-path plugins/Cargo.toml --release --target wasm32-unknown-unknown
	mkdir -p plugins/dist
	for pack in $(PDK_PACKS); do $(PACKHOST) embed $(WASM_OUT)/$$pack.wasm -o plugins/dist/$$pack.wasm; done
	for pack in $(PLAIN_PACKS); do cp $(WASM_OUT)/$$pack.wasm plugins/dist/$$pack.wasm; done
	# Signatures for the trust cases (tests/conformance/cases/trust.json): text-tools by the
	# trusted test key, hostile by another, and bench given text-tools' (for other bytes).
	$(PACKHOST) sign plugins/dist/text_tools.wasm --key tests/conformance/fixtures/signing/trusted.json
	$(PACKHOST) sign plugins/dist/hostile.wasm --key tests/conformance/fixtures/signing/other.json
	cp plugins/dist/text_tools.wasm.sig plugins/dist/bench.wasm.sig
	# The next version of text-tools (9.0.0, same code), for the hosts' reload tests.
	$(PACKHOST) inspect plugins/dist/text_tools.wasm --json | python3 -c \
		'import json,sys; m=json.load(sys.stdin)["manifest"]; m["version"]="9.0.0"; print(json.dumps(m))' \
		> $(TARGET_DIR)/text_tools_next.json
	$(PACKHOST) embed plugins/dist/text_tools.wasm --manifest $(TARGET_DIR)/text_tools_next.json \
		-o plugins/dist/text_tools_next.wasm
	clang $(C_FLAGS) -o plugins/dist/c_plain.wasm plugins/c-plain/plain.c
	clang $(C_FLAGS) -I pdk/c -o plugins/dist/c_bench.wasm plugins/c-bench/bench.c
	clang $(C_FLAGS) -I pdk/c -o $(TARGET_DIR)/c_text_tools.wasm plugins/c-text-tools/text_tools.c
	$(PACKHOST) embed $(TARGET_DIR)/c_text_tools.wasm -o plugins/dist/c_text_tools.wasm
	python3 scripts/readme_snippet.py "Writing a pack in C" c > $(TARGET_DIR)/c_vowels.c
	clang $(C_FLAGS) -I pdk/c -o $(TARGET_DIR)/c_vowels.wasm $(TARGET_DIR)/c_vowels.c
	$(PACKHOST) embed $(TARGET_DIR)/c_vowels.wasm -o plugins/dist/c_vowels.wasm
	@size=$$(stat -c %s plugins/dist/c_vowels.wasm); test $$size -lt 10240 || \
		{ echo "the README's C count_vowels pack is $$size bytes; the target is under 10 KB"; exit 1; }
	$(PACKHOST) check plugins/dist/c_vowels.wasm --fixtures examples/data/vowels_cases.json
	$(ZIG) build-exe plugins/zig-plain/plain.zig $(ZIG_FLAGS) -femit-bin=plugins/dist/zig_plain.wasm
	rm -f plugins/dist/zig_plain.wasm.o
	cd plugins/as-plain && node_modules/.bin/asc assembly/index.ts --outFile ../dist/as_plain.wasm $(AS_FLAGS)
	cd plugins/as-text-tools && ../as-plain/node_modules/.bin/asc assembly/index.ts \
		--outFile $(TARGET_DIR)/as_text_tools.wasm $(AS_FLAGS)
	$(PACKHOST) embed $(TARGET_DIR)/as_text_tools.wasm -o plugins/dist/as_text_tools.wasm
	mkdir -p $(TARGET_DIR)/as-vowels/assembly $(TARGET_DIR)/as-vowels/packages
	ln -sfn $(CURDIR)/pdk/assemblyscript $(TARGET_DIR)/as-vowels/packages/packhost-pdk
	python3 scripts/readme_snippet.py "Writing a pack in AssemblyScript" ts pdk/assemblyscript/README.md \
		> $(TARGET_DIR)/as-vowels/assembly/index.ts
	cd $(TARGET_DIR)/as-vowels && $(CURDIR)/plugins/as-plain/node_modules/.bin/asc assembly/index.ts \
		--path packages --outFile vowels.wasm --runtime incremental --optimize --exportStart _initialize \
		--use abort=~lib/packhost-pdk/assembly/index/abort
	$(PACKHOST) embed $(TARGET_DIR)/as-vowels/vowels.wasm -o plugins/dist/as_vowels.wasm
	@size=$$(stat -c %s plugins/dist/as_vowels.wasm); test $$size -lt 30720 || \
		{ echo "the AssemblyScript PDK's count_vowels pack is $$size bytes; the target is under 30 KB"; exit 1; }
	$(PACKHOST) check plugins/dist/as_vowels.wasm --fixtures examples/data/vowels_cases.json
	# The text-tools pack in Python and in JavaScript, as WebAssembly components: `packhost
	# build` installs componentize-py into plugins/py-text-tools/.venv on its first run;
	# componentize-js comes from npm (scripts/setup.sh).
	$(PACKHOST) build plugins/py-text-tools
	cp plugins/py-text-tools/dist/text-tools-py.wasm plugins/dist/py_text_tools.wasm
	$(PACKHOST) build plugins/js-text-tools
	cp plugins/js-text-tools/dist/text-tools-js.wasm plugins/dist/js_text_tools.wasm

demo: packs ## The main job: build the packs, run one from the command line, from Rust and through the runner service.
	$(PACKHOST) inspect plugins/dist/api_errors.wasm
	$(PACKHOST) call plugins/dist/api_errors.wasm post --input-file examples/data/stripe_card_declined.json --usage --logs
	@echo
	cargo run --release -q -p packhost --example quickstart
	cargo run --release -q -p packhost --example host_functions
	cargo run --release -q -p packhost --example webhook_guard
	@echo
	bash scripts/runner-example.sh

test: test-rust test-node test-python test-ruby test-kotlin test-crates test-authoring test-runner ## Every test: Rust, each host binding on its installed package (the JVM's on its JAR), the crates, pack authoring, the runner's MCP tools.

test-rust: packs lint ## Rust: unit, conformance, sandbox, contract and CLI tests, and a benchmark smoke run.
	cargo test --release --workspace --exclude packhost-node --exclude packhost-python --exclude packhost-ruby --exclude packhost-uniffi-bindgen
	cargo test --release -p packhost --benches

FUZZ_SECONDS ?= 60
fuzz: packs ## Run each fuzz target (load, abi, differential) for FUZZ_SECONDS s (default 60); a finding is kept in fuzz/regressions/.
	cargo run --release -q -p packhost-fuzz -- all --seconds $(FUZZ_SECONDS)

release: packs ## Build every package users install (wheel, npm tarball, gem, JAR, crates, CLI) into target/dist.
	bash scripts/release.sh

bench: packs ## Time packhost against the official SDKs and bare wasmtime; writes BENCHMARKS.md (slow: a release build).
	bash scripts/bench.sh

# Each binding's ci.sh builds the package users install (release profile), installs it and
# runs the binding's tests on it; its crate is linted after, once the toolchain is there.

test-node: packs ## Node binding tests (node --test) on the release addon; the npm tarball installed.
	bash bindings/node/ci.sh
	cargo clippy -p packhost-node --all-targets -- -D warnings

test-python: packs ## Python binding tests (pytest) on the installed wheel; `pip install .` checked.
	bash bindings/python/ci.sh
	cargo clippy -p packhost-python --all-targets -- -D warnings

test-ruby: packs ## Ruby binding tests (minitest) on the installed gem.
	bash bindings/ruby/ci.sh
	cargo clippy -p packhost-ruby --all-targets -- -D warnings

test-kotlin: packs ## JVM host: the Kotlin conformance runner and tests on the built JAR, the Java and Kotlin examples; generated bindings checked for drift.
	bash bindings/kotlin/ci.sh

test-runner: packs ## The runner's MCP tools through the official MCP Python SDK, over stdio and HTTP (its other tests are Rust tests).
	PACKHOST=$(PACKHOST) "$$(bash bindings/python/setup-venv.sh)/bin/python" -m pytest runner/tests -q -ra

test-crates: packs ## The crates as packaged, `cargo install` of the CLI, and a user's crate on packhost.
	bash scripts/crates-check.sh

test-authoring: packs ## `packhost new`, `build`, `test` and `check` in Rust, C and AssemblyScript; the README's pack examples.
	bash scripts/authoring-check.sh

lint: setup ## rustfmt and clippy, warnings denied.
	cargo fmt --all -- --check
	cargo fmt --manifest-path plugins/Cargo.toml --all -- --check
	cargo clippy --workspace --exclude packhost-node --exclude packhost-python --exclude packhost-ruby --exclude packhost-uniffi-bindgen --all-targets -- -D warnings
	cargo clippy -p packhost-uniffi-bindgen -- -D warnings

fmt: ## Format all Rust code.
	cargo fmt --all
	cargo fmt --manifest-path plugins/Cargo.toml --all
