"""The HTTP edge: translates requests into calls on the pipeline's modules, nothing more."""

from __future__ import annotations

from fastapi import FastAPI

from pipeline.api.problems import install_problem_handlers
from pipeline.api.routes import builds, environments, health, images, metrics, promotions, tokens, ui, webhooks
from pipeline.config import Config
from pipeline.store import Database

__all__ = ["app_from_env", "create_app"]


def create_app(config: Config, db: Database, *, needs_engine: bool = False) -> FastAPI:
    """An app bound to one config and database; the caller owns their lifetimes. With
    ``needs_engine`` (a process that also builds), ``/readyz`` demands an answering engine."""
    app = FastAPI(
        title="pipeline",
        summary="GitOps image build-and-promote service",
        version="0.1.0",
    )
    app.state.config = config
    app.state.db = db
    app.state.needs_engine = needs_engine
    install_problem_handlers(app)
    for router in (health.router, metrics.router, webhooks.router, builds.router, promotions.router, environments.router,
                   images.router, tokens.router, ui.router):
        app.include_router(router)
    return app


def app_from_env() -> FastAPI:
    """App factory for ``uvicorn --factory`` (``pipeline api --workers N``): each worker process
    reads the config named by ``PIPELINE_CONFIG`` and opens its own database pool."""
    from pipeline.config import load_config
    from pipeline.store import open_database

    config = load_config(None)
    return create_app(config, open_database(config.effective_database_url))
