# frozen_string_literal: true

# The packhost gem. Build it with `ruby script/stage_gem.rb`, not `gem build` in this folder:
# the gem must carry the core crate's sources, which live outside it (runtime/), and the
# staging script copies them in next to the extension crate.

require_relative "lib/packhost/version"

Gem::Specification.new do |spec|
  spec.name = "packhost"
  spec.version = Packhost::VERSION
  spec.summary = "Run WebAssembly plugins (packs) in a sandbox with hard limits"
  spec.description = <<~TEXT
    packhost runs WebAssembly plugins on the Extism plugin ABI with hard limits on time,
    fuel, memory and I/O, and gives the same results from Ruby, Node, Python and Rust.
    Installing builds the native extension with cargo; no other gem is needed.
  TEXT
  spec.authors = ["packhost contributors"]
  spec.license = "Apache-2.0"
  spec.homepage = "https://github.com/packhost/packhost"
  spec.metadata = {"source_code_uri" => "https://github.com/packhost/packhost/tree/main/bindings/ruby"}
  spec.required_ruby_version = ">= 3.1"

  vendored_core = File.join(__dir__, "ext", "packhost", "runtime", "Cargo.toml")
  unless File.file?(vendored_core)
    raise "packhost.gemspec: the core crate is not vendored here; build the gem with " \
          "`ruby script/stage_gem.rb` (it stages a copy with the core and runs gem build)"
  end

  spec.files = Dir.chdir(__dir__) do
    Dir[
      "packhost.gemspec", "README.md", "lib/**/*.rb",
      "ext/packhost/{extconf.rb,Cargo.toml,Cargo.lock}", "ext/packhost/src/**/*.rs",
      "ext/packhost/runtime/**/*", "ext/packhost/oci/**/*"
    ].select { |path| File.file?(path) }
  end
  spec.require_paths = ["lib"]
  spec.extensions = ["ext/packhost/extconf.rb"]
end
