"""The web page's detail views and charts in a real headless Chromium, against the real API on a
real port with a real promotion worker and registries (fixtures of test_web_page): from the
matrix a digest leads to its image page (lineage commit → build → environments), from there to
the build page (timings, Dockerfile steps cached or not, layers, waste, advice, the change
against the previous build, provenance, log) and to the promotion page (steps with seconds,
copy report, signing, write-back); the charts are inline SVG; nothing scrolls sideways at
1280 px or at 800 px; no console errors. A screenshot of each view is kept in test-artifacts/.

The build rows are seeded (as in test_web_page): their log lines are BuildKit's plain progress
format, their insight made by ``pipeline.insight``'s own model and comparison; a real build's
insight and steps on the build page are checked in test_build_features.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pipeline.config import Config
from pipeline.insight import ImageInsight, LayerInfo, WastedFile, compare
from pipeline.store import Database, builds
from tests.integration.test_promotion import IMAGES, config, pushed  # noqa: F401  (fixtures)
from tests.integration.test_web_page import (  # noqa: F401  (fixtures)
    ARTIFACTS,
    HOSTILE,
    acting_as,
    assert_png,
    browser,
    built,
    postgresql,
    promote_and_wait,
    served,
    short,
    until,
)

STEPS_LOG = [
    "checking out 1111 (refs/heads/main)",
    "#4 [base 1/3] FROM docker.io/library/alpine:3.20",
    "#4 CACHED",
    "#5 [base 2/3] RUN echo base > /stage",
    "#5 0.210 hello",
    "#5 DONE 0.4s",
    f"#6 [release 3/3] COPY {HOSTILE} /app",
    "#6 DONE 1.5s",
    "pushed",
]


def _image(size: int, wasted: int) -> ImageInsight:
    layers = [
        LayerInfo("sha256:" + "a" * 64, size - 4000, "/bin/sh -c #(nop) ADD file:0123 in /", False),
        LayerInfo(None, 0, "ENV APP=1", True),
        LayerInfo("sha256:" + "b" * 64, 4000, f"RUN /bin/sh -c echo {HOSTILE} > /app # buildkit", False),
    ]
    return ImageInsight(size, layers, wasted, 0.9731, 0.02, [WastedFile("/var/cache/apk/APKINDEX", 2, wasted)])


def _seed_build_facts(db: Database, built: dict[str, int]) -> None:
    """Timings, steps in the log, insight and advice on v2 (v1 is the previous build); every
    build ran for a while (the duration chart)."""
    before, now = _image(120_000, 0), _image(124_000, 4_000)
    start = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)
    with db.session() as session:
        for n, tag in enumerate(IMAGES):
            began = start + dt.timedelta(minutes=2 * n)
            took = dt.timedelta(seconds=(30, 12, 45)[n])
            builds.record_progress(session, built[tag], started_at=began, finished_at=began + took)
        builds.record_progress(session, built["v1"], insight={**before.to_dict(), "compared": compare(None, before)})
        builds.record_progress(
            session,
            built["v2"],
            timings={"queue": 0.8, "resolve": 0.01, "checkout": 0.6, "build": 12.4, "push": 1.9, "record": 0.1},
            insight={**now.to_dict(), "compared": compare(before, now)},
            advice=[
                {"source": "pipeline", "code": "PL001", "level": "warning", "line": 3, "message": f"pin {HOSTILE}"}
            ],
            provenance={"_type": "https://in-toto.io/Statement/v1", "predicateType": "https://slsa.dev/provenance/v1"},
            steps_total=3,
            steps_cached=1,
        )
        builds.append_logs(session, built["v2"], STEPS_LOG)


def _no_sideways_scroll(driver: Any, width: int) -> None:
    driver.set_window_size(width, 900)
    inner = driver.execute_script("return document.documentElement.clientWidth")
    wide = driver.execute_script("return document.documentElement.scrollWidth")
    assert wide <= inner, f"the page scrolls sideways at {width} px: {wide} > {inner}"


def _shoot(driver: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / f"web-{name}.png"
    shot.unlink(missing_ok=True)
    driver.set_window_size(1280, 900)
    chrome = driver.execute_script("return window.outerHeight - window.innerHeight")
    driver.set_window_size(
        1280, min(driver.execute_script("return document.documentElement.scrollHeight") + chrome, 6000)
    )
    assert driver.save_screenshot(str(shot))
    assert_png(shot)


def _console_errors(driver: Any) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def test_detail_views_charts_and_layout(
    served: tuple[str, list[dict[str, str]]],
    browser: Any,
    postgresql: Database,
    config: Config,
    pushed: dict[str, str],
    built: dict[str, int],
) -> None:
    url, _ = served
    _seed_build_facts(postgresql, built)
    ops = acting_as(postgresql, "ops@example.com")
    promote_and_wait(url, ops, pushed["v1"])
    arrived = promote_and_wait(url, ops, pushed["v2"])
    token = acting_as(postgresql, "viewer@example.com", "viewer")["Authorization"].removeprefix("Bearer ")

    browser.get(url + "/")
    browser.find_element("id", "token").send_keys(token)
    dev = until(browser, lambda d: d.find_element("css selector", '#matrix tr[data-environment="dev"]'), "the matrix")
    actor = browser.find_element("id", "actor")
    until(browser, lambda d: actor.get_attribute("value") == "viewer@example.com", "the token's name as who acts")
    assert "role viewer" in actor.get_attribute("title")
    # the charts: one lead-time bar per environment with arrivals, one column per finished build
    bars = until(browser, lambda d: d.find_elements("css selector", "#lead-time-chart svg g.lead-bar"), "the charts")
    assert len(bars) == 1
    assert "demo/dev" in browser.find_element("css selector", "#lead-time-chart svg").text
    columns = browser.find_elements("css selector", "#build-duration-chart svg rect.column")
    assert len(columns) == len(IMAGES)  # the seeded builds all ran (started and finished)
    assert "build 2 (demo, succeeded): 12 s" in [
        c.find_element("tag name", "title").get_attribute("textContent") for c in columns
    ]
    for width in (1280, 800):
        _no_sideways_scroll(browser, width)
    _shoot(browser, "index")

    # matrix → image page
    dev.find_element("css selector", "td.current a.digest-link").click()
    until(browser, lambda d: d.find_element("id", "image-detail"), "the image page")
    assert browser.current_url == f"{url}/ui/images/{pushed['v2']}"
    stages = [li.get_attribute("data-environment") for li in browser.find_elements("css selector", "ol.lineage li.env")]
    assert stages == ["demo/dev", "demo/staging", "demo/prod"]  # every environment of the project
    assert [li.get_attribute("data-environment") for li in browser.find_elements("css selector", "li.env.running")] == [
        "demo/dev"
    ]
    assert "not reached" in browser.find_element("css selector", 'li.env[data-environment="demo/prod"]').text
    assert "Commit 222222222222" in browser.find_element("css selector", "ol.lineage").text
    for width in (1280, 800):
        _no_sideways_scroll(browser, width)
    _shoot(browser, "image")

    # image → build page
    browser.find_element("css selector", f'ol.lineage a.build-link[href="/ui/builds/{built["v2"]}"]').click()
    until(browser, lambda d: d.find_element("id", "build-detail"), "the build page")
    timings = {
        row.get_attribute("data-step"): row.find_element("css selector", "td.seconds").text
        for row in browser.find_elements("css selector", "#build-timings tr[data-step]")
    }
    assert list(timings) == ["queue", "resolve", "checkout", "build", "push", "record"] and timings["build"] == "12 s"
    steps = browser.find_elements("css selector", "#steps tbody tr.step")
    assert [s.get_attribute("data-cached") for s in steps] == ["yes", "no", "no"]
    assert steps[1].find_element("css selector", "td.seconds").text == "0.4 s" and HOSTILE in steps[2].text
    layers = browser.find_elements("css selector", "#layers tbody tr")
    assert len(layers) == 3 and "ADD file:0123" in layers[0].text and "no files" in layers[1].text
    assert "4.0 kB" in browser.find_element("id", "insight-facts").text  # wasted
    assert "97.31 %" in browser.find_element("id", "insight-facts").text  # efficiency
    compared = browser.find_element("id", "compare").text
    assert "+4.0 kB" in compared, compared
    assert browser.find_element("css selector", f'#build-compare a[href="/ui/builds/{built["v1"]}"]')
    assert f"pin {HOSTILE}" in browser.find_element("id", "build-advice").text
    assert "slsa.dev/provenance/v1" in browser.find_element("id", "build-provenance").text
    assert "#5 DONE 0.4s" in browser.find_element("id", "detail-log").text
    assert browser.execute_script("return document.querySelectorAll('script').length") == 1  # HOSTILE stayed text
    for width in (1280, 800):
        _no_sideways_scroll(browser, width)
    _shoot(browser, "build")

    # build → promotion page
    browser.find_element("css selector", f'#build-promotions a[href="/ui/promotions/{arrived["id"]}"]').click()
    until(browser, lambda d: d.find_element("id", "promotion-detail"), "the promotion page")
    kinds = [
        r.get_attribute("data-kind")
        for r in browser.find_elements("css selector", "#promotion-steps-table tr[data-kind]")
    ]
    assert kinds == [s["kind"] for s in arrived["steps"]]
    assert all(
        r.find_element("css selector", "td.seconds").text.endswith(" s")
        for r in browser.find_elements("css selector", "#promotion-steps-table tr[data-kind]")
    )
    report = browser.find_element("id", "copy-facts").text
    assert f"Blobs mounted\n{arrived['copy_report']['blobs_mounted']}" in report, report
    assert browser.find_element("css selector", f'#promotion-facts a[href="/ui/builds/{built["v2"]}"]')
    assert short(pushed["v1"]) in browser.find_element("id", "promotion-facts").text  # what it replaced
    for width in (1280, 800):
        _no_sideways_scroll(browser, width)
    _shoot(browser, "promotion")

    # a link that leads nowhere answers 404, and no view logged a script error
    missing = "return fetch('/ui/fragments/build/999999', {headers: {Authorization: 'Bearer ' + arguments[0]}})"
    assert browser.execute_script(missing + ".then(r => r.status)", token) == 404
    assert [e for e in _console_errors(browser) if "999999" not in e] == []
