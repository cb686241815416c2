"""The HTTP edge: translates requests into calls on the pipeline's modules, nothing more."""

from __future__ import annotations

from fastapi import FastAPI

from pipeline.api.problems import install_problem_handlers
from pipeline.api.routes import builds, health, webhooks
from pipeline.config import Config
from pipeline.store import Database

__all__ = ["create_app"]


def create_app(config: Config, db: Database) -> FastAPI:
    """An app bound to one config and database; the caller owns their lifetimes."""
    app = FastAPI(
        title="pipeline",
        summary="GitOps image build-and-promote service",
        version="0.1.0",
    )
    app.state.config = config
    app.state.db = db
    install_problem_handlers(app)
    for router in (health.router, webhooks.router, builds.router):
        app.include_router(router)
    return app
