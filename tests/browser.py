"""Headless Chromium for the browser tests (Debian's chromium and chromium-driver)."""
import os
import shutil
import tempfile

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
# Flags Chromium needs as root in a container without network or GPU.
CHROMIUM_FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--window-size=1400,1000",
]
#: Resolve www.example.test, shell.example.test, evil.example.test ... to loopback (multi-origin tests).
EXAMPLE_HOSTS = "--host-resolver-rules=MAP *.example.test 127.0.0.1"
#: Where a failed browser test's screenshot goes: tests/conftest.py sets it to the run's temporary
#: folder (never into the checkout).
ARTIFACTS = os.path.join(tempfile.gettempdir(), "pyramid-notebook-test-artifacts")


def make_browser(extra_flags=(), performance_log=False):
    """A splinter Browser driving a fresh headless Chromium; returns (browser, profile folder).

    ``extra_flags`` are more Chromium flags, e.g. :data:`EXAMPLE_HOSTS` for multi-origin tests;
    ``performance_log`` records DevTools network events (``driver.get_log("performance")``).
    """
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from splinter import Browser

    # Never let Selenium Manager try to download a driver or browser.
    os.environ.setdefault("SE_OFFLINE", "true")
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    options = Options()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS + list(extra_flags) + [f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    logging_prefs = {"browser": "ALL"}
    if performance_log:
        logging_prefs["performance"] = "ALL"
    options.set_capability("goog:loggingPrefs", logging_prefs)
    browser = Browser("chrome", options=options, service=Service(executable_path=CHROMEDRIVER))
    return browser, profile


def save_artifacts(browser, name):
    """Save a screenshot and the console log of the current page; return the folder."""
    folder = os.path.join(ARTIFACTS, name)
    os.makedirs(folder, exist_ok=True)
    driver = browser.driver
    driver.save_screenshot(os.path.join(folder, "screenshot.png"))
    with open(os.path.join(folder, "console.log"), "w") as f:
        f.write(f"URL: {driver.current_url}\n")
        try:
            for entry in driver.get_log("browser"):
                f.write(f"{entry['level']} {entry['message']}\n")
        except Exception as e:  # the log is a help, not a requirement
            f.write(f"(console log unavailable: {e})\n")
    with open(os.path.join(folder, "page.html"), "w") as f:
        f.write(driver.page_source)
    return folder
