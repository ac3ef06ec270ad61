# frozen_string_literal: true

# The gem's version: the one version number shared by the core crate, the npm package, the
# Python package and this gem.
module Packhost
  # The version of the packhost gem; the native extension must report the same.
  VERSION = "0.1.0"
end
