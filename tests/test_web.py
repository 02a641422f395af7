"""The page at ``/`` in real headless Chromium (Debian's, driven by Playwright) against the real service.

Each test saves a screenshot of its page in ``build/test-artifacts/``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile
from playwright.sync_api import Page, sync_playwright

from asr import captions
from asr.transcript import Segment
from tests.support.speech import speak
from training.metrics import cer

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[1] / "build" / "test-artifacts"
SENTENCE = "turn off the kitchen lights"


@pytest.fixture(scope="module")
def spoken(tmp_path_factory) -> Path:
    """The sentence with half a second of silence before and 1.5 s after, so a looping fake
    microphone gives the voice-activity detector a pause to end each utterance on."""
    path = tmp_path_factory.mktemp("web") / "sentence.wav"
    path.write_bytes(speak(SENTENCE))
    audio, rate = soundfile.read(path, dtype="int16")
    before, after = np.zeros(rate // 2, np.int16), np.zeros(rate * 3 // 2, np.int16)
    soundfile.write(path, np.concatenate([before, audio, after]), rate)
    return path


@contextlib.contextmanager
def chromium(name: str, microphone: Path | None = None, allow: bool = True) -> Iterator[Page]:
    """A page in headless Chromium; with ``microphone``, a fake one that plays that WAV in a loop,
    which the page may use if ``allow`` (otherwise the permission prompt is denied)."""
    args = ["--autoplay-policy=no-user-gesture-required"]
    if microphone:
        args += ["--use-fake-device-for-media-stream", f"--use-file-for-fake-audio-capture={microphone}"]
        args += ["--use-fake-ui-for-media-stream"] if allow else ["--deny-permission-prompts"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=args)
        page = browser.new_page()
        try:
            yield page
        finally:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=True)
            browser.close()


def test_a_file_gives_words_that_seek_the_player_highlight_and_download(server, spoken):
    url, _ = server
    expected = httpx.post(f"{url}/v1/transcribe", content=spoken.read_bytes(), timeout=60).json()
    segments = [Segment(s["start"], s["end"], s["text"]) for s in expected["segments"]]
    with chromium("file") as page:
        page.goto(url)
        page.set_input_files("#file", spoken)
        page.wait_for_selector("#transcript .word")
        words = page.locator("#transcript .word")
        assert words.all_inner_texts() == [w["word"] for w in expected["words"]]
        assert cer([SENTENCE], [expected["text"]]) <= 0.35
        assert "s of audio, transcribed in" in page.inner_text("#file-status")
        assert page.is_visible("#transcript-help")  # words are buttons, and dotted ones are doubtful: said so
        assert "Select a word" in page.inner_text("#transcript-help") and page.is_visible("#transcript-help .doubtful")

        third = expected["words"][2]
        words.nth(2).click()  # seeks there and plays: the word under the playhead is highlighted
        assert page.evaluate("document.getElementById('player').currentTime") >= third["start"] - 0.05
        page.wait_for_function("document.querySelector('.word[aria-current=true]') !== null")
        page.evaluate("document.getElementById('player').pause()")
        words.nth(0).focus()
        page.keyboard.press("Enter")  # each word is a button, so the keyboard works too
        assert page.evaluate("document.getElementById('player').currentTime") < third["start"]

        made = {"txt": expected["text"] + "\n", "srt": captions.srt(segments), "vtt": captions.vtt(segments)}
        for kind, text in made.items():
            with page.expect_download() as download:
                page.click(f"#downloads button[data-format={kind}]")
            assert download.value.suggested_filename == f"sentence.{kind}"
            assert Path(download.value.path()).read_text() == text  # the page's captions are the service's


def test_a_file_the_server_refuses_is_explained(server, tmp_path):
    url, _ = server
    bad = tmp_path / "notes.wav"
    bad.write_bytes(b"this is not audio")
    with chromium("refused") as page:
        page.goto(url)
        page.set_input_files("#file", bad)
        page.wait_for_selector("#file-status.error")
        assert "not a supported audio file" in page.inner_text("#file-status")
        assert page.is_hidden("#player") and page.is_hidden("#transcript-help")  # no empty player left behind


def test_a_silent_file_says_no_speech_was_found(server, tmp_path):
    url, _ = server
    silent = tmp_path / "quiet.wav"
    soundfile.write(silent, np.zeros(32000, np.int16), 16000)
    with chromium("silent") as page:
        page.goto(url)
        page.set_input_files("#file", silent)
        page.wait_for_function("document.getElementById('file-status').textContent.includes('no speech')")
        assert page.inner_text("#file-status").startswith("quiet.wav: no speech found in 2.0 s of audio")
        assert page.locator("#transcript .word").count() == 0 and page.is_hidden("#downloads")


def test_the_microphone_streams_live_partials_that_settle_into_finals(server, spoken):
    url, _ = server
    with chromium("microphone", microphone=spoken) as page:
        page.goto(url)
        page.evaluate(
            """() => { window.seen = { partials: [], levels: [] };
            new MutationObserver(() => seen.partials.push(partial.textContent)).observe(partial, { childList: true });
            setInterval(() => seen.levels.push(level.value), 50); }"""
        )
        page.click("#mic")
        page.wait_for_function("mic.getAttribute('aria-pressed') === 'true'")
        page.wait_for_selector("#finals li", timeout=30000)
        final = page.inner_text("#finals li")
        seen = page.evaluate("window.seen")
        page.click("#mic")
        assert page.inner_text("#live-status") == "Stopped." and page.get_attribute("#mic", "aria-pressed") == "false"
    assert cer([SENTENCE], [final]) <= 0.35, final
    partials = [p for p in seen["partials"] if p]
    assert len(partials) >= 2 and max(seen["levels"]) > 0.3  # live text grew, and the meter moved


def test_a_denied_microphone_says_how_to_allow_it(server, spoken):
    url, _ = server
    with chromium("denied", microphone=spoken, allow=False) as page:
        page.goto(url)
        page.click("#mic")
        page.wait_for_selector("#live-status.error")
        assert "Microphone access was denied" in page.inner_text("#live-status")
        assert page.get_attribute("#mic", "aria-pressed") == "false"


def test_a_dropped_connection_is_reported_and_reconnected(server, spoken):
    url, _ = server
    connections = []

    def route(ws) -> None:
        """Forward the page's messages; cut the first connection after its 20th, as a restart would."""
        server_side = ws.connect_to_server()
        connections.append(ws)
        first, sent = len(connections) == 1, [0]

        def forward(message) -> None:
            sent[0] += 1
            if first and sent[0] == 20:
                ws.close(code=1012, reason="restarting")
            else:
                server_side.send(message)

        ws.on_message(forward)

    with chromium("reconnect", microphone=spoken) as page:
        page.route_web_socket("**/v1/stream", route)
        page.goto(url)
        page.click("#mic")
        page.wait_for_function("document.getElementById('live-status').textContent.includes('Reconnecting')")
        assert (
            page.inner_text("#live-status") == "The connection was lost: the server is restarting. Reconnecting in 1 s…"
        )
        page.wait_for_selector("#finals li", timeout=30000)  # the second connection carries on
        assert len(connections) == 2 and page.inner_text("#live-status") == "Listening."
        page.click("#mic")


def test_a_refused_key_stops_the_microphone_and_says_what_to_do(server, spoken):
    url, _ = server
    connections = []

    def refuse(ws) -> None:
        """As the server answers a stream without a valid key: its message, then 1008."""
        connections.append(ws)
        ws.send('{"error": "a valid API key is required"}')
        ws.close(code=1008)

    with chromium("refused-key", microphone=spoken) as page:
        page.route_web_socket("**/v1/stream", refuse)
        page.goto(url)
        page.click("#mic")
        page.wait_for_function("document.getElementById('live-status').textContent.includes('Enter the')")
        page.wait_for_timeout(2500)  # a retry would have come by now
        status, pressed = page.inner_text("#live-status"), page.get_attribute("#mic", "aria-pressed")
    assert status.startswith("The server said: a valid API key is required. Enter the server's key")
    assert pressed == "false" and len(connections) == 1


def test_the_backoff_grows_while_the_server_stays_busy(server, spoken):
    """The server accepts each stream and closes it at once with 1013: waits of 1 s, then 2 s, then 4 s."""
    url, _ = server
    opened: list[float] = []

    def busy(ws) -> None:
        opened.append(time.monotonic())
        ws.close(code=1013)

    with chromium("busy", microphone=spoken) as page:
        page.route_web_socket("**/v1/stream", busy)
        page.goto(url)
        page.click("#mic")
        page.wait_for_function("document.getElementById('live-status').textContent.includes('in 4 s')", timeout=15000)
        assert "the server is busy or still loading" in page.inner_text("#live-status")
        page.click("#mic")
    gaps = np.diff(opened)
    assert len(gaps) >= 2 and gaps[0] == pytest.approx(1, abs=0.5) and gaps[1] == pytest.approx(2, abs=0.5)
