# frozen_string_literal: true

# Packs from an OCI registry, as a Ruby host meets them: Packhost.push, Packhost.pull, and
# Pack.load of an oci:// reference, against a real registry (docker-registry on loopback,
# started by scripts/test-registry.sh) with the pack store in a temporary folder.

require_relative "test_helper"
require "fileutils"
require "open3"
require "tmpdir"

class RegistryTest < Minitest::Test
  TRUSTED_KEY = "ed25519:0sLITBOFnLRkcIZCvSK4e6fXBIs8B7VBadXrC+4Sh6k="
  TRUSTING = {trusted_keys: [TRUSTED_KEY], require_signature: true}.freeze
  SCRIPT = File.join(PackhostTestSupport::REPO_ROOT, "scripts", "test-registry.sh")

  # One registry for the class, started by the first test that needs it and stopped when
  # the run ends; the loads and pulls of this process use a store in the same scratch folder.
  def self.registry
    @registry ||= begin
      scratch = Dir.mktmpdir("packhost-ruby-registry-")
      folder = File.join(scratch, "registry")
      address, status = Open3.capture2("bash", SCRIPT, "start", folder)
      raise "the test registry did not start" unless status.success?

      ENV["PACKHOST_STORE"] = File.join(scratch, "store")
      Minitest.after_run do
        system("bash", SCRIPT, "stop", folder)
        FileUtils.rm_rf(scratch)
      end
      {address: address.strip, folder: folder}
    end
  end

  def address = self.class.registry[:address]

  def registry_blob(digest)
    hex = digest.delete_prefix("sha256:")
    File.join(self.class.registry[:folder], "data/docker/registry/v2/blobs/sha256", hex[0, 2], hex, "data")
  end

  def test_a_signed_pack_pushed_from_ruby_loads_by_reference_under_a_trust_policy
    reference = "#{address}/packs/text-tools:1.0"
    pushed = Packhost.push(sample_pack("text_tools"), reference)
    assert_equal true, pushed["signed"]
    assert_match(/\Asha256:[0-9a-f]{64}\z/, pushed["manifest_digest"])
    pack = Packhost::Pack.load("oci://#{reference}", TRUSTING)
    assert_equal pushed["pack_digest"], "sha256:#{pack.id}"
    assert_equal "FROM RUBY", pack.call("uppercase", "from ruby").output
  end

  def test_pull_stores_the_pack_with_its_signature_and_pins_the_reference
    reference = "#{address}/packs/pulled:1"
    pushed = Packhost.push(sample_pack("text_tools"), reference)
    pulled = Packhost.pull("oci://#{reference}")
    assert_equal pushed["pack_digest"], pulled["pack_digest"]
    assert_equal true, pulled["signed"]
    assert File.file?(pulled["path"]) && File.file?("#{pulled["path"]}.sig")
  end

  def test_packs_signed_by_an_untrusted_key_or_unsigned_are_refused
    hostile = "#{address}/packs/hostile:1"
    Packhost.push(sample_pack("hostile"), hostile)
    error = assert_raises(Packhost::UntrustedPackError) { Packhost::Pack.load("oci://#{hostile}", TRUSTING) }
    assert_equal "untrusted_pack", error.code
    assert_match(/not among trusted_keys/, error.message)
    unsigned = "#{address}/packs/api-errors:1"
    assert_equal false, Packhost.push(sample_pack("api_errors"), unsigned)["signed"]
    error = assert_raises(Packhost::UntrustedPackError) { Packhost::Pack.load("oci://#{unsigned}", TRUSTING) }
    assert_match(/not signed/, error.message)
  end

  def test_a_blob_tampered_with_in_the_registry_is_refused_with_a_digest_error
    reference = "#{address}/packs/tampered:1"
    pushed = Packhost.push(sample_pack("plain"), reference)
    File.binwrite(registry_blob(pushed["pack_digest"]), File.binread(sample_pack("hostile")))
    error = assert_raises(Packhost::InvalidPackError) { Packhost.pull(reference) }
    assert_match(/digest/, error.message)
    assert_raises(Packhost::InvalidPackError) { Packhost::Pack.load("oci://#{reference}") }
  end

  def test_what_the_registry_does_not_hold_is_an_io_error
    assert_raises(Packhost::IOError) { Packhost.pull("#{address}/packs/nothing:1") }
    assert_raises(Packhost::IOError) { Packhost.push(sample_pack("plain"), "not a reference!") }
  end
end
