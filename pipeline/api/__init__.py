"""The HTTP edge: translates requests into calls on the pipeline's modules, nothing more."""

from __future__ import annotations

from fastapi import FastAPI

from pipeline import __version__
from pipeline.api._docs import serve_docs
from pipeline.api._openapi import keep_example_nulls
from pipeline.api.problems import install_problem_handlers
from pipeline.api.routes import (
    builds,
    cleanup,
    environments,
    health,
    images,
    metrics,
    notifications,
    pages,
    promotions,
    settings,
    tokens,
    ui,
    webhooks,
)
from pipeline.config import Config, LiveConfig
from pipeline.store import Database

__all__ = ["app_from_env", "create_app"]


def create_app(config: Config | LiveConfig, db: Database, *, needs_engine: bool = False) -> FastAPI:
    """An app bound to one config and database; the caller owns their lifetimes. With
    ``needs_engine`` (a process that also builds), ``/readyz`` demands an answering engine.
    Given a ``LiveConfig``, requests see each reload from the next request on."""
    live = LiveConfig.of(config)
    app = FastAPI(
        title="pipeline",
        summary="GitOps image build-and-promote service",
        version=__version__,
        docs_url=None,  # served by _docs from local files, not a CDN
        redoc_url=None,
    )
    app.state.live, app.state.config, app.state.db = live, live.current, db
    live.on_change(lambda new: setattr(app.state, "config", new))
    app.state.needs_engine = needs_engine
    install_problem_handlers(app)
    keep_example_nulls(app)
    serve_docs(app)
    for router in (
        health.router,
        metrics.router,
        webhooks.router,
        builds.router,
        promotions.router,
        notifications.router,
        environments.router,
        images.router,
        tokens.router,
        settings.router,
        cleanup.router,
        ui.router,
        pages.router,
    ):
        app.include_router(router)
    return app


def app_from_env() -> FastAPI:
    """App factory for ``uvicorn --factory`` (``pipeline api --workers N``): each worker process
    reads the config named by ``PIPELINE_CONFIG`` and opens its own database pool."""
    from pipeline.config import config_file, load_config
    from pipeline.config_reload import ReloadFollower
    from pipeline.store import open_database

    live = LiveConfig(load_config(None), config_file(None))
    db = open_database(live.current.effective_database_url)
    ReloadFollower(db, live).start()  # no scheduler in these processes: a thread follows reloads
    return create_app(live, db)
