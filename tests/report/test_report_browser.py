"""The demo report renders in headless Chromium: no console errors, every image loads, and the
screenshot is not blank.

Chromium is driven through the DevTools protocol over ``--remote-debugging-pipe`` (fd 3 in, fd 4
out, NUL-separated JSON messages) with the standard library only. With ``CI`` set a missing
Chromium fails the test; elsewhere it is skipped with the reason.
"""

from __future__ import annotations

import base64
import io
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path

import pytest

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
TIMEOUT = 60.0  # seconds for any one protocol reply


def find_browser() -> str:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    message = "headless Chromium not found (apt-get install chromium)"
    if os.environ.get("CI"):
        pytest.fail(message + "; CI must install it")
    pytest.skip(message)


class DevTools:
    """A minimal DevTools-protocol client over Chromium's debugging pipe."""

    def __init__(self, browser: str, profile: Path) -> None:
        cmd_r, self._cmd_w = os.pipe()  # we write commands, Chromium reads fd 3
        self._evt_r, evt_w = os.pipe()  # Chromium writes fd 4, we read

        def wire() -> None:  # runs in the child before exec
            r, w = os.dup(cmd_r), os.dup(evt_w)  # neither may sit on 3 or 4 while moving
            r2, w2 = os.dup(r), os.dup(w)
            os.dup2(r2, 3)
            os.dup2(w2, 4)

        self.proc = subprocess.Popen(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--no-default-browser-check", "--disable-extensions", "--hide-scrollbars",
             "--remote-debugging-pipe", f"--user-data-dir={profile}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            preexec_fn=wire, close_fds=False,  # noqa: PLW1509 - the tests run no threads
        )
        os.close(cmd_r)
        os.close(evt_w)
        self._buf = b""
        self._id = 0
        self.events: list[dict] = []
        self.session: str | None = None

    def _read_message(self, deadline: float) -> dict:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self._evt_r], [], [], max(left, 0))
            if not ready:
                raise TimeoutError("no reply from Chromium")
            chunk = os.read(self._evt_r, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the pipe: "
                                   + self.proc.stderr.read().decode(errors="replace")[-2000:])
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def send(self, method: str, params: dict | None = None, *, browser: bool = False) -> dict:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params or {}}
        if self.session and not browser:
            msg["sessionId"] = self.session
        try:
            os.write(self._cmd_w, json.dumps(msg).encode() + b"\0")
        except BrokenPipeError:
            self.proc.wait(timeout=10)
            raise RuntimeError(f"Chromium exited ({self.proc.returncode}): "
                               + self.proc.stderr.read().decode(errors="replace")[-2000:]) from None
        deadline = time.monotonic() + TIMEOUT
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str) -> dict:
        for i, event in enumerate(self.events):
            if event.get("method") == method:
                return self.events.pop(i)
        deadline = time.monotonic() + TIMEOUT
        while True:
            event = self._read_message(deadline)
            if event.get("method") == method:
                return event
            self.events.append(event)

    def close(self) -> None:
        try:
            self.send("Browser.close", browser=True)
        except Exception:  # noqa: BLE001 - the browser may already be gone
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._cmd_w)
        os.close(self._evt_r)
        self.proc.stderr.close()


def render(page: Path, screenshot: Path, *, width: int = 1200, height: int = 1600) -> dict:
    """Open ``page``; return console errors, image states and page height; save a screenshot."""
    browser = find_browser()
    client = DevTools(browser, screenshot.parent / "chromium-profile")
    try:
        targets = client.send("Target.getTargets")["targetInfos"]
        target = next(t for t in targets if t["type"] == "page")
        client.session = client.send("Target.attachToTarget",
                                     {"targetId": target["targetId"], "flatten": True},
                                     browser=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            client.send(f"{domain}.enable")
        client.send("Emulation.setDeviceMetricsOverride",
                    {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
        client.send("Page.navigate", {"url": page.resolve().as_uri()})
        client.wait_for("Page.loadEventFired")
        images = client.send("Runtime.evaluate", {
            "expression": "Array.from(document.images).map(i => ({alt: i.alt, complete: "
                          "i.complete, width: i.naturalWidth, height: i.naturalHeight}))",
            "returnByValue": True})["result"]["value"]
        headline = client.send("Runtime.evaluate", {
            "expression": "Array.from(document.querySelectorAll('.headline')).map(e => "
                          "e.innerText)", "returnByValue": True})["result"]["value"]
        shot = client.send("Page.captureScreenshot", {"format": "png"})["data"]
        screenshot.write_bytes(base64.b64decode(shot))
        client.send("Runtime.evaluate", {"expression": "1"})  # flush pending events
        errors = []
        for e in client.events:
            p = e.get("params", {})
            if e.get("method") == "Runtime.exceptionThrown":
                errors.append(p["exceptionDetails"].get("text", "exception"))
            elif e.get("method") == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                errors.append(" ".join(str(a.get("value", a.get("description"))) for a in p["args"]))
            elif e.get("method") == "Log.entryAdded" and p["entry"]["level"] == "error":
                errors.append(p["entry"]["text"])
        return {"errors": errors, "images": images, "headline": headline}
    finally:
        client.close()


def distinct_colours(png: bytes) -> int:
    from PIL import Image

    with Image.open(io.BytesIO(png)) as im:
        return len(im.convert("RGB").getcolors(maxcolors=1 << 24) or [])


@pytest.fixture(scope="module")
def demo_page(tmp_path_factory) -> Path:
    from coevidence.cli import main

    find_browser()  # skip (or fail in CI) before the 15-second demo
    out = tmp_path_factory.mktemp("demo")
    assert main(["demo", "--out", str(out)]) == 0
    return out / "report.html"


@pytest.mark.slow
def test_demo_report_renders_in_chromium(demo_page, tmp_path):
    shot = tmp_path / "report.png"
    seen = render(demo_page, shot)
    assert seen["errors"] == []
    images = seen["images"]
    assert len(images) >= 5  # forest plot, observed means and trajectories of two outcomes
    broken = [i["alt"] for i in images if not (i["complete"] and i["width"] > 0)]
    assert broken == []
    assert distinct_colours(shot.read_bytes()) > 50  # a blank page has one or two
    # the headline blocks are on the page, with their answers stated
    assert len(seen["headline"]) == 2
    assert all("Primary estimand" in text and "per wave" in text for text in seen["headline"])


@pytest.mark.slow
def test_broken_image_is_caught(tmp_path):
    """The checks are not vacuous: a broken image, a console error and a blank page are seen."""
    find_browser()
    page = tmp_path / "broken.html"
    page.write_text("<!DOCTYPE html><html><body><h1>x</h1>"
                    "<img alt='missing' src='data:image/png;base64,AAAA'>"
                    "<script>console.error('boom')</script></body></html>")
    seen = render(page, tmp_path / "broken.png", width=400, height=300)
    assert [i["alt"] for i in seen["images"] if i["width"] == 0] == ["missing"]
    assert any("boom" in e for e in seen["errors"])
    blank = tmp_path / "blank.html"
    blank.write_text("<!DOCTYPE html><html><body></body></html>")
    assert render(blank, tmp_path / "blank.png", width=400, height=300)["errors"] == []
    assert distinct_colours((tmp_path / "blank.png").read_bytes()) <= 2
