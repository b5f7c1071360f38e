"""The page in a real browser: headless Chromium (Debian's `chromium` and `chromium-driver`, driven by
Selenium) opens `tisdiss serve`, uploads the bundled example, waits for the result and finds two
speaker players holding audio of the input's length; a screenshot is saved in test-artifacts/."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
import soundfile as sf

from tests.serve.conftest import ARTIFACTS, EXAMPLE, tisdiss_serve
from tisdiss_cli.zoo.load import load_any

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed: pip install -e '.[test]'")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

BROWSER = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    BROWSER is None or DRIVER is None,
    reason="no headless Chromium here: apt-get install chromium chromium-driver (.ci/run does)",
)
WIDTH = 1100


@pytest.fixture()
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = BROWSER
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={WIDTH},900",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=webdriver.ChromeService(DRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _wait(driver, condition, timeout: float = 60.0):
    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(condition)


def screenshot(driver, path: Path) -> Path:
    """The whole page, not only the window."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": WIDTH, "height": height, "deviceScaleFactor": 1, "mobile": False},
    )
    time.sleep(0.3)
    path.parent.mkdir(exist_ok=True)
    driver.save_screenshot(str(path))
    return path


def test_upload_listen_and_compare_in_chromium(browser, tmp_path: Path) -> None:
    duration = sf.info(EXAMPLE).duration
    with tisdiss_serve("--model", "tisdiss-small-8k", "--threads", "1") as server:
        browser.get(server.url)
        _wait(
            browser,
            lambda d: (
                "measuring" not in d.find_element(By.ID, "presets").text and d.find_elements(By.CSS_SELECTOR, ".preset")
            ),
        )
        presets = browser.find_elements(By.CSS_SELECTOR, ".preset label")
        names = [n.text.lower() for n in browser.find_elements(By.CSS_SELECTOR, ".preset .name")]
        assert names == ["fast", "balanced", "best"]
        card = load_any("tisdiss-small-8k").card
        assert card.quality is not None
        balanced = f"{card.quality.by_n_re[card.presets['balanced'].n_re]:.2f} dB"
        assert balanced in presets[1].text and "RTF here" in presets[1].text  # the card's quality, this machine's speed
        assert "tisdiss-small-8k" in browser.find_element(By.ID, "model").text

        browser.find_element(By.ID, "file").send_keys(str(EXAMPLE))
        browser.find_element(By.ID, "go").click()
        _wait(
            browser,
            lambda d: d.find_element(By.ID, "results").is_displayed() or d.find_element(By.ID, "error").is_displayed(),
        )
        assert not browser.find_element(By.ID, "error").is_displayed(), browser.find_element(By.ID, "error").text
        players = browser.find_elements(By.CSS_SELECTOR, ".track:not(.mixture) audio")
        assert len(players) == 2
        _wait(browser, lambda d: all(d.execute_script("return arguments[0].readyState", p) >= 1 for p in players), 20)
        durations = [browser.execute_script("return arguments[0].duration", p) for p in players]
        assert durations == pytest.approx([duration, duration], abs=0.01)
        mixture = browser.find_element(By.CSS_SELECTOR, ".track.mixture audio")
        _wait(browser, lambda d: d.execute_script("return arguments[0].readyState", mixture) >= 1, 20)
        assert browser.execute_script("return arguments[0].duration", mixture) == pytest.approx(duration, abs=0.01)
        pictures = browser.find_elements(By.CSS_SELECTOR, ".track img")
        _wait(
            browser, lambda d: all(d.execute_script("return arguments[0].naturalWidth", p) == 720 for p in pictures), 20
        )
        links = [a.text for a in browser.find_elements(By.CSS_SELECTOR, ".track:not(.mixture) .downloads a")]
        assert links == ["WAV", "FLAC", "MP3", "OPUS"] * 2
        assert "N_re 2 (preset balanced)" in browser.find_element(By.ID, "summary").text
        shot = screenshot(browser, ARTIFACTS / "serve-page.png")
        assert shot.stat().st_size > 10_000

        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
        notes = tmp_path / "notes.txt"
        notes.write_text("not a recording " * 100)
        browser.find_element(By.ID, "file").send_keys(str(notes))
        browser.find_element(By.ID, "go").click()
        error = _wait(
            browser, lambda d: d.find_element(By.ID, "error").is_displayed() and d.find_element(By.ID, "error")
        )
        assert error.text.startswith("notes.txt: ") and error.text.endswith(".") and "\n" not in error.text
        server.stop()
