"""Redraw docs/page.png, the README's picture of the draw-a-digit page: `.venv/bin/python docs/screenshot.py`

Serves the bundled model in-process, draws a "7" with the mouse in Debian's headless Chromium and
saves the page once it shows its answer."""

import itertools
import math
import socket
import threading
import time
from pathlib import Path

import uvicorn
from playwright.sync_api import Page, expect, sync_playwright

from digitrec.recognizer import Recognizer
from digitrec.server import ServeConfig, create_app

OUT = Path(__file__).with_name("page.png")
CHROMIUM = "/usr/bin/chromium"  # Debian's (`make browser`); `playwright install` downloads its own
CHROMIUM_ARGS = ["--disable-gpu", "--disable-background-networking", "--disable-component-update"]
CHROMIUM_ARGS += ["--disable-sync", "--no-first-run"]
# A "7" in fractions of the pad: a slightly rising bar, a bowed diagonal, a short crossbar.
SEVEN = [
    [(0.27, 0.27), (0.45, 0.25), (0.72, 0.23)],
    [(0.72, 0.23), (0.62, 0.45), (0.52, 0.64), (0.46, 0.80)],
    [(0.45, 0.51), (0.70, 0.50)],
]


def serve() -> tuple[str, uvicorn.Server]:
    """The real app on a free loopback port, as tests/conftest.py's `live_server` runs it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = create_app(Recognizer.load("default"), ServeConfig(port=port))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start within 30 s"
        time.sleep(0.02)
    return f"http://127.0.0.1:{port}", server


def draw(page: Page, strokes: list[list[tuple[float, float]]]) -> None:
    """Each segment as 20 small mouse moves along a slight bow, so the ink looks hand-drawn."""
    pad = page.locator("#pad").bounding_box()
    assert pad is not None, "the page has no visible #pad"
    for stroke in strokes:
        page.mouse.move(pad["x"] + stroke[0][0] * pad["width"], pad["y"] + stroke[0][1] * pad["height"])
        page.mouse.down()
        for (x0, y0), (x1, y1) in itertools.pairwise(stroke):
            for i in range(1, 21):
                t, wobble = i / 20, 0.012 * math.sin(math.pi * i / 20)
                x, y = x0 + t * (x1 - x0) + wobble, y0 + t * (y1 - y0) - wobble
                page.mouse.move(pad["x"] + x * pad["width"], pad["y"] + y * pad["height"])
        page.mouse.up()


def main() -> None:
    url, server = serve()
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            # Scale factor 1 keeps the PNG small enough to commit.
            page = browser.new_page(viewport={"width": 1000, "height": 700}, device_scale_factor=1)
            page.goto(url + "/")
            draw(page, SEVEN)
            expect(page.locator("#status")).to_have_attribute("data-state", "done", timeout=15_000)
            page.screenshot(path=OUT, animations="disabled")
            print(f"{OUT}: reads {page.inner_text('#digit')} ({page.inner_text('#confidence')})")
            browser.close()
    finally:
        server.should_exit = True


if __name__ == "__main__":
    main()
