"""``qstash-operator qstash-server`` as a process: the env lines, port 0, signals, state."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from qstash_server import config
from qstash_server.testing import ServerProcess
from tests.qstash_server.conftest import Sdk

CLI = str(Path(sys.executable).parent / "qstash-operator")
START_TIMEOUT = 20.0


async def test_port_zero_prints_the_real_port_and_serves_the_sdk(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    async with ServerProcess("--driven-clock", state_path=state) as server:
        assert list(server.env) == [
            "QSTASH_URL",
            "QSTASH_TOKEN",
            "QSTASH_CURRENT_SIGNING_KEY",
            "QSTASH_NEXT_SIGNING_KEY",
        ]
        assert server.url.startswith("http://127.0.0.1:")
        assert int(server.url.rsplit(":", 1)[1]) > 0
        assert server.token != config.DEV_TOKEN  # --random-credentials
        assert server.current_key.startswith("sig_")
        client = Sdk("async", server.token, server.url)
        try:
            schedule_id = await client.schedule(
                "create", destination="https://example.com/x", cron="0 * * * *", schedule_id="kept"
            )
            keys = await client.call("signing_key", "get")
        finally:
            await client.close()
        assert (keys.current, keys.next) == (server.current_key, server.next_key)
        assert await server.api_calls() == {"schedules.create": 1, "keys.get": 1}
        token = server.token
        status = await server.stop()
    assert status == 0  # SIGTERM is a clean stop
    assert schedule_id in state.read_text()

    restarted = ServerProcess("--token", token, state_path=state)
    async with restarted:
        client = Sdk("async", restarted.token, restarted.url)
        try:
            assert (await client.schedule("get", "kept")).cron == "0 * * * *"
        finally:
            await client.close()


async def test_defaults_are_the_public_development_credentials() -> None:
    process = await asyncio.create_subprocess_exec(
        CLI, "qstash-server", "--port", "0", stdout=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None
    try:
        async with asyncio.timeout(START_TIMEOUT):
            lines = [(await process.stdout.readline()).decode().strip() for _ in range(4)]
    finally:
        process.terminate()
        await process.wait()
    assert lines[1:] == [
        f"QSTASH_TOKEN={config.DEV_TOKEN}",
        f"QSTASH_CURRENT_SIGNING_KEY={config.DEV_CURRENT_SIGNING_KEY}",
        f"QSTASH_NEXT_SIGNING_KEY={config.DEV_NEXT_SIGNING_KEY}",
    ]
    assert lines[0].startswith("QSTASH_URL=http://127.0.0.1:")
    assert process.returncode == 0


def test_a_driven_clock_without_controls_is_refused() -> None:
    result = subprocess.run(
        [CLI, "qstash-server", "--port", "0", "--driven-clock"],
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
        check=False,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert "a driven clock needs test controls" in result.stderr


def test_a_foreign_state_file_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    state.write_text('{"version": 99}')
    result = subprocess.run(
        [CLI, "qstash-server", "--port", "0", "--state", str(state)],
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
        check=False,
    )
    assert result.returncode == 2
    assert "is not a version-1 state file" in result.stderr
