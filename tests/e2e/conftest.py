"""Browser tests: the team pages driven through Debian's Chromium against the live server.

Playwright drives `/usr/bin/chromium` and never downloads a browser of its own. Without that
browser the tests are skipped, except in CI (`CI=true`), where a missing browser fails them so
that CI cannot pass by silently testing less.

Every page a test opens fails the test if the browser reports a JavaScript error or a console
error, which is how Chromium reports a Content-Security-Policy violation: the pages promise to
work under a policy that allows no inline code, and this is where that promise is checked.

`KEYVAULT_SCREENSHOTS=<directory>` saves a PNG of each main page there (`make screenshots`).
"""

import os
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
# Every wait is bounded: a page that never shows what a test expects fails in seconds.
TIMEOUT_MS = 20_000

# Chromium already logs a violation as a console error; this says which directive, by name.
REPORT_CSP_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  const blocked = event.blockedURI || "inline code";
  console.error(`CSP violation: ${event.violatedDirective} blocked ${blocked}`);
});
"""


@pytest.fixture(scope="package")
def browser():
    """One Chromium for the whole e2e package.

    Package-scoped rather than session-scoped on purpose: Playwright's sync API keeps an event
    loop running in the test thread, which makes Django refuse ORM calls there, so the loop
    (and `DJANGO_ALLOW_ASYNC_UNSAFE`, which lets these tests set up data regardless) must end
    before the rest of the suite runs.
    """
    if not CHROMIUM.exists():
        reason = (
            f"{CHROMIUM} is missing; install Debian's chromium (apt-get install chromium) "
            "to run the browser tests"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true and {reason}", pytrace=False)
        pytest.skip(reason)
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)

    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
            yield chromium
            chromium.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def site(live_server, transactional_db):
    """The live server's base URL. The server runs in another thread of this process, so it
    sees rows committed by the test (hence the transactional database) and sends mail to the
    same locmem outbox."""
    return live_server.url


@pytest.fixture
def open_page(browser):
    """`open_page()` or `open_page(viewport=PHONE)`: a page in a fresh browser context (its own
    cookies, so its own session). Browser errors on any of them fail the test at teardown."""
    contexts, problems = [], []

    def open_(viewport=DESKTOP, **options):
        context = browser.new_context(viewport=viewport, **options)
        context.set_default_timeout(TIMEOUT_MS)
        context.add_init_script(script=REPORT_CSP_VIOLATIONS)
        contexts.append(context)
        page = context.new_page()
        page.on(
            "console",
            lambda message: (
                message.type == "error"
                and problems.append(f"console error on {page.url}: {message.text}")
            ),
        )
        page.on("pageerror", lambda error: problems.append(f"JS error on {page.url}: {error}"))
        return page

    yield open_
    for context in contexts:
        context.close()
    if problems:
        pytest.fail("The browser reported errors:\n" + "\n".join(problems), pytrace=False)


@pytest.fixture
def screenshot():
    """`screenshot(page, "name")`: saves `name.png` when KEYVAULT_SCREENSHOTS names a directory;
    does nothing otherwise."""
    directory = os.environ.get("KEYVAULT_SCREENSHOTS")

    def save(page, name):
        if not directory:
            return
        Path(directory).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(directory) / f"{name}.png"), full_page=True)

    return save
