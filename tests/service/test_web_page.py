"""The draw-a-digit page in a real browser, against the real service.

Headless Chromium (the machine's own, tests/support/browser.py) driven by Playwright opens
``/`` on a Gunicorn service that serves a small model trained here on real MNIST. Strokes are
drawn with the mouse; the API calls the page makes are intercepted and what the page shows is
compared with what the service answered. Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

import contextlib
import json
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from PIL import Image

from mnist_contracts.model import read_identity
from mnist_pipeline.dataset import Split
from tests.support.browser import ARTIFACTS, find_chromium, launch_args
from tests.support.gunicorn_server import Server, gunicorn_server

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.xdist_group("digit-model")]


@pytest.fixture(scope="module")
def model(digit_model: tuple[Path, Split]) -> tuple[Path, Split]:
    """A small model that reads real digits, and the official test split."""
    return digit_model


@pytest.fixture(scope="module")
def server(model: tuple[Path, Split], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with gunicorn_server(tmp_path_factory.mktemp("page"), {"MODEL_DIR": str(model[0])}) as found:
        yield found


@contextlib.contextmanager
def chromium_page() -> Iterator[Any]:
    """A fresh page in headless Chromium, with every request and error it makes recorded."""
    from playwright.sync_api import sync_playwright  # the browser mark checked it is there

    executable = find_chromium()
    assert executable is not None  # the browser mark checked it is there
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=launch_args())
        opened = browser.new_context(viewport={"width": 1000, "height": 900}).new_page()
        opened.requested, opened.errors = [], []
        opened.on("request", lambda r: opened.requested.append(r.url))
        opened.on("pageerror", lambda e: opened.errors.append(str(e)))
        try:
            yield opened
        finally:
            browser.close()


def wait_text(page: Any, selector: str, text: str) -> None:
    """Wait until ``selector``'s text contains ``text``.

    Playwright's ``wait_for_function`` compiles its predicate with ``new Function`` once the
    first check fails, which the page's CSP (no ``unsafe-eval``) rightly refuses; locator
    assertions run in Playwright's own injected script and need no eval.
    """
    from playwright.sync_api import expect

    expect(page.locator(selector)).to_contain_text(text, timeout=30_000)


def wait_answer(page: Any) -> None:
    """Wait until the page shows a digit in place of its placeholder."""
    from playwright.sync_api import expect

    expect(page.locator("#digit")).not_to_have_text("-", timeout=30_000)


@pytest.fixture
def page(server: Server) -> Iterator[Any]:
    with chromium_page() as opened:
        yield opened


def stroke(page: Any, points: list[tuple[float, float]]) -> None:
    """Draw one stroke through ``points`` (fractions of the drawing area) with the mouse."""
    box = page.locator("#pad").bounding_box()
    xy = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in points]
    page.mouse.move(*xy[0])
    page.mouse.down()
    for x, y in xy[1:]:
        page.mouse.move(x, y, steps=4)
    page.mouse.up()


def predict_and_capture(page: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Press Predict; the request the page sent and the service's answer."""
    with page.expect_response(lambda r: r.url.endswith("/predict")) as answered:
        page.click("#predict")
    response = answered.value
    wait_answer(page)
    return json.loads(response.request.post_data), response.json()


def shown(page: Any) -> tuple[str, list[float]]:
    """The digit and the ten probabilities the page shows."""
    bars = page.eval_on_selector_all(
        "#bars li", "items => items.map(i => Number(i.dataset.probability))"
    )
    return page.text_content("#digit"), bars


def preview_pixels(page: Any) -> np.ndarray:
    """The red channel of the 28x28 preview canvas."""
    data = page.evaluate(
        "Array.from(document.querySelector('#preview').getContext('2d')"
        ".getImageData(0, 0, 28, 28).data)"
    )
    return np.array(data, np.uint8).reshape(28, 28, 4)[:, :, 0]


def test_the_page_draws_predicts_and_shows_exactly_what_the_api_answered(
    page: Any, server: Server, model: tuple[Path, Split]
) -> None:
    response = page.goto(server.url + "/")
    assert response.ok
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "default-src 'none'" in csp
    wait_text(page, "#model", "version")
    assert read_identity(model[0]).digest in page.text_content("#model")

    stroke(page, [(0.5, 0.15), (0.5, 0.5), (0.5, 0.85)])  # a clear "1"
    sent, answered = predict_and_capture(page)
    digit, bars = shown(page)
    assert digit == str(answered["predictions"][0]["predicted_class"])
    assert bars == pytest.approx(answered["predictions"][0]["probabilities"], abs=1e-9)
    assert digit == "1"
    # The enlarged preview is the very image the page sent.
    assert np.array_equal(preview_pixels(page), np.array(sent["image"], np.uint8))
    page.screenshot(path=str(ARTIFACTS / "page-one.png"), full_page=True)

    page.click("#clear")
    blank = page.evaluate(
        "Array.from(document.querySelector('#pad').getContext('2d')"
        ".getImageData(0, 0, 280, 280).data).filter((v, i) => i % 4 === 0 && v > 0).length"
    )
    assert blank == 0
    assert page.text_content("#digit") == "-"

    ring = [(0.5 + 0.25 * np.sin(t), 0.5 - 0.33 * np.cos(t)) for t in np.linspace(0, 6.4, 40)]
    stroke(page, ring)  # a "0"
    sent, answered = predict_and_capture(page)
    digit, bars = shown(page)
    assert digit == str(answered["predictions"][0]["predicted_class"])
    assert bars == pytest.approx(answered["predictions"][0]["probabilities"], abs=1e-9)
    assert np.array_equal(preview_pixels(page), np.array(sent["image"], np.uint8))
    page.screenshot(path=str(ARTIFACTS / "page-zero.png"), full_page=True)

    # Nothing came from anywhere but the service, and nothing broke.
    assert all(url.startswith(server.url) for url in page.requested), page.requested
    assert page.errors == []


def test_an_upload_and_feedback_go_through_the_public_api(
    page: Any, server: Server, model: tuple[Path, Split], tmp_path: Path
) -> None:
    _, test = model
    photo = tmp_path / "digit.png"
    Image.fromarray(255 - test.x[0]).resize((112, 112)).save(photo)  # dark ink on paper
    page.goto(server.url + "/")
    with page.expect_response(lambda r: r.url.endswith("/predict/image")) as answered:
        page.set_input_files("#upload", str(photo))
    body = answered.value.json()
    wait_answer(page)
    digit, bars = shown(page)
    assert digit == str(body["predictions"][0]["predicted_class"]) == str(int(test.y[0]))
    assert bars == pytest.approx(body["predictions"][0]["probabilities"], abs=1e-9)

    page.select_option("#truth", "3")
    with page.expect_response(lambda r: r.url.endswith("/feedback")) as sent:
        page.click("#feedback button")
    assert sent.value.status == 200
    assert json.loads(sent.value.request.post_data) == {
        "event_id": body["predictions"][0]["event_id"],
        "label": 3,
    }
    wait_text(page, "#feedback-status", "recorded")


def test_a_stopped_service_gives_a_readable_message(
    model: tuple[Path, Split], tmp_path: Path
) -> None:
    with (
        gunicorn_server(tmp_path, {"MODEL_DIR": str(model[0])}, workers=1) as doomed,
        chromium_page() as opened,
    ):
        opened.goto(doomed.url + "/")
        wait_text(opened, "#model", "version")
        doomed.process.send_signal(signal.SIGTERM)  # the service goes away under the page
        doomed.process.wait(timeout=60)
        stroke(opened, [(0.5, 0.2), (0.5, 0.8)])
        opened.click("#predict")
        wait_text(opened, "#status", "answer")
        assert "did not answer" in opened.text_content("#status")
        assert opened.is_visible("#status")
        opened.screenshot(path=str(ARTIFACTS / "page-service-down.png"))


def test_the_answer_comes_by_itself_after_a_pause_in_drawing(page: Any, server: Server) -> None:
    page.goto(server.url + "/")
    with page.expect_response(lambda r: r.url.endswith("/predict"), timeout=5000) as answered:
        stroke(page, [(0.5, 0.2), (0.5, 0.8)])  # no button pressed
    assert answered.value.status == 200
    wait_answer(page)
    assert page.text_content("#digit") == str(
        answered.value.json()["predictions"][0]["predicted_class"]
    )


def test_no_serious_accessibility_violations_at_desktop_and_phone_width(
    page: Any, server: Server
) -> None:
    from axe_playwright_python.sync_playwright import Axe

    for width, height in ((1000, 900), (375, 740)):
        page.set_viewport_size({"width": width, "height": height})
        page.goto(server.url + "/")
        wait_text(page, "#model", "version")
        results = Axe().run(page)
        serious = [
            (v["id"], v["help"])
            for v in results.response["violations"]
            if v["impact"] in ("serious", "critical")
        ]
        assert serious == [], serious
        # Readable at phone width: nothing wider than the screen.
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        page.screenshot(path=str(ARTIFACTS / f"page-{width}.png"), full_page=True)


def test_keyboard_alone_reaches_every_control(page: Any, server: Server) -> None:
    page.goto(server.url + "/")
    reached = set()
    for _ in range(12):
        page.keyboard.press("Tab")
        reached.add(page.evaluate("document.activeElement.id || document.activeElement.tagName"))
    assert {"predict", "clear", "upload", "apikey"} <= reached, reached


def test_the_page_is_public_and_honours_an_api_key(
    model: tuple[Path, Split], tmp_path: Path
) -> None:
    key = "page-key"  # pragma: allowlist secret
    with gunicorn_server(
        tmp_path, {"MODEL_DIR": str(model[0]), "API_KEY": key}, workers=1
    ) as keyed:
        for path in ("/", "/ui/draw.js", "/ui/draw.css"):
            assert requests.get(keyed.url + path, timeout=10).status_code == 200, path
        with chromium_page() as opened:
            opened.goto(keyed.url + "/")
            stroke(opened, [(0.5, 0.2), (0.5, 0.8)])
            with opened.expect_response(lambda r: r.url.endswith("/predict")) as refused:
                opened.click("#predict")
            assert refused.value.status == 401
            wait_text(opened, "#status", "API key")
            assert "API key" in opened.text_content("#status")
            opened.fill("#apikey", key)
            opened.press("#apikey", "Enter")
            opened.dispatch_event("#apikey", "change")
            with opened.expect_response(lambda r: r.url.endswith("/predict")) as answered:
                opened.click("#predict")
            assert answered.value.status == 200
            assert answered.value.request.headers["x-api-key"] == key
            assert opened.evaluate("sessionStorage.getItem('mnist-api-key')") == key
