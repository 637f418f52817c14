"""The live dashboard of `lab up` in a real browser (headless Chromium, driven over the
DevTools protocol: the page streams Server-Sent Events, so it never "finishes loading"
and --dump-dom alone cannot wait for data).

Brings keepalive-502 up, opens the dashboard, sends a little traffic through nginx,
and waits until the page's state (window.labState) holds series with points; then
applies faults with `lab fault` and sees each land: the marker, the node's state in
the diagram. A screenshot is kept in results/live/dashboard.png for a person to look at.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import aiohttp
import pytest

from labs.engine.runtime.processes import pid_alive, processes_with_run_id
from labs.engine.topology.ports import is_listening
from tests.conftest import REPO_ROOT, run_lab_cli
from tests.test_report_html import FLAGS, find_browser

SCREENSHOT = REPO_ROOT / "results" / "live" / "dashboard.png"


class Page:
    """One browser tab over the DevTools protocol: evaluate JS, take a screenshot."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.next_id = 0

    async def call(self, method: str, **params: object) -> dict:
        self.next_id += 1
        await self.ws.send_json({"id": self.next_id, "method": method, "params": params})
        while True:
            message = await asyncio.wait_for(self.ws.receive_json(), 30)
            if message.get("id") == self.next_id:
                assert "error" not in message, message
                return message["result"]

    async def lab_state(self) -> dict:
        result = await self.call(
            "Runtime.evaluate", expression="JSON.stringify(window.labState || null)"
        )
        return json.loads(result["result"].get("value") or "null") or {}

    async def wait_for(self, what: str, predicate, timeout: float = 20) -> dict:
        deadline = time.monotonic() + timeout
        state: dict = {}
        while time.monotonic() < deadline:
            state = await self.lab_state()
            if state and predicate(state):
                return state
            await asyncio.sleep(0.25)
        pytest.fail(f"the dashboard never showed {what}: {json.dumps(state)[:1500]}")


def start_browser(browser: str, profile: Path, url: str) -> tuple[subprocess.Popen, int]:
    process = subprocess.Popen(
        [browser, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0",
         "--remote-debugging-address=127.0.0.1", "--window-size=1400,1400", url],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    assert process.stderr is not None
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if found := re.search(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", line):
            return process, int(found[1])
        if not line and process.poll() is not None:
            break
    process.kill()
    pytest.fail("chromium did not start its DevTools endpoint")


def traffic(url: str, count: int) -> None:
    """`count` GETs, one after another (127.0.0.1 only; statuses do not matter)."""
    assert url.startswith("http://127.0.0.1:")
    for _ in range(count):
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                response.read()
        except urllib.error.HTTPError:
            pass
        time.sleep(0.02)


def fault(env, *args: str) -> None:
    result = run_lab_cli("fault", *args, env=env, timeout=60)
    assert result.returncode == 0, result.stderr


def points_of(state: dict, chart: str, series: str) -> int:
    return state.get("charts", {}).get(chart, {}).get("series", {}).get(series, 0)


async def test_live_dashboard_shows_traffic_and_faults(lab_env, tmp_path):
    browser = find_browser()
    up = await asyncio.to_thread(
        run_lab_cli, "up", "keepalive-502", "--variant", "fixed", env=lab_env, timeout=60
    )
    assert up.returncode == 0, up.stderr
    status = json.loads(run_lab_cli("status", "--json", env=lab_env).stdout)
    dashboard, nginx = status["dashboard"], status["endpoints"]["nginx"]
    process = None
    try:
        assert dashboard.startswith("http://127.0.0.1:") and dashboard in up.stdout
        assert dashboard in run_lab_cli("status", env=lab_env).stdout
        # Never through nginx: it proxies the api only, which has no such routes.
        for path in ("/live/state", "/live/stream", "/control/events"):
            with pytest.raises(urllib.error.HTTPError) as hidden:
                urllib.request.urlopen(f"{nginx}{path}", timeout=5)
            assert hidden.value.code == 404

        process, port = start_browser(browser, tmp_path / "profile", dashboard)
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/json/list") as reply:
                tabs = [t for t in await reply.json() if t["type"] == "page"]
            async with session.ws_connect(tabs[0]["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                page = Page(ws)
                await page.wait_for("a connection", lambda s: s.get("connected"))
                await asyncio.to_thread(traffic, f"{nginx}/work", 60)
                state = await page.wait_for(
                    "the traffic",
                    lambda s: (
                        s["requests"] >= 60
                        and points_of(s, "latency", "p99") >= 1
                        and points_of(s, "arrivals", "api-1") >= 3
                    ),
                )
                assert points_of(state, "nginx-rps", "2xx") >= 3, state
                assert state["nodes"] == {"client": "up", "nginx": "up", "api-1": "up"}

                fault(lab_env, "api", "latency_ms=200")
                await asyncio.to_thread(traffic, f"{nginx}/work", 15)
                state = await page.wait_for(
                    "the latency fault",
                    lambda s: (
                        "api latency_ms=200" in s["events"] and s["nodes"].get("api-1") == "slow"
                    ),
                )
                fault(lab_env, "api-1", "--kill")
                await asyncio.to_thread(traffic, f"{nginx}/work", 5)  # 502s
                state = await page.wait_for(
                    "the kill",
                    lambda s: "kill api-1" in s["events"] and s["nodes"].get("api-1") == "down",
                )
                assert points_of(state, "nginx-rps", "5xx") >= 1
                await page.wait_for(
                    "nginx's connect errors",
                    lambda s: points_of(s, "errors", "connection_refused") >= 1,
                )
                fault(lab_env, "api-1", "--start")
                fault(lab_env, "--clear")
                await asyncio.to_thread(traffic, f"{nginx}/work", 20)
                state = await page.wait_for(
                    "the start and the clear",
                    lambda s: (
                        s["events"][-2:] == ["start api-1", "clear all"]
                        and s["nodes"].get("api-1") == "up"
                    ),
                )
                await asyncio.sleep(1.5)  # one more tick drawn after the last requests
                shot = await page.call("Page.captureScreenshot", format="png")
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        SCREENSHOT.write_bytes(base64.b64decode(shot["data"]))
        print(f"screenshot: {SCREENSHOT}")
    finally:
        if process is not None:
            process.kill()
            process.wait(timeout=10)
        down = run_lab_cli("down", env=lab_env)
    assert down.returncode == 0
    assert not processes_with_run_id(status["run_id"]) and not pid_alive(status["pid"])
    assert not is_listening(int(dashboard.rstrip("/").rsplit(":", 1)[1]))
