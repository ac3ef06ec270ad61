"""Packs in OCI registries: :func:`push` publishes one, :func:`pull` brings one into the
local store; ``Pack("oci://registry/name:tag")`` loads one by reference."""

from __future__ import annotations

import json
import os
from typing import Any, Dict, Optional, Union

from ._native import pull_json, push_json

PathLike = Union[str, "os.PathLike[str]"]


def push(path: PathLike, reference: str, *, signature: Optional[PathLike] = None) -> Dict[str, Any]:
    """Publishes the pack at ``path`` to an OCI registry as a Wasm artifact, with its
    signature (``signature``, else ``PATH.sig`` when it exists), without holding the GIL.

    ``reference`` is ``REGISTRY/NAME:TAG`` (``oci://`` optional). Credentials come from
    ``PACKHOST_REGISTRY_USERNAME`` and ``PACKHOST_REGISTRY_PASSWORD`` (or
    ``PACKHOST_REGISTRY_TOKEN``), for the registry ``PACKHOST_REGISTRY_HOST`` names. Returns ``reference``, ``manifest_digest``, ``pack_digest``
    and ``signed``; raises :class:`packhost.Io` when the registry cannot be reached or
    refuses, :class:`packhost.UntrustedPack` for a signature of other bytes."""
    sig = None if signature is None else os.fspath(signature)
    pushed: Dict[str, Any] = json.loads(push_json(os.fspath(path), reference, sig))
    return pushed


def pull(reference: str) -> Dict[str, Any]:
    """Pulls a pack into the local store (``PACKHOST_STORE``) with every digest checked, and
    pins the reference to it, so that ``Pack("oci://…")`` then loads it with no network.

    Returns ``reference``, ``manifest_digest``, ``pack_digest``, ``path`` and ``signed``;
    raises :class:`packhost.InvalidPack` when the registry's bytes do not match their
    digest, :class:`packhost.Io` when it cannot be reached or has no such reference."""
    pulled: Dict[str, Any] = json.loads(pull_json(reference))
    return pulled
