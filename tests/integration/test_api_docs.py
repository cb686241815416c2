"""``/docs`` and ``/redoc`` work without the internet: every script, style sheet and icon the
pages name is a path on the service itself, and the service answers it with the real file."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from pipeline.api import create_app
from pipeline.config import parse_config
from pipeline.store import migrate, open_database


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    db = open_database(f"sqlite:///{tmp_path / 'docs.db'}")
    migrate(db)
    with TestClient(create_app(parse_config({"data_dir": str(tmp_path)}), db)) as test_client:
        yield test_client
    db.dispose()


def _assets(html: str) -> list[str]:
    return re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)


# What each file must contain to be the real thing (not an empty file or an error page).
SIGNATURES = {".js": ("SwaggerUIBundle", "Redoc"), ".css": (".swagger-ui",), ".png": ("\x89PNG",)}


@pytest.mark.parametrize(("page", "needs"), [("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc.standalone.js")])
def test_docs_pages_load_every_asset_from_the_service(client: TestClient, page: str, needs: str) -> None:
    answer = client.get(page)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html")
    assets = _assets(answer.text)
    assert any(a.endswith(needs) for a in assets), assets
    assert "fonts.googleapis.com" not in answer.text and "cdn.jsdelivr.net" not in answer.text
    for asset in assets:
        assert asset.startswith("/") and not asset.startswith("//"), f"{page} loads {asset} from elsewhere"
        served = client.get(asset)
        assert served.status_code == 200, asset
        text = served.content.decode("latin-1")
        suffix = Path(asset).suffix
        assert len(served.content) > 1000 and any(s in text for s in SIGNATURES[suffix]), asset
    assert "'/openapi.json'" in answer.text or '"/openapi.json"' in answer.text
    assert client.get("/openapi.json").json()["info"]["title"] == "pipeline"


def test_no_files_outside_the_assets_are_served(client: TestClient) -> None:
    assert client.get("/docs/assets/%2e%2e/%2e%2e/pyproject.toml").status_code == 404
    assert client.get("/docs/assets/nothing.js").status_code == 404
    assert client.get("/docs/oauth2-redirect").status_code == 200
