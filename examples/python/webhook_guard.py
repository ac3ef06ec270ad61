"""The webhook_guard pack from Python: drop retried deliveries and rate-limit each tenant,
with the state in key-value storage (an SQLite file that outlives the process).

Run from the repository root after `make packs` and installing the package
(`pip install .`):

    python examples/python/webhook_guard.py            # the pack from plugins/dist
    python examples/python/webhook_guard.py DIR        # from another folder
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import packhost

REPO = Path(__file__).resolve().parents[2]


def deliver(pack: packhost.Pack, tenant: str, event_id: str, timestamp: int) -> packhost.CallResult:
    delivery = {"id": event_id, "timestamp": timestamp, "payload": {"amount": 5}}
    return pack.call("deliver", delivery, context={"tenant": tenant})


def main(packs: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="webhook-guard-") as tmp:
        # Load options are the core's PackOptions; the state lives in one SQLite file.
        options = {
            "kv": {"backend": "sqlite", "path": str(Path(tmp) / "webhook-guard.sqlite3")},
            "config": {"per_minute": "2"},  # no `endpoint`: nothing is forwarded over HTTP
            "secrets": {"endpoint_token": "tok_example"},
        }
        pack = packhost.Pack(packs / "webhook_guard.wasm", options)

        deliveries = [
            ("acme", "evt_1", 1764000000),
            ("acme", "evt_1", 1764000001),  # a retry of the first
            ("acme", "evt_2", 1764000002),
            ("acme", "evt_3", 1764000003),  # the third this minute, over per_minute
            ("globex", "evt_1", 1764000004),  # another tenant: its own ids and window
        ]
        results = [deliver(pack, *delivery) for delivery in deliveries]
        statuses = []
        for (tenant, event_id, _), result in zip(deliveries, results):
            verdict = result.json()
            statuses.append(verdict["status"])
            print(f"{tenant:<6} {event_id} -> {verdict['status']} ({verdict['in_window']} this minute)")
        expected = ["accepted", "duplicate", "accepted", "rate_limited", "accepted"]
        if statuses != expected:
            raise AssertionError(f"expected statuses {expected}, got {statuses}")

        # Every capability a call used, in order: key-value operations, keys, outcomes.
        first = results[0]
        print("audit of the first call:")
        for entry in first.audit:
            print(f"  {entry['capability']} {entry['operation']} {entry['target']} {entry['outcome']}")
        print(f"  kv_ops {first.usage.kv_ops}")

        # A new load, as a restarted process would make, finds the state the calls left.
        reloaded = packhost.Pack(packs / "webhook_guard.wasm", options)
        again = deliver(reloaded, "acme", "evt_1", 1764000005).json()
        print(f"after reload: acme   evt_1 -> {again['status']} ({again['in_window']} this minute)")
        if again["status"] != "duplicate":
            raise AssertionError(f"state did not survive the reload: evt_1 was {again['status']}")

        stats = pack.stats()
        print(f"stats: {stats['calls']} calls, {stats['kv_ops']} kv operations")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "plugins" / "dist")
