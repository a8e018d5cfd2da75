"""A real headless browser for dashboard tests: Debian's chromium driven over the DevTools protocol.

    async with launch_browser(tmp_path) as browser:
        page = await browser.open(url)
        await page.wait_for("document.querySelectorAll('#peers tbody tr').length === 2")
        rows = await page.evaluate("[...document.querySelectorAll('#peers tbody tr')].map(r => r.innerText)")
        await page.screenshot(tmp_path / "dashboard.png")

The browser is /usr/bin/chromium (tests/run.sh installs it; a missing browser fails the test, never
skips it). It is driven through the Chrome DevTools Protocol over a websocket (aiohttp's client): the
port comes from the "DevTools listening on ws://..." line chromium writes to stderr.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

CHROMIUM = Path("/usr/bin/chromium")
STARTUP_TIMEOUT = 30.0
COMMAND_TIMEOUT = 30.0
_LISTENING = re.compile(r"DevTools listening on (ws://[^\s]+)")
FLAGS = (
    "--headless",
    "--no-sandbox",  # the tests run as root in a network namespace
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--no-proxy-server",  # the pages are on loopback; never go through a proxy from the environment
    "--remote-debugging-port=0",
    "--remote-allow-origins=*",
    "--window-size=1280,1000",
)


class BrowserError(AssertionError):
    """The browser did not start, or a page did not do what a test waited for."""


class Page:
    """One tab, over its own DevTools websocket."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, session: aiohttp.ClientSession) -> None:
        self._ws = ws
        self._session = session
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.console: list[str] = []  # console messages and uncaught exceptions, for failure messages
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self._ws:
            if message.type is not aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(message.data)
            if "id" in data:
                future = self._pending.pop(data["id"], None)
                if future is not None and not future.done():
                    future.set_result(data)
            elif data.get("method") == "Runtime.consoleAPICalled":
                args = data["params"].get("args", [])
                self.console.append(" ".join(str(a.get("value", a.get("description", ""))) for a in args))
            elif data.get("method") == "Runtime.exceptionThrown":
                details = data["params"]["exceptionDetails"]
                self.console.append("uncaught: " + str(details.get("exception", {}).get("description", details)))
        for future in self._pending.values():
            if not future.done():
                future.set_exception(BrowserError("the browser closed the DevTools connection"))

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one DevTools command and return its result (BrowserError on a protocol error)."""
        command_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[command_id] = future
        await self._ws.send_str(json.dumps({"id": command_id, "method": method, "params": params}))
        answer = await asyncio.wait_for(future, COMMAND_TIMEOUT)
        if "error" in answer:
            raise BrowserError(f"{method} failed: {answer['error']}")
        result: dict[str, Any] = answer.get("result", {})
        return result

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises are awaited)."""
        result = await self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise BrowserError(f"{expression!r} threw: {details.get('exception', {}).get('description', details)}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout: float = 20.0) -> Any:
        """Poll until `expression` is truthy; its value. Fails with what the page logged otherwise."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            value = await self.evaluate(expression)
            if value:
                return value
            if asyncio.get_running_loop().time() > deadline:
                raise BrowserError(f"waited {timeout:g} s for {expression!r}; page console: {self.console[-10:]}")
            await asyncio.sleep(0.1)

    async def goto(self, url: str) -> None:
        await self.send("Page.navigate", url=url)
        await self.wait_for(
            f"location.href.startsWith({json.dumps(url.split('?')[0])}) && document.readyState === 'complete'"
        )

    async def click(self, selector: str) -> None:
        """Click the element the way a person would: a real mouse press and release at its centre."""
        box = await self.evaluate(
            f"(() => {{ const r = document.querySelector({json.dumps(selector)}).getBoundingClientRect();"
            " return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        for kind in ("mousePressed", "mouseReleased"):
            await self.send("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left", clickCount=1)

    async def type_text(self, selector: str, text: str) -> None:
        """Focus the element and type `text` as keyboard input."""
        await self.evaluate(f"document.querySelector({json.dumps(selector)}).focus()")
        await self.send("Input.insertText", text=text)

    async def screenshot(self, path: Path) -> Path:
        data = await self.send("Page.captureScreenshot", format="png")
        path.write_bytes(base64.b64decode(data["data"]))
        return path

    async def close(self) -> None:
        await self._ws.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


class Browser:
    def __init__(self, process: asyncio.subprocess.Process, http_base: str, session: aiohttp.ClientSession) -> None:
        self.process = process
        self.http_base = http_base
        self._session = session
        self._pages: list[Page] = []

    async def open(self, url: str) -> Page:
        """A new tab showing `url`, loaded."""
        async with self._session.put(f"{self.http_base}/json/new?about:blank") as response:
            if response.status != 200:
                raise BrowserError(f"chromium refused a new tab: HTTP {response.status} {await response.text()}")
            target = await response.json()
        ws = await self._session.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=64 * 2**20)
        page = Page(ws, self._session)
        self._pages.append(page)
        await page.send("Runtime.enable")
        await page.send("Page.enable")
        await page.goto(url)
        return page

    async def close(self) -> None:
        for page in self._pages:
            await page.close()
        await self._session.close()
        if self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 10)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


def _require_chromium() -> Path:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"{CHROMIUM} is missing: the dashboard tests need Debian's chromium (tests/run.sh installs it with "
            "apt-get; they never skip)",
            pytrace=False,
        )
    return CHROMIUM


@contextlib.asynccontextmanager
async def launch_browser(profile_dir: Path) -> AsyncIterator[Browser]:
    """Start headless chromium with a fresh profile under `profile_dir`; stop it afterwards."""
    chromium = _require_chromium()
    profile_dir.mkdir(parents=True, exist_ok=True)
    process = await asyncio.create_subprocess_exec(
        str(chromium), *FLAGS, f"--user-data-dir={profile_dir}", "about:blank",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stderr is not None
    seen: list[str] = []
    ws_url = None
    try:
        async with asyncio.timeout(STARTUP_TIMEOUT):
            while ws_url is None:
                line = (await process.stderr.readline()).decode(errors="replace")
                if not line:
                    raise BrowserError(f"chromium exited before listening: {''.join(seen)[-2000:]}")
                seen.append(line)
                if match := _LISTENING.search(line):
                    ws_url = match.group(1)
    except TimeoutError:
        process.kill()
        raise BrowserError(f"chromium did not start in {STARTUP_TIMEOUT:g} s: {''.join(seen)[-2000:]}") from None
    drain = asyncio.create_task(_drain(process.stderr))  # keep its stderr pipe from filling up
    host_port = ws_url.split("/")[2]
    browser = Browser(process, f"http://{host_port}", aiohttp.ClientSession(trust_env=False))
    try:
        yield browser
    finally:
        await browser.close()
        drain.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await drain


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.readline():
        pass
