"""Benchmark: the source step's mirror cache against fresh clones, over a real Git smart-HTTP host.

Goal: on a generated repository of 2,000 commits, the fetch that follows a new push into the
existing mirror costs at most 0.2 of a fresh mirror clone (ratio "incremental fetch / fresh
clone" <= 0.2). Also reported: the full checkout path of a build (``pipeline.source.checkout``:
mirror fetch, ``--shared`` clone, checkout of the new SHA) against what a build would do without
the mirror cache, a hand-run ``git clone URL dir && git -C dir checkout SHA``.

Everything runs on 127.0.0.1: ``tests.git_server.GitHttpServer`` (git http-backend behind token
auth, like a private host) serves a repository generated with ``git fast-import``.

    cd /work/main && uv run python bench/source_fetch.py [--quick]
"""

from __future__ import annotations

import argparse
import base64
import os
import random
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path

from _common import (
    OutOfTime,
    Stopwatch,
    code_version,
    machine_load,
    median,
    ratio_line,
    table,
    time_limit,
)

from pipeline.config import ProjectConfig
from pipeline.source import checkout, update_mirror
from tests.git_server import GitHttpServer

TOKEN_ENV = "BENCH_TOKEN"
TOKEN = "bench-token-0123456789abcdef"
REPO_NAME = "acme/app"
GOAL = 0.2
GIT_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_AUTHOR_NAME": "Bench",
    "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_COMMITTER_NAME": "Bench",
    "GIT_COMMITTER_EMAIL": "bench@example.com",
}


def git(
    *args: str,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    stdin: bytes | None = None,
    timeout: float = 600,
) -> str:
    """Run git with no machine or user config; raise with git's stderr when it fails."""
    full_env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": "/nonexistent",
        **GIT_ENV,
        **(env or {}),
    }
    proc = subprocess.run(
        ["git", *args],
        cwd=cwd,
        env=full_env,
        input=stdin,
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"git {' '.join(args[:3])} failed ({proc.returncode}): {proc.stderr.decode(errors='replace')[-2000:]}"
        )
    return proc.stdout.decode()


def auth_env(url: str) -> dict[str, str]:
    """The token as an extra header through GIT_CONFIG_* (never in the URL or argv)."""
    basic = base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()
    origin = url.split("/", 3)[:3]
    return {
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": f"http.{'/'.join(origin)}/.extraHeader",
        "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}",
    }


# -- the generated repository ------------------------------------------------------------------


class RepoGenerator:
    """A fast-import stream for a repository that looks like a service's history: a few hundred
    source files edited a few hunks at a time, the odd new file, and binary assets (images,
    fixtures) replaced now and then; that mix gives a realistic pack of roughly 20 MB."""

    def __init__(self, seed: int = 20261128) -> None:
        self.rng = random.Random(seed)
        self.vocab = [
            "".join(self.rng.choices("abcdefghijklmnopqrstuvwxyz_", k=self.rng.randint(2, 11))) for _ in range(3000)
        ]
        self.vocab += [
            "def",
            "return",
            "if",
            "else",
            "for",
            "in",
            "self",
            "None",
            "import",
            "class",
            "(",
            ")",
            ":",
            "=",
            "==",
            "+",
            ",",
            "[",
            "]",
            "{",
            "}",
            "0",
            "1",
            "'",
            '"',
        ]
        self.files: dict[str, list[str]] = {}
        self.assets: dict[str, bytes] = {}
        self.time = 1_700_000_000

    def _line(self) -> str:
        indent = "    " * self.rng.choice((0, 1, 1, 2, 2, 2, 3))
        return indent + " ".join(self.rng.choices(self.vocab, k=self.rng.randint(2, 12)))

    def _text_file(self) -> list[str]:
        size = min(int(self.rng.lognormvariate(5.3, 0.8)), 2000)  # lines; median ~200 (~8 KB)
        return [self._line() for _ in range(max(size, 5))]

    def _path(self, n: int) -> str:
        top = (
            "src/app",
            "src/app/api",
            "src/app/core",
            "src/app/db",
            "tests",
            "docs",
            "web/static",
            "tools",
        )[n % 8]
        ext = {"docs": "md", "web/static": "js"}.get(top, "py")
        return f"{top}/mod_{n:04d}.{ext}"

    @staticmethod
    def _data(payload: bytes) -> bytes:
        return b"data %d\n%s\n" % (len(payload), payload)

    def _commit(self, mark: int, message: str, changes: list[bytes]) -> bytes:
        self.time += self.rng.randint(60, 7200)
        head = (
            b"commit refs/heads/main\nmark :%d\n" % mark
            + b"committer Dev <dev@example.com> %d +0000\n" % self.time
            + self._data(message.encode())
        )
        parent = b"from :%d\n" % (mark - 1) if mark > 1 else b""
        return head + parent + b"".join(changes) + b"\n"

    def _modify(self, path: str, content: bytes) -> bytes:
        return b"M 100644 inline " + path.encode() + b"\n" + self._data(content)

    def stream(self, commits: int, text_files: int = 300, assets: int = 12) -> bytes:
        parts: list[bytes] = []
        changes = []
        for n in range(text_files):
            path = self._path(n)
            self.files[path] = self._text_file()
            changes.append(self._modify(path, "\n".join(self.files[path]).encode() + b"\n"))
        for n in range(assets):
            path = f"assets/img_{n:02d}.png"
            self.assets[path] = self.rng.randbytes(self.rng.randint(60_000, 150_000))
            changes.append(self._modify(path, self.assets[path]))
        changes.append(self._modify("Dockerfile", b"FROM scratch\nCOPY src /src\n"))
        parts.append(self._commit(1, "initial import", changes))
        next_file = text_files
        for mark in range(2, commits + 1):
            changes = []
            for path in self.rng.sample(sorted(self.files), self.rng.randint(1, 4)):
                lines = self.files[path]
                for _ in range(self.rng.randint(1, 3)):
                    at = self.rng.randrange(len(lines))
                    cut = self.rng.randint(0, 8)
                    lines[at : at + cut] = [self._line() for _ in range(self.rng.randint(1, 12))]
                changes.append(self._modify(path, "\n".join(lines).encode() + b"\n"))
            if self.rng.random() < 0.04:
                path = self._path(next_file)
                next_file += 1
                self.files[path] = self._text_file()
                changes.append(self._modify(path, "\n".join(self.files[path]).encode() + b"\n"))
            if mark % 15 == 0:
                path = self.rng.choice(sorted(self.assets))
                self.assets[path] = self.rng.randbytes(self.rng.randint(60_000, 150_000))
                changes.append(self._modify(path, self.assets[path]))
            parts.append(self._commit(mark, f"change {mark}: {self._line().strip()[:60]}", changes))
        return b"".join(parts)


def generate_repo(server: GitHttpServer, commits: int) -> tuple[Path, dict[str, float]]:
    facts: dict[str, float] = {}
    bare = server.create_repo(REPO_NAME)
    with Stopwatch() as sw:
        stream = RepoGenerator().stream(commits)
        git("fast-import", "--quiet", f"--max-pack-size={1 << 30}", cwd=bare, stdin=stream)
        # Hosts keep their repositories well packed, with a reachability bitmap for clones.
        git("repack", "-a", "-d", "-f", "-b", "-q", cwd=bare)
    facts["generate_s"] = sw.seconds
    facts["stream_mb"] = len(stream) / 1e6
    counts = dict(line.split(": ", 1) for line in git("count-objects", "-v", cwd=bare).splitlines())
    facts["pack_mb"] = int(counts["size-pack"]) * 1024 / 1e6
    facts["objects"] = int(counts["in-pack"])
    facts["commits"] = int(git("rev-list", "--count", "main", cwd=bare).strip())
    return bare, facts


# -- the measurements --------------------------------------------------------------------------


class Pusher:
    """A working clone that pushes one new commit at a time over HTTP, as a developer would."""

    def __init__(self, bare: Path, url: str, work: Path) -> None:
        self.url, self.work = url, work
        git("clone", "--quiet", "--", str(bare), str(work))  # local: quick, and not measured
        git("remote", "set-url", "origin", "--", url, cwd=work)
        self.count = 0

    def push(self) -> str:
        self.count += 1
        target = self.work / "src/app/core/mod_0002.py"
        with open(target, "a") as handle:
            handle.write(f"    value_{self.count} = compute({self.count})\n")
        git("commit", "--quiet", "-am", f"bench push {self.count}", cwd=self.work)
        git("push", "--quiet", "origin", "HEAD:main", cwd=self.work, env=auth_env(self.url))
        return git("rev-parse", "HEAD", cwd=self.work).strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 repetitions instead of 5")
    parser.add_argument("--commits", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=None)
    parser.add_argument("--time-limit", type=float, default=None, help="seconds (default 300, quick 150)")
    args = parser.parse_args()
    repeat = args.repeat or (3 if args.quick else 5)
    limit = args.time_limit or (150 if args.quick else 300)
    os.environ[TOKEN_ENV] = TOKEN

    print(f"before: {machine_load()}; {code_version()}")
    base = Path(tempfile.mkdtemp(prefix="bench-source-"))
    server = GitHttpServer(base / "host", tokens={"bench": TOKEN})
    try:
        with time_limit(limit):
            server.start()
            bare, facts = generate_repo(server, args.commits)
            url = server.url_for(REPO_NAME)
            print(
                f"repository: {facts['commits']:.0f} commits, {facts['objects']:.0f} objects, "
                f"pack {facts['pack_mb']:.1f} MB (fast-import stream {facts['stream_mb']:.0f} MB), "
                f"generated in {facts['generate_s']:.1f} s; served at {url} (token auth)"
            )
            project = ProjectConfig(
                repo=url, image={"registry": "r", "repository": "a/b"}, git={"token_env": TOKEN_ENV}
            )
            pusher = Pusher(bare, url, base / "pusher")
            rows, requests = measure(server, base, url, project, pusher, repeat)
    except OutOfTime as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)
    report(rows, requests, repeat)
    print(f"after: {machine_load()}")
    return 0


def clone_and_checkout(url: str, dest: Path, sha: str) -> None:
    """The baseline: what a build does without a mirror cache."""
    git("clone", "--quiet", "--", url, str(dest), env=auth_env(url))
    git("-C", str(dest), "checkout", "--quiet", sha)


STEPS = ("fresh", "incremental", "noop", "checkout", "baseline")


def measure(
    server: GitHttpServer, base: Path, url: str, project: ProjectConfig, pusher: Pusher, repeat: int
) -> tuple[dict[str, list[float]], dict[str, int]]:
    """Seconds per step and repetition, and how many HTTP requests each step made."""
    rows: dict[str, list[float]] = {k: [] for k in STEPS}
    requests: dict[str, int] = {}

    def timed(step: str, action: Callable[[], object]) -> None:
        server.clear()
        with Stopwatch() as sw:
            action()
        rows[step].append(sw.seconds)
        requests[step] = len(server.exchanges)

    # Warm-up (not counted): the server's pack in the page cache, git's code loaded.
    update_mirror(base / "warmup", "app", project)
    shutil.rmtree(base / "warmup")
    for rep in range(repeat):
        data_dir, dest = base / f"data-{rep}", base / f"baseline-{rep}"
        fetch = partial(update_mirror, data_dir, "app", project)
        timed("fresh", fetch)
        pusher.push()
        timed("incremental", fetch)
        timed("noop", fetch)
        sha = pusher.push()
        timed("checkout", partial(checkout, data_dir, "app", project, sha, data_dir / "checkout"))
        timed("baseline", partial(clone_and_checkout, url, dest, sha))
        if git("-C", str(data_dir / "checkout"), "rev-parse", "HEAD").strip() != sha:
            raise RuntimeError("pipeline.source.checkout did not check out the pushed SHA")
        shutil.rmtree(dest)
        shutil.rmtree(data_dir)
        print(
            f"  rep {rep + 1}/{repeat}: fresh {rows['fresh'][-1]:.3f} s, "
            f"incremental {rows['incremental'][-1]:.3f} s, checkout {rows['checkout'][-1]:.3f} s, "
            f"baseline {rows['baseline'][-1]:.3f} s",
            flush=True,
        )
    return rows, requests


def report(rows: dict[str, list[float]], requests: dict[str, int], repeat: int) -> None:
    labels = {
        "fresh": "fresh mirror clone (update_mirror, new data dir)",
        "incremental": "fetch after one new push (update_mirror)",
        "noop": "fetch with nothing new (update_mirror)",
        "checkout": "checkout(): fetch + shared clone + checkout SHA",
        "baseline": "baseline: git clone URL && git checkout SHA",
    }
    print()
    print(
        table(
            ["step", f"median s (n={repeat})", "min s", "max s", "HTTP requests"],
            [[labels[k], median(v), min(v), max(v), requests.get(k, "")] for k, v in rows.items()],
        )
    )
    print()
    fetch_ratio = median(rows["incremental"]) / median(rows["fresh"])
    print(ratio_line("incremental fetch / fresh clone", fetch_ratio, f"<= {GOAL}", fetch_ratio <= GOAL))
    checkout_ratio = median(rows["checkout"]) / median(rows["baseline"])
    print(f"ratio checkout() / baseline clone+checkout = {checkout_ratio:.3f}")


if __name__ == "__main__":
    sys.exit(main())
