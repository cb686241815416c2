"""The quickstart's Python half (run by scripts/quickstart.sh with the project's venv): write the
config it serves, send the sample's push webhook as GitHub signs it, wait for the promotion.

    quickstart_sample.py config  OUT --base FILE --data DIR --registry HOST --repo DIR
    quickstart_sample.py push    --url URL --secret-file F --repo DIR       (prints the build id)
    quickstart_sample.py promoted --url URL --token-file F --build ID [--environment dev]
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import yaml

PROJECT = "hello"
TIMEOUT_SECONDS = 600
_ENDED = {"succeeded", "failed", "cancelled", "superseded", "skipped"}


def write_config(args: argparse.Namespace) -> None:
    """config/pipeline.yaml with the sample in place of the GitHub repository, the secret kept
    under the data directory, and the registry that answers."""
    data: dict[str, Any] = yaml.safe_load(Path(args.base).read_text())
    data["data_dir"] = str(Path(args.data).resolve())
    data["registries"]["local"]["url"] = args.registry
    hello = data["projects"][PROJECT]
    hello["repo"] = f"file://{Path(args.repo).resolve()}"
    hello.pop("webhook_secret_env", None)
    hello["webhook_secret_file"] = str(Path(args.data, "secrets", "hello-webhook-secret").resolve())
    hello["build"].setdefault("args", {})["BASE_IMAGE"] = f"{args.registry}/examples/busybox:1"
    header = (
        "# Written by scripts/quickstart.sh from config/pipeline.yaml on every run: edit that file.\n"
        "# The project hello builds the local sample repository (examples/hello).\n"
    )
    Path(args.out).write_text(header + yaml.safe_dump(data, sort_keys=False))


def _git(repo: str, *args: str) -> str:
    return subprocess.run(["git", "-C", repo, *args], check=True, capture_output=True, text=True).stdout.strip()


def push(args: argparse.Namespace) -> int:
    """A GitHub push delivery for the sample's HEAD, signed with the project's secret."""
    sha, message = _git(args.repo, "rev-parse", "HEAD"), _git(args.repo, "log", "-1", "--format=%s")
    files = _git(args.repo, "show", "--format=", "--name-only", "HEAD").splitlines()
    url = f"file://{Path(args.repo).resolve()}"
    commit = {"id": sha, "message": message, "added": files, "removed": [], "modified": [], "distinct": True}
    payload = {
        "ref": "refs/heads/main",
        "before": "0" * 40,
        "after": sha,
        "repository": {
            "name": PROJECT,
            "full_name": f"local/{PROJECT}",
            "clone_url": url,
            "default_branch": "main",
            "pushed_at": int(time.time()),  # a new push each run (a redelivery has the same body)
        },
        "pusher": {"name": "quickstart"},
        "head_commit": commit,
        "commits": [commit],
    }
    body = json.dumps(payload).encode()
    secret = Path(args.secret_file).read_text().strip().encode()
    signature = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-Hub-Signature-256": signature,
    }
    answer = httpx.post(f"{args.url}/webhooks/github", content=body, headers=headers, timeout=60)
    if answer.status_code == 202:
        build_ids = answer.json()["build_ids"]
        print(f"webhook accepted: commit {sha[:12]} ({message}) queued as build {build_ids[0]}", file=sys.stderr)
        print(build_ids[0])
        return 0
    if answer.status_code == 200:
        print(f"webhook ignored: {answer.json().get('reason', answer.text)}", file=sys.stderr)
        return 0
    print(f"webhook refused ({answer.status_code}): {answer.text}", file=sys.stderr)
    return 1


def promoted(args: argparse.Namespace) -> int:
    """Wait until build ``--build`` has ended and its digest runs in ``--environment``."""
    client = httpx.Client(
        base_url=args.url, headers={"Authorization": f"Bearer {Path(args.token_file).read_text().strip()}"}
    )
    deadline = time.monotonic() + TIMEOUT_SECONDS
    build = client.get(f"/api/v1/builds/{args.build}").raise_for_status().json()
    while build["status"] not in _ENDED and time.monotonic() < deadline:
        time.sleep(0.5)
        build = client.get(f"/api/v1/builds/{args.build}").raise_for_status().json()
    if build["status"] != "succeeded":
        print(f"build {args.build} {build['status']}: {build.get('error')}", file=sys.stderr)
        return 1
    query = {"project": PROJECT, "environment": args.environment, "digest": build["digest"]}
    while time.monotonic() < deadline:
        matrix = client.get("/api/v1/environments", params={"project": PROJECT}).raise_for_status().json()["items"]
        now = next((e["current"] or {} for e in matrix if e["environment"] == args.environment), {})
        if now.get("digest") == build["digest"]:
            print(f"{build['digest']} (build {args.build}) runs in {args.environment}", file=sys.stderr)
            return 0
        items = client.get("/api/v1/promotions", params=query).raise_for_status().json()["items"]
        failed = [p for p in items if p["status"] in ("failed", "rejected")]
        if items and len(failed) == len(items):
            print(f"promotion {failed[0]['id']} {failed[0]['status']}: {failed[0]['error']}", file=sys.stderr)
            return 1
        time.sleep(0.5)
    print(f"build {args.build} was not promoted to {args.environment} in {TIMEOUT_SECONDS} s", file=sys.stderr)
    return 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    config = commands.add_parser("config")
    config.add_argument("out")
    for name in ("--base", "--data", "--registry", "--repo"):
        config.add_argument(name, required=True)
    sender = commands.add_parser("push")
    for name in ("--url", "--secret-file", "--repo"):
        sender.add_argument(name, required=True)
    waiter = commands.add_parser("promoted")
    for name in ("--url", "--token-file", "--build"):
        waiter.add_argument(name, required=True)
    waiter.add_argument("--environment", default="dev")
    args = parser.parse_args()
    if args.command == "config":
        write_config(args)
        return 0
    return push(args) if args.command == "push" else promoted(args)


if __name__ == "__main__":
    sys.exit(main())
