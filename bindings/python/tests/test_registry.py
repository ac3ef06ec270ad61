"""Packs from an OCI registry, as a Python host meets them: push, pull, and ``Pack`` given an
``oci://`` reference, against a real registry (docker-registry on loopback, started by
scripts/test-registry.sh) with the pack store in a temporary folder."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

import packhost
from conftest import REPO_ROOT, pack_path

TRUSTED_KEY = "ed25519:0sLITBOFnLRkcIZCvSK4e6fXBIs8B7VBadXrC+4Sh6k="
TRUSTING = {"trusted_keys": [TRUSTED_KEY], "require_signature": True}
SCRIPT = REPO_ROOT / "scripts" / "test-registry.sh"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A running registry's address; the module's loads and pulls use a store of its own."""
    scratch = tmp_path_factory.mktemp("registry")
    folder = scratch / "registry"
    address = subprocess.run(
        ["bash", str(SCRIPT), "start", str(folder)], check=True, capture_output=True, text=True
    ).stdout.strip()
    previous = os.environ.get("PACKHOST_STORE")
    os.environ["PACKHOST_STORE"] = str(scratch / "store")
    try:
        yield address
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop", str(folder)], check=True)
        if previous is None:
            del os.environ["PACKHOST_STORE"]
        else:
            os.environ["PACKHOST_STORE"] = previous


def registry_blob(address: str, digest: str) -> Path:
    """Where the registry started for this module keeps the blob ``digest``."""
    store = Path(os.environ["PACKHOST_STORE"]).parent / "registry" / "data"
    hex_digest = digest.removeprefix("sha256:")
    return store / "docker/registry/v2/blobs/sha256" / hex_digest[:2] / hex_digest / "data"


def test_a_signed_pack_pushed_from_python_loads_by_reference_under_a_trust_policy(
    registry: str,
) -> None:
    reference = f"{registry}/packs/text-tools:1.0"
    pushed = packhost.push(pack_path("text_tools"), reference)
    assert pushed["signed"] is True
    assert pushed["manifest_digest"].startswith("sha256:")
    pack = packhost.Pack(f"oci://{reference}", TRUSTING)
    assert f"sha256:{pack.id}" == pushed["pack_digest"]
    assert pack.call("uppercase", "from python").text == "FROM PYTHON"


def test_pull_stores_the_pack_with_its_signature_and_pins_the_reference(registry: str) -> None:
    reference = f"{registry}/packs/pulled:1"
    pushed = packhost.push(pack_path("text_tools"), reference)
    pulled = packhost.pull(f"oci://{reference}")
    assert pulled["pack_digest"] == pushed["pack_digest"]
    assert pulled["signed"] is True
    assert Path(pulled["path"]).is_file() and Path(pulled["path"] + ".sig").is_file()


def test_packs_signed_by_an_untrusted_key_or_unsigned_are_refused(registry: str) -> None:
    hostile = f"{registry}/packs/hostile:1"
    packhost.push(pack_path("hostile"), hostile)
    with pytest.raises(packhost.UntrustedPack, match="not among trusted_keys") as refused:
        packhost.Pack(f"oci://{hostile}", TRUSTING)
    assert refused.value.code == "untrusted_pack"
    unsigned = f"{registry}/packs/api-errors:1"
    assert packhost.push(pack_path("api_errors"), unsigned)["signed"] is False
    with pytest.raises(packhost.UntrustedPack, match="not signed"):
        packhost.Pack(f"oci://{unsigned}", TRUSTING)


def test_a_blob_tampered_with_in_the_registry_is_refused_with_a_digest_error(
    registry: str,
) -> None:
    reference = f"{registry}/packs/tampered:1"
    pushed = packhost.push(pack_path("plain"), reference)
    registry_blob(registry, pushed["pack_digest"]).write_bytes(pack_path("hostile").read_bytes())
    with pytest.raises(packhost.InvalidPack, match="digest"):
        packhost.pull(reference)
    with pytest.raises(packhost.InvalidPack):
        packhost.Pack(f"oci://{reference}")


def test_what_the_registry_does_not_hold_is_an_io_error(registry: str) -> None:
    with pytest.raises(packhost.Io):
        packhost.pull(f"{registry}/packs/nothing:1")
    with pytest.raises(packhost.Io):
        packhost.push(pack_path("plain"), "not a reference!")
