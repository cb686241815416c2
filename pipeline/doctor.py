"""``pipeline doctor``: is every component this config relies on reachable and usable?

Each check returns a line a human can act on; none of them changes anything.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from pipeline import builder, git, source
from pipeline.config import BuilderConfig, Config, GitOpsConfig, ProjectConfig
from pipeline.errors import PipelineError
from pipeline.registry import RegistryClient
from pipeline.signing import load_private_key, load_public_key
from pipeline.store import Database, current_revision, head_revision

__all__ = ["QUICKSTART_ENGINE", "Check", "run_checks"]

QUICKSTART_ENGINE = "unix:///tmp/pipeline-dockerd/docker.sock"  # where scripts/quickstart.sh starts one


@dataclass(frozen=True)
class Check:
    component: str
    ok: bool
    detail: str


def _database(db: Database) -> str:
    current, head = current_revision(db), head_revision()
    if current != head:
        raise PipelineError(f"schema at {current or 'nothing'}, needs {head}: run `pipeline migrate`")
    return f"{db.dialect}, schema {current}"


def _builders(config: Config) -> Iterator[tuple[str, Callable[[], str]]]:
    """Each builder with its kind, version and platforms, or why builds would skip it."""
    pool = builder.BuilderPool.from_config(config)
    for entry in pool.builders:

        def check(entry: BuilderConfig = entry) -> str:
            status = pool.status(entry, fresh=True)
            if not status.healthy:
                raise PipelineError(f"{entry.kind} {entry.endpoint}: {status.detail}{_engine_hint(entry)}")
            return status.detail

        yield f"builder {entry.name}", check


def _engine_hint(entry: BuilderConfig) -> str:
    """The local engine is the one ``DOCKER_HOST`` names: a new shell without it does not find
    the engine the quickstart started on its own socket."""
    if entry.kind != "docker" or entry.endpoint != "default" or os.environ.get("DOCKER_HOST"):
        return ""
    hint = "; DOCKER_HOST is not set"
    if Path(QUICKSTART_ENGINE.removeprefix("unix://")).exists():
        hint += (
            f": scripts/quickstart.sh started an engine at {QUICKSTART_ENGINE}, run "
            f"`export DOCKER_HOST={QUICKSTART_ENGINE}` (or `source .pipeline-data/quickstart.env`)"
        )
    return hint


def _registries(config: Config) -> Iterator[tuple[str, Callable[[], str]]]:
    for name, registry in config.registries.items():

        def check(registry=registry) -> str:  # type: ignore[no-untyped-def]
            with RegistryClient(registry, timeout=10) as client:
                client.ping()
            return f"{registry.host} answers the v2 API"

        yield f"registry {name}", check


def _git() -> str:
    done = subprocess.run(["git", "--version"], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise PipelineError("git is not installed")
    return done.stdout.strip()


def _repos(config: Config) -> Iterator[tuple[str, Callable[[], str]]]:
    for name, project in config.projects.items():

        def check(project: ProjectConfig = project) -> str:
            refs = source.remote_refs(project)
            heads = [ref for ref in refs if ref.startswith("refs/heads/")]
            return f"{source.public_url(project.repo)}: {len(heads)} branches, {len(refs) - len(heads)} tags"

        yield f"repo of {name}", check


def _signing(config: Config) -> Iterator[tuple[str, Callable[[], str]]]:
    """The signing key opens with its password, and every `verify` key is a P-256 public key."""
    if config.signing is not None:
        signing = config.signing

        def key() -> str:
            load_private_key(signing.key_file, signing.password())
            return f"{signing.key_file} opens with {signing.password_env}"

        yield "signing key", key
    for name, project in config.projects.items():
        for env in project.environments:
            for path in env.verify:
                yield f"verify key of {name}/{env.name}", _opens_public_key(path)


def _opens_public_key(path: Path) -> Callable[[], str]:
    def check() -> str:
        load_public_key(path)
        return f"{path}"

    return check


def _gitops(config: Config) -> Iterator[tuple[str, Callable[[], str]]]:
    """Every environment repository answers with its credentials and has the branch written to."""
    for name, project in config.projects.items():
        for env in project.environments:
            if env.gitops is None:
                continue

            def check(gitops: GitOpsConfig = env.gitops) -> str:
                out = git.run_git(
                    "ls-remote",
                    "--heads",
                    "--",
                    gitops.repo,
                    f"refs/heads/{gitops.branch}",
                    env=git.auth_env(gitops.repo, gitops.git),
                    timeout=60,
                )
                if not out.strip():
                    raise PipelineError(f"{source.public_url(gitops.repo)} has no branch {gitops.branch!r}")
                if gitops.pull_request is not None:
                    gitops.pull_request.token()
                mode = "pull requests" if gitops.pull_request else "pushes"
                return f"{source.public_url(gitops.repo)} {gitops.branch}: reachable ({mode})"

            yield f"gitops of {name}/{env.name}", check


def run_checks(config: Config, db: Database) -> list[Check]:
    checks: list[tuple[str, Callable[[], str]]] = [("database", lambda: _database(db)), ("git", _git)]
    checks += [*_builders(config), *_registries(config), *_repos(config), *_signing(config), *_gitops(config)]
    results: list[Check] = []
    for component, check in checks:
        try:
            results.append(Check(component, True, check()))
        except PipelineError as exc:
            results.append(Check(component, False, exc.message))
        except Exception as exc:  # doctor must report, never crash
            results.append(Check(component, False, f"{type(exc).__name__}: {exc}"))
    return results
