"""A headless Chromium driven over the DevTools protocol on a pipe, for tests only.

No Python dependency and no browser download: Debian's ``chromium`` package, started with
``--remote-debugging-pipe`` (commands are JSON objects terminated by a NUL byte, written to
the browser's fd 3; replies and events come back on its fd 4).  :func:`render` opens one
local page in a fresh tab and returns what a reader would see: console errors, uncaught
exceptions, failed loads, every image's decoded size, the text and a screenshot.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["find_chromium", "Browser", "PageReport", "render"]

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

# What the page reports about itself once loaded (evaluated in the page, returns JSON).
PAGE_PROBE = """(() => {
  const images = Array.from(document.images).map(i => ({
    alt: i.alt || '', src: (i.currentSrc || i.src || '').slice(0, 80),
    complete: i.complete, width: i.naturalWidth, height: i.naturalHeight,
    shown: i.getBoundingClientRect().width}));
  return JSON.stringify({
    title: document.title, text: document.body ? document.body.innerText : '',
    height: document.documentElement.scrollHeight, width: document.documentElement.scrollWidth,
    viewport: window.innerWidth, images: images,
    figures: document.querySelectorAll('figure').length,
    captions: Array.from(document.querySelectorAll('figcaption')).map(c => c.innerText),
    tables: document.querySelectorAll('table').length});
})()"""


def find_chromium() -> str | None:
    """The Chromium executable (``$REPSPACE_CHROMIUM``, else the first of :data:`NAMES` on
    PATH), or None."""
    env = os.environ.get("REPSPACE_CHROMIUM")
    if env:
        return shutil.which(env) or (env if os.access(env, os.X_OK) else None)
    return next((p for p in map(shutil.which, NAMES) if p), None)


@dataclass
class PageReport:
    url: str
    console_errors: list[str] = field(
        default_factory=list
    )  # console.error/assert, exceptions, log errors
    images: list[dict] = field(default_factory=list)
    text: str = ""
    title: str = ""
    height: int = 0
    width: int = 0
    viewport: int = 0
    figures: int = 0
    captions: list[str] = field(default_factory=list)
    tables: int = 0
    screenshot: bytes = b""

    @property
    def broken_images(self) -> list[dict]:
        return [i for i in self.images if not i["complete"] or i["width"] <= 0 or i["height"] <= 0]


class BrowserError(RuntimeError):
    pass


class Browser:
    """One headless Chromium; ``with Browser(exe) as b: b.render(path)``."""

    def __init__(self, exe: str, timeout: float = 60.0):
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="repspace-chromium-")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()

        def fds():  # in the child, before exec: its fd 3 reads commands, fd 4 writes replies
            r = fcntl.fcntl(to_browser_r, fcntl.F_DUPFD, 10)
            w = fcntl.fcntl(from_browser_w, fcntl.F_DUPFD, 10)
            os.dup2(r, 3)
            os.dup2(w, 4)

        args = [
            exe,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--remote-debugging-pipe",
            f"--user-data-dir={self.profile}",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--mute-audio",
            "--hide-scrollbars",
            "--window-size=1280,900",
            "about:blank",
        ]
        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            close_fds=False,
            preexec_fn=fds,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._next = 0
        self._replies: dict[int, dict] = {}
        self._events: list[dict] = []
        self._cv = threading.Condition()
        self._closed = False
        self._stderr: list[bytes] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._drain_stderr, daemon=True).start()
        self.version = self.call("Browser.getVersion")

    # -- transport ----------------------------------------------------------------------------
    def _read(self) -> None:
        buf = b""
        while True:
            try:
                chunk = os.read(self._from_browser, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                with self._cv:
                    self._closed = True
                    self._cv.notify_all()
                return
            buf += chunk
            *messages, buf = buf.split(b"\0")
            with self._cv:
                for raw in messages:
                    msg = json.loads(raw)
                    if "id" in msg:
                        self._replies[msg["id"]] = msg
                    else:
                        self._events.append(msg)
                self._cv.notify_all()

    def _drain_stderr(self) -> None:
        for line in self.proc.stderr:  # Chromium's own log (dbus noise): kept for failures only
            self._stderr.append(line)

    def _wait(self, ready, what: str):
        deadline = time.monotonic() + self.timeout
        with self._cv:
            while True:
                value = ready()
                if value is not None:
                    return value
                if self._closed:
                    raise BrowserError(
                        f"chromium exited while waiting for {what}: "
                        + b"".join(self._stderr[-20:]).decode(errors="replace")
                    )
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BrowserError(f"chromium: no {what} within {self.timeout:.0f} s")
                self._cv.wait(left)

    def call(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        with self._cv:
            self._next += 1
            ident = self._next
        msg = {"id": ident, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._to_browser, json.dumps(msg).encode() + b"\0")
        reply = self._wait(lambda: self._replies.pop(ident, None), f"reply to {method}")
        if "error" in reply:
            raise BrowserError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def events(self, session: str) -> list[dict]:
        with self._cv:
            return [e for e in self._events if e.get("sessionId") == session]

    # -- pages --------------------------------------------------------------------------------
    def render(self, path: str | Path, settle: float = 0.3) -> PageReport:
        """Open ``path`` in a new tab, wait for its load event, and report on it."""
        url = Path(path).resolve().as_uri()
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        try:
            for domain in ("Page", "Runtime", "Log"):
                self.call(f"{domain}.enable", session=session)
            self.call(
                "Emulation.setDeviceMetricsOverride",
                {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False},
                session=session,
            )
            nav = self.call("Page.navigate", {"url": url}, session=session)
            if nav.get("errorText"):
                raise BrowserError(f"{url}: {nav['errorText']}")
            self._wait(
                lambda: (
                    True
                    if any(e["method"] == "Page.loadEventFired" for e in self.events(session))
                    else None
                ),
                f"load event of {url}",
            )
            time.sleep(settle)  # late console messages (a script after load) still arrive
            probe = self.call(
                "Runtime.evaluate",
                {"expression": PAGE_PROBE, "returnByValue": True},
                session=session,
            )
            if "exceptionDetails" in probe:
                raise BrowserError(f"page probe failed: {probe['exceptionDetails']}")
            info = json.loads(probe["result"]["value"])
            shot = self.call("Page.captureScreenshot", {"format": "png"}, session=session)
            report = PageReport(
                url=url,
                images=info["images"],
                text=info["text"],
                title=info["title"],
                height=info["height"],
                width=info["width"],
                viewport=info["viewport"],
                figures=info["figures"],
                captions=info["captions"],
                tables=info["tables"],
                screenshot=base64.b64decode(shot["data"]),
            )
            report.console_errors = _errors(self.events(session))
            return report
        finally:
            self.call("Target.closeTarget", {"targetId": target})

    def close(self) -> None:
        try:
            if self.proc.poll() is None:
                try:
                    self.call("Browser.close")
                except BrowserError:
                    pass
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(10)
        finally:
            for fd in (self._to_browser, self._from_browser):
                try:
                    os.close(fd)
                except OSError:
                    pass
            shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> "Browser":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _errors(events: list[dict]) -> list[str]:
    """Console errors, uncaught exceptions and error log entries (a failed image or script
    load is a Log.entryAdded of level error, source network)."""
    out = []
    for e in events:
        p = e.get("params", {})
        if e["method"] == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            out.append(
                "console."
                + p["type"]
                + ": "
                + " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", []))
            )
        elif e["method"] == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            out.append(
                "exception: " + str(d.get("exception", {}).get("description") or d.get("text"))
            )
        elif e["method"] == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            entry = p["entry"]
            out.append(
                f"log ({entry.get('source')}): {entry.get('text')} {entry.get('url', '')}".strip()
            )
    return out


def render(path: str | Path, exe: str | None = None) -> PageReport:
    """Render one page in a browser of its own."""
    exe = exe or find_chromium()
    if exe is None:
        raise BrowserError("no chromium on PATH")
    with Browser(exe) as browser:
        return browser.render(path)
