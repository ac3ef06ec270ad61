"""packhost's MCP tools through the official MCP Python SDK as the client: over stdio
(`packhost mcp`) and over HTTP (`packhost serve`'s `/mcp`, with a tenant token). Run by
`make test-runner` with the packhost binary in $PACKHOST."""

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import anyio
import pytest
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
from free_port import unused_loopback_port  # noqa: E402
DIST = ROOT / "plugins" / "dist"
PACKHOST = os.environ.get("PACKHOST") or str(
    Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release" / "packhost"
)
PACKS = [str(DIST / "text_tools.wasm"), str(DIST / "hostile.wasm")]
# No fuel limit: the spin must end by its timeout, not by out_of_fuel, which a fast run of
# the default fuel reaches first.
OPTIONS = json.dumps({"limits": {"timeout_ms": 300, "fuel": None}})
TOKEN = "acme-0123456789abcdef"


async def exercise(session: ClientSession) -> None:
    """What every transport must do: list the tools, call one, call one that fails."""
    await session.initialize()
    tools = {tool.name: tool for tool in (await session.list_tools()).tools}
    assert {"count_vowels", "uppercase", "fail_with", "spin"} <= set(tools), sorted(tools)
    assert tools["count_vowels"].input_schema["type"] == "object"
    assert tools["uppercase"].input_schema["required"] == ["input"]
    assert tools["count_vowels"].description

    counted = await session.call_tool("count_vowels", {"text": "hello world"})
    assert not counted.is_error, counted
    assert counted.structured_content == {"count": 3, "vowels": "eoo"}
    assert json.loads(counted.content[0].text) == {"count": 3, "vowels": "eoo"}

    shouted = await session.call_tool("uppercase", {"input": "grüße"})
    assert shouted.content[0].text == "GRÜSSE"

    failed = await session.call_tool("fail_with", {"input": "no thanks"})
    assert failed.is_error
    assert failed.content[0].text == "error[plugin_error] no thanks"

    timed_out = await session.call_tool("spin", {})
    assert timed_out.is_error
    assert timed_out.content[0].text.startswith("error[timeout]")


def test_tools_over_stdio():
    async def run():
        server = StdioServerParameters(command=PACKHOST, args=["mcp", *PACKS, "--options", OPTIONS])
        async with stdio_client(server) as (read, write):
            async with ClientSession(read, write) as session:
                await exercise(session)

    anyio.run(run)


@pytest.fixture
def runner():
    port = unused_loopback_port()
    env = dict(os.environ, PACKHOST_RUNNER_TOKENS=f"acme={TOKEN}")
    process = subprocess.Popen(
        [PACKHOST, "serve", *PACKS, "--listen", f"127.0.0.1:{port}", "--options", OPTIONS],
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{base}/readyz", timeout=2)
                break
            except OSError:
                assert process.poll() is None, "packhost serve exited"
                assert time.monotonic() < deadline, "packhost serve never became ready"
                time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_tools_over_http_with_a_tenant_token(runner):
    async def run():
        client = create_mcp_http_client(headers={"Authorization": f"Bearer {TOKEN}"})
        async with client:
            async with streamable_http_client(f"{runner}/mcp", http_client=client) as (read, write):
                async with ClientSession(read, write) as session:
                    await exercise(session)

    anyio.run(run)
    metrics = urllib.request.urlopen(f"{runner}/metrics").read().decode()
    assert 'packhost_runner_calls_total{tenant="acme",pack="text-tools",action="count_vowels",code="ok"} 1' in metrics


def test_http_tools_need_the_token(runner):
    request = urllib.request.Request(
        f"{runner}/mcp",
        data=json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).encode(),
        headers={"Content-Type": "application/json", "Accept": "application/json, text/event-stream"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request)
    assert refused.value.code == 401
    assert json.loads(refused.value.read())["error"]["code"] == "unauthorized"
