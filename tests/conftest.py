"""Shared fixtures: the real data when it is here, a real Streamlit server, a real browser."""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cnnviz.datasets import files as data
from cnnviz.hosting.server_process import free_port, stop_process, wait_healthy

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "tests" / "artifacts"
CHROMIUM = os.environ.get("CNNVIZ_CHROMIUM", "/usr/bin/chromium")
# Chromium on a machine with no network: no background calls home, no GPU.
CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",
]


NOTHING_BIG_MB = 1000  # a net "described without its weights" may raise the peak memory by less


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MB (Linux reports it in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _real_data_dir() -> Path | None:
    """The real datasets: $CNNVIZ_DATA_DIR, else ../shared/data beside the repository."""
    for candidate in (os.environ.get(data.DATA_DIR_ENV), REPO.parent / "shared" / "data"):
        if candidate and data.is_available("mnist", candidate) and data.is_available("cifar10", candidate):
            return Path(candidate)
    return None


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """The folder holding real MNIST and CIFAR-10; skips the test where they are absent."""
    found = _real_data_dir()
    if found is None:
        pytest.skip("real MNIST/CIFAR-10 not found (set CNNVIZ_DATA_DIR or put them in ../shared/data)")
    return found


BROWSER_FIXTURES = {"browser", "browser_page"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test that drives a real browser ``browser``, so ``-m "not browser"`` leaves them out."""
    for item in items:
        if BROWSER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.browser)


# --- a real Streamlit server ---------------------------------------------------------------

@contextlib.contextmanager
def running_app(
    log_dir: Path, env_overrides: dict[str, str] | None = None, options: tuple[str, ...] = (),
) -> Iterator[tuple[str, subprocess.Popen]]:
    """`streamlit run app.py` on a free local port with extra environment and server options;
    yields (base URL, process) and copies the server log into tests/artifacts/ at the end."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = log_dir / "server.log"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    real = _real_data_dir()
    if real is not None:
        env[data.DATA_DIR_ENV] = str(real)
    env.update(env_overrides or {})
    command = [
        sys.executable, "-m", "streamlit", "run", "app.py",
        "--server.headless", "true", "--server.port", str(port), "--server.address", "127.0.0.1",
        "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
        "--client.showErrorDetails", "full", *options,
    ]
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_healthy(url, process, timeout=60)
        yield url, process
    finally:
        stop_process(process, timeout=10)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(log_path, ARTIFACTS / f"streamlit-server-{log_dir.name}.log")


@pytest.fixture(scope="session")
def app_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`streamlit run app.py` on a free local port with the default settings; yields the base URL."""
    with running_app(tmp_path_factory.mktemp("app")) as (url, _):
        yield url


# --- a real browser ------------------------------------------------------------------------

@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium driven by Playwright (never a downloaded browser)."""
    if not Path(CHROMIUM).exists():
        message = f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI installs it, so a missing browser there is a real failure
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def browser_page(browser):
    """A fresh browser tab (its own Streamlit session) at a laptop-sized viewport."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    yield page
    context.close()


def open_page(page, url: str, timeout_ms: int = 60_000) -> None:
    """Go to ``url`` and wait until the app is connected and its script has finished."""
    page.goto(url, wait_until="domcontentloaded")
    wait_until_idle(page, timeout_ms)


def wait_until_idle(page, timeout_ms: int = 60_000) -> None:
    """Wait until Streamlit is connected and no script is running."""
    page.wait_for_selector("[data-testid='stApp'][data-test-connection-state='CONNECTED']",
                           timeout=timeout_ms)
    # The script state flips to "running" shortly after connecting; give it a moment to start.
    page.wait_for_timeout(300)
    page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']",
                           timeout=timeout_ms)
    # Charts load their code lazily behind skeletons, and formulas need their fonts.
    page.wait_for_function(
        "!document.querySelector(\"[data-testid='stSkeleton']\") && document.fonts.status === 'loaded'",
        timeout=timeout_ms,
    )


def assert_no_exception(page) -> None:
    """Fail with the text of any Streamlit exception box on the page."""
    boxes = page.locator("[data-testid='stException']")
    if boxes.count():
        pytest.fail("Streamlit exception on the page:\n" + "\n---\n".join(boxes.all_inner_texts()))


def save_screenshot(page, name: str, full_page: bool = True) -> Path:
    """Save a PNG under tests/artifacts/ and return its path."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    # Streamlit serves images as separate media files: wait until every one has arrived.
    page.wait_for_function(
        "Array.from(document.images).every(img => img.complete && img.naturalWidth > 0)",
        timeout=20_000,
    )
    path = ARTIFACTS / f"{name}.png"
    viewport = page.viewport_size
    if full_page and viewport:
        # Streamlit scrolls an inner container, so a "full page" shot needs a taller window.
        height = page.evaluate(
            "Math.max(...Array.from(document.querySelectorAll('[data-testid=stMain], "
            "[data-testid=stAppViewContainer]')).map(e => e.scrollHeight))"
        )
        page.set_viewport_size({"width": viewport["width"], "height": min(int(height) + 40, 8000)})
        page.wait_for_timeout(500)
    page.screenshot(path=str(path))
    if viewport:
        page.set_viewport_size(viewport)
    return path
