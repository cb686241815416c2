"""``git-push``: write the promoted digest into the environment's deploy repository.

It runs after the image and its signatures are in the target by digest and before the
environment tag moves. The manifests in Git name the digest, which is already there, so Argo
CD or Flux can deploy as soon as the commit lands; and a repository that refuses the push
leaves the promotion failed with the tag where it was, so registry and Git never disagree
about what the environment runs. Pushes to one repository are serialized across workers by
a database lock (and on one machine by the mirror's file lock).
"""

from __future__ import annotations

import shutil

from pipeline.config import GitOpsConfig
from pipeline.git import sanitize as public_url
from pipeline.gitops import (
    HelmValue,
    ImageChange,
    KustomizeImage,
    ManifestContainer,
    Target,
    UpdateResult,
    pull_request_host,
    update_yaml,
    write_back,
)
from pipeline.promotion.steps._contract import StepContext, StepInfo, StepResult
from pipeline.store import locks

__all__ = ["GIT_PUSHER", "pull_request_number", "push_to_git"]


def pull_request_number(url: str) -> int:
    return int(url.rstrip("/").rsplit("/", 1)[-1])


def _target(gitops: GitOpsConfig) -> Target:
    if gitops.key:
        return HelmValue(gitops.key)
    if gitops.kustomize_image:
        return KustomizeImage(gitops.kustomize_image)
    assert gitops.container is not None
    return ManifestContainer(gitops.container, kind=gitops.resource_kind, name=gitops.resource_name)


def _message(ctx: StepContext) -> str:
    promotion, build = ctx.promotion, ctx.build
    return (
        f"promote {promotion.project} to {promotion.environment}: {promotion.digest}\n\n"
        f"image: {ctx.target.ref(promotion.digest, ctx.tag)}\n"
        f"commit: {build.commit} ({build.branch or build.ref})\n"
        f"build: {build.id}\npromotion: {promotion.id} ({promotion.trigger}, by {promotion.actor})\n"
    )


def push_to_git(ctx: StepContext) -> StepResult:
    """Push the edit to the branch, or in pull-request mode to a branch of its own plus a pull
    request (then the promotion waits, ``awaiting_merge``, and the tag moves after the merge)."""
    gitops = ctx.env.gitops
    assert gitops is not None
    head = f"pipeline/{ctx.promotion.project}/{ctx.promotion.environment}/promotion-{ctx.promotion.id}"
    change = ImageChange(ctx.target.name, ctx.promotion.digest, ctx.tag)
    target = _target(gitops)
    work = ctx.config.data_dir / "work" / f"promotion-{ctx.promotion.id}"
    try:
        with locks.held(ctx.db, f"gitops:{gitops.repo}", wait=ctx.scope.lock_wait):

            def edit(text: str) -> UpdateResult:
                ctx.scope.check_lease()  # before every (re)application: a stale claim writes no commit
                return update_yaml(text, target, change, source=gitops.path)

            pushed = write_back(
                ctx.config.data_dir,
                work,
                repo=gitops.repo,
                branch=gitops.branch,
                path=gitops.path,
                auth=gitops.git,
                edit=edit,
                message=_message(ctx),
                author=(gitops.author_name, gitops.author_email),
                push_to=head if gitops.pull_request else None,
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    where = f"{public_url(gitops.repo)} {gitops.branch}:{gitops.path}"
    if pushed.commit is None:
        return StepResult(f"{where} already names {pushed.new_value}; no commit")
    output = {"gitops_commit": pushed.commit}
    if gitops.pull_request is not None:
        host = pull_request_host(gitops.pull_request)
        try:
            opened = host.open(head=head, base=gitops.branch, title=_message(ctx).splitlines()[0], body=_message(ctx))
        finally:
            host.close()
        return StepResult(
            f"pushed {pushed.commit[:12]} to {head}; waiting for pull request {opened.url} into "
            f"{gitops.branch} to be merged",
            status="awaiting_merge",
            output={**output, "pull_request": opened.url},
        )
    return StepResult(
        f"pushed {pushed.commit[:12]} to {where}: {pushed.old_value} -> {pushed.new_value}", output=output
    )


GIT_PUSHER = StepInfo(
    "git-push",
    push_to_git,
    reads=("environment repository",),
    writes=("a commit (or a pull request) naming the digest",),
    visible=True,
)
