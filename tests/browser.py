"""A real browser for the tests that need one: headless Chromium driven by Selenium.

Debian's ``chromium`` and ``chromium-driver`` (``make tools`` installs them). Every
session gets a fresh profile and a browser that talks to nothing but the server under
test: no sync, no component updates, no background requests. The ``chromium`` fixture
(tests/conftest.py) starts one per test session; ``Page`` drives it page by page,
waiting on what the page shows, never on fixed sleeps.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
WINDOW = (1400, 900)
WAIT_SEC = 30


def start_chromium(profile: Path) -> WebDriver:
    """Headless Chromium with a fresh ``--user-data-dir`` and a 1400-pixel-wide window."""
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        raise RuntimeError("chromium and chromedriver are missing: run `make tools`")
    options = Options()
    options.binary_location = chromium
    for flag in (*FLAGS, f"--user-data-dir={profile}", f"--window-size={WINDOW[0]},{WINDOW[1]}"):
        options.add_argument(flag)
    # Both paths are given, so Selenium Manager has nothing to look up or download.
    return webdriver.Chrome(options=options, service=Service(executable_path=driver))


class Page:
    """The browser at ``base_url``: open pages, fill and submit forms, read what shows."""

    def __init__(self, driver: WebDriver, base_url: str) -> None:
        self.driver = driver
        self.base_url = base_url.rstrip("/")

    def open(self, path: str) -> Page:
        self.driver.get(self.base_url + path)
        return self

    @property
    def path(self) -> str:
        return self.driver.current_url.removeprefix(self.base_url)

    def find(self, css: str) -> WebElement:
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def find_all(self, css: str) -> list[WebElement]:
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def fill(self, **fields: str) -> Page:
        for name, value in fields.items():
            field = self.find(f'[name="{name}"]')
            field.clear()
            field.send_keys(value)
        return self

    def tick(self, css: str) -> Page:
        box = self.find(css)
        if not box.is_selected():
            box.click()
        return self

    def submit(self, css: str = 'input[type="submit"]') -> Page:
        """Click ``css`` and wait until the next page replaced this one."""
        return self.follow(self.find(css))

    def follow(self, element: WebElement) -> Page:
        current = self.find("html")
        element.click()
        WebDriverWait(self.driver, WAIT_SEC).until(expected_conditions.staleness_of(current))
        return self

    def text(self, css: str = "body") -> str:
        return self.find(css).text

    def messages(self, level: str) -> list[str]:
        """The admin's messages of ``level`` (success, warning, error) on this page."""
        return [item.text for item in self.find_all(f"ul.messagelist li.{level}")]

    def horizontal_overflow(self, css: str = "html") -> int:
        """How many pixels of ``css`` are hidden to the side: its content's width beyond
        what it shows (0 or less: nothing to scroll sideways). The admin's result list
        scrolls inside its own box, so the page alone would never say."""
        return self.driver.execute_script(
            "const box = document.querySelector(arguments[0]);"
            "return box.scrollWidth - box.clientWidth;",
            css,
        )

    def log_in(self, username: str, password: str) -> Page:
        self.open("/admin/login/")
        self.fill(username=username, password=password)
        return self.submit()
