"""Helpers for driving the monitor page: waits on what the page shows, screenshots."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import Any

from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement

from .conftest import SCREENSHOTS


def wait_until(predicate: Any, timeout: float, what: str, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except StaleElementReferenceException as exc:  # re-rendered under us: look again
            last_error = exc
            value = None
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} ({last_error})")


def find(driver: Any, css: str, timeout: float = 20) -> WebElement:
    return wait_until(
        lambda: (driver.find_elements(By.CSS_SELECTOR, css) or [None])[0], timeout, css
    )


def click(driver: Any, css: str, timeout: float = 20) -> None:
    def clicked() -> bool:
        element = find(driver, css, timeout)
        if not element.is_enabled():
            return False
        element.click()
        return True

    wait_until(clicked, timeout, f"{css} to be clickable")


def attribute(driver: Any, css: str, name: str) -> str:
    elements = driver.find_elements(By.CSS_SELECTOR, css)
    return (elements[0].get_attribute(name) or "") if elements else ""


def screenshot(driver: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


class Client:
    """The client API with a bearer token (the e2e harness's agent has none)."""

    def __init__(self, url: str, token: str | None = None) -> None:
        self.url = url
        self.token = token

    def _request(self, method: str, path: str, body: Any = None) -> Any:
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def get(self, path: str) -> Any:
        return self._request("GET", path)

    def post(self, path: str, body: Any = None) -> Any:
        return self._request("POST", path, body if body is not None else {})

    def job(self, job_id: str) -> dict[str, Any]:
        return self.get(f"/api/v1/jobs/{job_id}")["job"]  # type: ignore[no-any-return]
