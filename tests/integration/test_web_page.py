"""The ops web page at ``/`` in a real headless Chromium (Debian's ``chromium``, driven through
Debian's ``chromium-driver`` by Selenium), against the real API served over HTTP by uvicorn in this
process, promotions worked by a real worker, registries real: the matrix shows what was promoted,
a rollback clicked on the page changes it and holds the environment, the timeline records it, the
live log view follows a build, API errors are shown; a screenshot is kept in ``test-artifacts/``.
Without a browser: the server-rendered HTML escapes every string that comes from the database.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from pipeline.api import create_app
from pipeline.config import Config
from pipeline.store import Database, migrate, open_database, tokens
from tests.integration.test_promotion import IMAGES, config, pushed, work  # noqa: F401  (fixtures)
from tests.seed import serve_with_promoter, succeeded_builds
from tests.services import Postgres

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
HOSTILE = "<script>alert('x')</script>"


def acting_as(db: Database, name: str, role: str = "admin") -> dict[str, str]:
    """Headers of a real API token named ``name`` (the actor it records)."""
    with db.session() as session:
        _, secret = tokens.create_token(session, name=name, role=role, environments=None, created_by="tests")
    return {"X-Pipeline-Actor": name, "Authorization": f"Bearer {secret}"}


def short(digest: str) -> str:
    return "sha256:" + digest.removeprefix("sha256:")[:12]


def page_app(cfg: Config, db: Database) -> FastAPI:
    return create_app(cfg, db)


@pytest.fixture
def sqlite(tmp_path: Path) -> Iterator[Database]:
    database = open_database(f"sqlite:///{tmp_path / 'web.db'}")
    migrate(database)
    yield database
    database.dispose()


@pytest.fixture
def postgresql(postgres: Postgres, pg_template: str) -> Iterator[Database]:
    """For the page with a live worker beside it: on SQLite, a request that reads and then writes
    while the worker commits can fail with "database is locked" (seen in test_cli_ops too)."""
    name = f"web{os.getpid()}"
    database = open_database(postgres.create_database(name, template=pg_template))
    yield database
    database.dispose()
    postgres.drop_database(name)


def make_builds(db: Database, cfg: Config, digests: dict[str, str]) -> dict[str, int]:
    """One succeeded build row (with a log) per pushed image: tag -> build id."""
    made = succeeded_builds(
        db, cfg, "demo", [digests[t] for t in IMAGES], logs=lambda n: [f"building {IMAGES[n]}", "step 1/2", "done"]
    )
    return dict(zip(IMAGES, made, strict=True))


@pytest.fixture
def built(postgresql: Database, config: Config, pushed: dict[str, str]) -> dict[str, int]:
    return make_builds(postgresql, config, pushed)


@pytest.fixture
def served(postgresql: Database, config: Config, built: dict[str, int]) -> Iterator[tuple[str, list[dict[str, str]]]]:
    """The app on a real port with a promotion worker beside it; and the headers of every POST it got."""
    app = page_app(config, postgresql)
    posted: list[dict[str, str]] = []

    @app.middleware("http")
    async def record(request: Any, call_next: Any) -> Any:
        if request.method == "POST":
            posted.append(dict(request.headers))
        return await call_next(request)

    with serve_with_promoter(app, postgresql, config, "web-promoter") as url:
        yield url, posted


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    for binary in (CHROMIUM, CHROMEDRIVER):
        if not Path(binary).exists() and not shutil.which(binary):
            pytest.fail(f"{binary} is missing: run `bash scripts/install-test-deps.sh` (as root) first")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1440,1100",
        f"--user-data-dir={tmp_path / 'chromium'}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def until(driver: Any, check: Callable[[Any], Any], what: str, timeout: float = 20) -> Any:
    from selenium.common.exceptions import (
        NoAlertPresentException,
        NoSuchElementException,
        StaleElementReferenceException,
    )
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(
        driver,
        timeout,
        poll_frequency=0.2,
        ignored_exceptions=(NoAlertPresentException, NoSuchElementException, StaleElementReferenceException),
    )
    try:
        return wait.until(check)
    except Exception as exc:
        messages = driver.find_element("id", "messages").text
        raise AssertionError(f"waited {timeout}s for {what}; messages on the page: {messages!r}") from exc


def promote_and_wait(url: str, headers: dict[str, str], digest: str) -> dict[str, Any]:
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        answer = client.post("/api/v1/promotions", json={"project": "demo", "environment": "dev", "digest": digest})
        assert answer.status_code == 202, answer.text
        row = answer.json()
        for _ in range(200):
            row = client.get(f"/api/v1/promotions/{row['id']}").json()
            if row["status"] in ("succeeded", "failed", "rejected"):
                break
            time.sleep(0.1)
    assert row["status"] == "succeeded", row
    return row


def matrix_row(driver: Any, environment: str) -> Any:
    return driver.find_element("css selector", f'#matrix tr[data-project="demo"][data-environment="{environment}"]')


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    assert width >= 800 and height >= 600 and len(data) > 20_000, (width, height, len(data))


def test_rollback_through_the_page(
    served: tuple[str, list[dict[str, str]]],
    browser: Any,
    postgresql: Database,
    pushed: dict[str, str],
    built: dict[str, int],
) -> None:
    url, posted = served
    ops = acting_as(postgresql, "ops@example.com")
    promote_and_wait(url, ops, pushed["v1"])
    promote_and_wait(url, ops, pushed["v2"])
    token = acting_as(postgresql, "web-user@example.com")["Authorization"].removeprefix("Bearer ")

    browser.get(url + "/")  # a navigation carries no token: the page comes without data
    assert "Paste an API token" in browser.find_element("id", "matrix-box").text
    actor = browser.find_element("id", "actor")
    assert actor.get_attribute("readonly") is not None  # tokens are on: the token names who acts
    browser.find_element("id", "token").send_keys(token)
    dev = until(browser, lambda d: matrix_row(d, "dev"), "the matrix once the token is pasted")
    until(browser, lambda d: actor.get_attribute("value") == "web-user@example.com", "the token's name")
    assert dev.find_element("css selector", "td.current code").text == short(pushed["v2"])
    assert dev.find_element("css selector", "td.current code").get_attribute("title") == pushed["v2"]
    assert "ops@example.com" in dev.find_element("css selector", "td.actor").text
    assert dev.find_element("css selector", "td.previous code").text == short(pushed["v1"])
    assert re.fullmatch(r"\d+ s ago|just now", dev.find_element("css selector", "td.age").text)
    assert not dev.find_elements("css selector", ".badge.held")
    assert matrix_row(browser, "staging").find_element("css selector", "button.rollback").get_attribute("disabled")

    browser.find_element("id", "reason").send_keys("v2 breaks login")
    matrix_row(browser, "dev").find_element("css selector", "button.rollback").click()
    until(browser, lambda d: d.switch_to.alert, "the confirmation").accept()

    until(
        browser,
        lambda d: (
            matrix_row(d, "dev").find_element("css selector", "td.current code").text == short(pushed["v1"])
            and matrix_row(d, "dev").find_elements("css selector", ".badge.held")
        ),
        "the matrix to show the restored digest, held",
    )
    dev = matrix_row(browser, "dev")
    assert "web-user@example.com" in dev.find_element("css selector", "td.actor").text
    assert dev.find_element("css selector", "button.release").is_displayed()
    rollback = until(
        browser,
        lambda d: d.find_element(
            "css selector", '#timeline tbody tr[data-trigger="rollback"][data-status="succeeded"]'
        ),
        "the rollback in the timeline",
    )
    assert short(pushed["v1"]) in rollback.text and "web-user@example.com" in rollback.text
    assert "v2 breaks login" in rollback.text
    timeline = [
        row.get_attribute("data-trigger") for row in browser.find_elements("css selector", "#timeline tbody tr")
    ]
    assert timeline == ["rollback", "manual", "manual"]  # newest first
    [sent] = [h for h in posted if h.get("authorization") == f"Bearer {token}"]
    assert "x-pipeline-actor" not in sent  # the service takes the token's name; the page does not pretend
    assert browser.execute_script("return sessionStorage.getItem('pipeline.token')") == token

    # an API refusal (problem+json detail) is shown on the page
    from selenium.webdriver.support.ui import Select

    Select(browser.find_element("id", "promote-environment")).select_by_value("prod")
    browser.find_element("id", "promote-target").send_keys(str(built["v3"]))
    browser.find_element("css selector", "#promote-form button[type=submit]").click()
    until(
        browser,
        lambda d: "has not reached staging" in d.find_element("css selector", "#messages .error").text,
        "the refusal in the message area",
    )

    # the live log view of a build
    # the table is re-rendered by its refresh: find and click in one retried step
    until(
        browser,
        lambda d: d.find_element("css selector", f'#builds button[data-build="{built["v2"]}"]').click() or True,
        "the build's log button",
    )
    until(browser, lambda d: "(succeeded)" in d.find_element("id", "log-title").text, "the log to end")
    assert browser.find_element("id", "log").text.splitlines() == [
        "building v2",
        "step 1/2",
        "done",
        "— build succeeded —",
    ]

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "web-page.png"
    shot.unlink(missing_ok=True)
    browser.execute_script("window.scrollTo(0, 0)")
    chrome = browser.execute_script("return window.outerHeight - window.innerHeight")
    browser.set_window_size(1440, browser.execute_script("return document.documentElement.scrollHeight") + chrome)
    assert browser.save_screenshot(str(shot))
    assert_png(shot)
    errors = [
        e
        for e in browser.get_log("browser")  # a refused request is logged; a script error would be too
        if e["level"] == "SEVERE" and "Failed to load resource" not in e["message"]
    ]
    assert errors == []


def test_the_page_is_server_rendered_escaped_and_self_contained(
    sqlite: Database, config: Config, pushed: dict[str, str]
) -> None:
    built = make_builds(sqlite, config, pushed)
    with TestClient(page_app(config, sqlite)) as api:
        for tag in ("v1", "v2"):
            answer = api.post(
                "/api/v1/promotions",
                headers=acting_as(sqlite, f"{HOSTILE}@{tag}"),
                json={
                    "project": "demo",
                    "environment": "dev",
                    "build_id": built[tag],
                    "reason": f'{HOSTILE} "quoted" & <b>bold</b>',
                },
            )
            assert answer.status_code == 202, answer.text
            assert work(sqlite, config) == 1
        assert (
            api.post(
                "/api/v1/environments/demo/dev/rollback", json={"reason": HOSTILE}, headers=acting_as(sqlite, HOSTILE)
            ).status_code
            == 202
        )
        assert work(sqlite, config) == 1

        locked = api.get("/")  # without a token: the page, but none of the data
        assert locked.status_code == 200 and "Paste an API token" in locked.text
        assert short(pushed["v1"]) not in locked.text and "alert" not in locked.text
        assert api.get("/ui/fragments/matrix").status_code == 401
        api.headers.update(acting_as(sqlite, "reader", "viewer"))

        page = api.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        body = page.text
        row = re.search(r'<tr data-project="demo" data-environment="dev".*?</tr>', body, re.DOTALL)
        assert row is not None, "the matrix row of demo/dev is not server-rendered"
        assert short(pushed["v1"]) in row[0] and f'title="{pushed["v1"]}"' in row[0]
        assert short(pushed["v2"]) not in row[0]  # a second rollback would need something before v1
        assert re.search(r'<button[^>]*data-action="rollback"[^>]* disabled', row[0])
        assert "held" in row[0] and "1" * 12 in row[0]
        escaped = "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"  # markupsafe's escape (Jinja2 autoescape)
        assert escaped in row[0] and f"{escaped}@v2" in body and "&#34;quoted&#34; &amp; &lt;b&gt;" in body
        assert "<script>alert" not in body and "<b>bold" not in body
        assert body.count("<script") == 1  # ours, from /ui/static
        assert f'<tr data-build="{built["v3"]}"' in body and 'data-trigger="rollback"' in body

        fragment = api.get("/ui/fragments/matrix")
        assert fragment.status_code == 200 and escaped in fragment.text and "<script>" not in fragment.text
        timeline = api.get("/ui/fragments/timeline", params={"project": "demo"}).text
        assert timeline.count('data-trigger="manual"') == 2 and escaped in timeline
        assert api.get("/ui/fragments/timeline", params={"project": "nope"}).status_code == 404

        for name, kind in (("ui.css", "text/css"), ("ui.js", "text/javascript")):
            static = api.get(f"/ui/static/{name}")
            assert static.status_code == 200 and static.headers["content-type"].startswith(kind)
            body += static.text
        assert api.get("/ui/static/../routes/ui.py").status_code == 404
        assert api.get("/ui/static/other.js").status_code == 404
        # nothing from elsewhere: every src/href and url() is a path on this service
        for link in re.findall(r'(?:src|href)="([^"]*)"|url\(([^)]*)\)', body):
            target = "".join(link)
            assert target.startswith("/") and not target.startswith("//"), target
        assert "http://" not in body and "https://" not in body
        assert api.get("/docs").status_code == 200
        assert "/" not in api.get("/openapi.json").json()["paths"]
