"""Headless Chromium for the service's page tests (selenium; not a test module).

``Browser`` logs a hub user in through the hub's form and OAuth, finds a pending request's
row, clicks its approve button and keeps screenshots; ``available()`` says whether the
system's Chromium and chromedriver are there.
"""

from __future__ import annotations

import os
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM, DRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
__all__ = ["By", "Browser", "available"]


def available() -> bool:
    return os.access(CHROMIUM, os.X_OK) and os.access(DRIVER, os.X_OK)


class Browser:
    def __init__(self, timeout: float = 60):
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                    "--disable-gpu", "--window-size=1280,1600"):
            options.add_argument(arg)
        self.driver = webdriver.Chrome(service=Service(str(DRIVER)), options=options)
        self.driver.set_page_load_timeout(timeout)
        self.timeout = timeout

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc) -> None:
        self.driver.quit()

    def login(self, hub_url: str, user: str, password: str, path: str) -> None:
        self.driver.get(hub_url + path)
        self.driver.find_element(By.ID, "username_input").send_keys(user)
        self.driver.find_element(By.ID, "password_input").send_keys(password)
        self.driver.find_element(By.ID, "login_submit").click()
        WebDriverWait(self.driver, self.timeout).until(
            lambda d: d.find_elements(By.ID, "actions"))

    def request_row(self, request_id: str):
        return self.driver.find_element(By.CSS_SELECTOR, f'tr[data-request="{request_id}"]')

    def click_approve(self, row) -> None:
        row.find_element(By.CSS_SELECTOR, "form.approve button").click()
        WebDriverWait(self.driver, self.timeout).until(
            lambda d: d.find_elements(By.ID, "result") or d.find_elements(By.TAG_NAME, "h2"))

    def body_text(self) -> str:
        return self.driver.find_element(By.TAG_NAME, "body").text

    def cookies(self) -> dict[str, str]:
        return {c["name"]: c["value"] for c in self.driver.get_cookies()}

    def save(self, path: Path) -> None:
        self.driver.save_screenshot(str(path))
