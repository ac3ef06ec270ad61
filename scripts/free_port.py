"""A loopback TCP port nothing listens on, for a server a test or script is about to start.

Picked at random below the kernel's ephemeral range, as packhost::testing::unused_loopback_port
does for the Rust tests: a port-0 pick comes from that range, where any outgoing connection
made meanwhile may take it before the server binds it.

    python3 scripts/free_port.py      prints one
"""

import random
import socket

LOWEST_PICKED_PORT = 10_000
DEFAULT_EPHEMERAL_START = 32_768


def ephemeral_range_start() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as range_file:
            return int(range_file.read().split()[0])
    except (OSError, ValueError, IndexError):
        return DEFAULT_EPHEMERAL_START


def unused_loopback_port() -> int:
    ceiling = ephemeral_range_start()
    for _ in range(64 if ceiling > LOWEST_PICKED_PORT else 0):
        port = random.randrange(LOWEST_PICKED_PORT, ceiling)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


if __name__ == "__main__":
    print(unused_loopback_port())
