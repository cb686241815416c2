"""The pipeline's own Dockerfile rules (each fires on a bad example, stays quiet on the good
one), the Dockerfile reader behind them, real hadolint, and the build-to-build comparison."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from pipeline.errors import BuildError
from pipeline.insight import Advice, ImageInsight, LayerInfo, WastedFile, advise, compare

NO_HADOLINT = "/nonexistent/hadolint"


def _ours(tmp_path: Path, text: str, insight: ImageInsight | None = None) -> list[Advice]:
    """Only the pipeline's rules (hadolint pointed at a missing binary)."""
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(text)
    return [a for a in advise(dockerfile, insight, hadolint=NO_HADOLINT) if a.code.startswith("PL")]


def _codes(advice: list[Advice]) -> list[tuple[str, str, int | None]]:
    return [(a.code, a.level, a.line) for a in advice]


def _insight(wasted: int, files: list[WastedFile], ratio: float = 0.5) -> ImageInsight:
    layers = [
        LayerInfo("sha256:" + "a" * 64, 1000, "", False),
        LayerInfo("sha256:" + "b" * 64, 200, "RUN x", False),
        LayerInfo(None, 0, "USER app", True),
    ]
    return ImageInsight(
        size=1200,
        layers=layers,
        wasted_bytes=wasted,
        efficiency=1.0 - ratio / 10,
        user_wasted_percent=ratio,
        wasted_files=files,
    )


# --- PL001: apt-get update alone ----------------------------------------------------------


def test_apt_get_update_in_its_own_run_is_flagged(tmp_path: Path) -> None:
    advice = _ours(tmp_path, "FROM debian:12\nRUN apt-get update\nRUN apt-get install -y curl\nUSER app\n")
    assert _codes(advice) == [("PL001", "warning", 2)]
    assert "stale package lists" in advice[0].message


def test_apt_get_update_chained_with_install_is_quiet(tmp_path: Path) -> None:
    text = (
        "FROM debian:12\nRUN apt-get update \\\n"
        "    # the comment line inside a continuation is skipped\n"
        "    && apt-get install -y --no-install-recommends curl \\\n"
        "    && rm -rf /var/lib/apt/lists/*\nUSER app\n"
    )
    assert _ours(tmp_path, text) == []


def test_apt_update_in_exec_form_and_heredoc_is_seen(tmp_path: Path) -> None:
    text = (
        'FROM debian:12\nRUN ["apt", "update"]\nRUN <<EOF\nset -e\napt-get -q update\nEOF\n'
        "RUN <<-EOF\n\tapt-get update\n\tapt-get install -y curl\n\tEOF\nUSER app\n"
    )
    assert _codes(_ours(tmp_path, text)) == [("PL001", "warning", 2), ("PL001", "warning", 3)]


# --- PL002: runs as root ------------------------------------------------------------------


def test_last_user_root_is_a_warning(tmp_path: Path) -> None:
    text = "FROM alpine:3.20\nUSER app\nRUN make\nUSER root:root\n"
    assert _codes(_ours(tmp_path, text)) == [("PL002", "warning", 4)]


def test_no_user_in_the_final_stage_is_info(tmp_path: Path) -> None:
    text = "FROM golang:1.22 AS build\nUSER builder\nFROM scratch\nCOPY --from=build /x /x\n"
    assert _codes(_ours(tmp_path, text)) == [("PL002", "info", None)]


def test_non_root_last_user_is_quiet(tmp_path: Path) -> None:
    assert _ours(tmp_path, "FROM alpine:3.20\nUSER root\nRUN apk add git\nUSER 10001\n") == []


def test_user_inside_a_heredoc_body_is_not_an_instruction(tmp_path: Path) -> None:
    text = "FROM alpine:3.20\nUSER 10001\nCOPY <<EOF /etc/motd\nUSER root\nEOF\n"
    assert _ours(tmp_path, text) == []


# --- PL003: source copied before the dependency install -----------------------------------


@pytest.mark.parametrize(
    "install",
    [
        "pip install --no-cache-dir -r requirements.txt",
        "--mount=type=cache,target=/root/.npm npm ci",
        "go mod download",
        "poetry install --no-root",
    ],
)
def test_copying_the_context_before_the_install_is_flagged(tmp_path: Path, install: str) -> None:
    text = f"FROM base:1\nWORKDIR /app\nCOPY . .\nRUN {install}\nUSER app\n"
    advice = _ours(tmp_path, text)
    assert _codes(advice) == [("PL003", "warning", 3)]
    assert "line 4" in advice[0].message


def test_manifests_first_then_source_is_quiet(tmp_path: Path) -> None:
    text = (
        "FROM base:1\nWORKDIR /app\nCOPY requirements.txt .\n"
        "RUN pip install -r requirements.txt\nCOPY . .\nRUN python -m compileall .\n"
        "FROM base:1\nCOPY --from=0 /app /app\nRUN npm ci\nUSER app\n"
    )
    assert _ours(tmp_path, text) == []


# --- PL004: files removed or overwritten in a later layer ---------------------------------


def test_wasted_files_name_the_top_files(tmp_path: Path) -> None:
    files = [WastedFile("/var/cache/big.tar", 2, 5_000_000), WastedFile("/etc/conf", 3, 120), WastedFile("/tmp", 4, 0)]
    advice = _ours(tmp_path, "FROM base:1\nUSER app\n", _insight(5_000_120, files))
    assert _codes(advice) == [("PL004", "warning", None)]
    assert "/var/cache/big.tar (5.0 MB in 2 layers)" in advice[0].message
    assert "/etc/conf (120 B in 3 layers)" in advice[0].message
    assert "/tmp" not in advice[0].message  # 0 bytes wasted: not worth naming


def test_no_waste_is_quiet(tmp_path: Path) -> None:
    quiet = _insight(0, [WastedFile("/etc", 5, 0)], ratio=0.0)
    assert _ours(tmp_path, "FROM base:1\nUSER app\n", quiet) == []


def test_small_waste_is_only_info(tmp_path: Path) -> None:
    small = _insight(40, [WastedFile("/etc/x", 2, 40)], ratio=0.01)
    assert _codes(_ours(tmp_path, "FROM base:1\nUSER app\n", small)) == [("PL004", "info", None)]


# --- Dockerfile reader edge cases ---------------------------------------------------------


def test_escape_directive_and_backtick_continuations(tmp_path: Path) -> None:
    text = "# escape=`\nFROM base:1\nRUN apt-get update `\n    && apt-get install -y x\nUSER app\n"
    assert _ours(tmp_path, text) == []


# --- hadolint -----------------------------------------------------------------------------


def test_real_hadolint_reports_latest_tag_and_our_rules_join_it(tmp_path: Path) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM debian:latest\nRUN apt-get update\nUSER root\n")
    advice = advise(dockerfile)
    found = {(a.source, a.code, a.line) for a in advice}
    assert ("hadolint", "DL3007", 1) in found
    assert ("pipeline", "PL001", 2) in found
    assert ("hadolint", "DL3002", 3) in found
    assert ("pipeline", "PL002", 3) not in found  # same finding as DL3002: reported once
    assert all(a.level in ("error", "warning", "info", "style") for a in advice)
    assert [a.line or 0 for a in advice if a.line] == sorted(a.line for a in advice if a.line)


def test_missing_hadolint_is_info_not_failure(tmp_path: Path) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM debian:12\nRUN apt-get update\n")
    advice = advise(dockerfile, hadolint=NO_HADOLINT)
    assert {a.code for a in advice} == {"PL001", "PL002", "hadolint-missing"}
    note = next(a for a in advice if a.code == "hadolint-missing")
    assert note.level == "info" and "not installed" in note.message


def test_unreadable_dockerfile_is_an_actionable_build_error(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="cannot read Dockerfile .*Dockerfile.missing"):
        advise(tmp_path / "Dockerfile.missing")


# --- compare and JSON form ----------------------------------------------------------------


def test_compare_gives_deltas_and_accepts_stored_json() -> None:
    before = _insight(300, [WastedFile("/a", 2, 300)], ratio=0.25)
    after = ImageInsight(
        size=1500,
        layers=before.layers + [LayerInfo("sha256:c", 300, "", False)],
        wasted_bytes=100,
        efficiency=0.99,
        user_wasted_percent=0.2,
        wasted_files=[WastedFile("/b", 2, 100)],
    )
    stored = json.loads(json.dumps(before.to_dict()))
    for previous in (before, stored):
        delta = compare(previous, after)
        assert delta["size_delta"] == 300 and delta["wasted_bytes_delta"] == -200
        assert delta["layer_count_delta"] == 1
        assert delta["efficiency_delta"] == pytest.approx(0.99 - 0.975)
        assert delta["previous"]["wasted_bytes"] == 300 and delta["current"]["layer_count"] == 3
    assert ImageInsight.from_dict(stored) == before


def test_compare_without_previous_and_nan_stays_json_safe() -> None:
    single = ImageInsight(
        size=10,
        layers=[LayerInfo("sha256:a", 10, "", False)],
        wasted_bytes=0,
        efficiency=1.0,
        user_wasted_percent=math.nan,
    )
    delta = compare(None, single)
    assert delta["previous"] is None and delta["size_delta"] is None
    assert single.to_dict()["user_wasted_percent"] is None
    json.dumps([delta, single.to_dict()], allow_nan=False)
    partial = compare({"size": 4, "wasted_bytes": "?"}, single)  # an older stored shape
    assert partial["size_delta"] == 6 and partial["wasted_bytes_delta"] is None
