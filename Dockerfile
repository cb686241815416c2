# The service's own image: pipeline api / worker / migrate / serve.
#   docker build -t pipeline .          (BuildKit: Docker 23+, or DOCKER_BUILDKIT=1 on Docker 20.10)
#   docker run --rm -p 8080:8080 -v "$PWD/pipeline.yaml:/etc/pipeline/pipeline.yaml:ro" pipeline
# Stages: deps (locked third-party packages in /opt/venv), build (the project's wheel), docker-cli
# (Debian's Docker client), buildx (the CLI plugin, pinned, from the Go module proxy), runtime (slim
# Python, git, the client and its buildx plugin, the venv and the wheel installed into it; runs as
# uid 10001). The runtime image has no uv, pip cache, wheel or package lists.
# No "# syntax=" line: the engine's built-in BuildKit frontend handles RUN --mount, and a syntax
# line would pull a frontend image.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS deps
ARG UV_VERSION=0.13.9
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install "uv==${UV_VERSION}"
WORKDIR /src
# Only the lock and the project metadata: code changes leave this layer (and its cache) alone.
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-project --python /usr/local/bin/python3

FROM deps AS build
COPY README.md ./
COPY pipeline ./pipeline
COPY workers ./workers
COPY migrations ./migrations
RUN --mount=type=cache,target=/root/.cache/uv \
    uv build --wheel --out-dir /dist

# Apt package versions are not pinned (DL3008) in this file: the base image is pinned to Debian 12,
# whose archive keeps only the newest build of each package, so exact pins would break the build
# at every security update; the base image tag is what pins the distribution.

# Debian's docker.io brings dockerd, containerd, runc and iptables; the worker needs only the
# client, a Go binary linked against libc alone, so this stage installs it and the runtime copies it.
FROM ${PYTHON_IMAGE} AS docker-cli
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends docker.io \
    && rm -rf /var/lib/apt/lists/*

# buildx drives BuildKit daemons (builders: buildkit:) and buildx builders (buildx:); it exists only
# as a Go program, built pinned as the test tools are (scripts/install-go-tools.sh), static.
FROM golang:1.26-bookworm AS buildx
ARG BUILDX_VERSION=v0.36.1
RUN --mount=type=cache,target=/root/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOBIN=/out go install -trimpath \
        -ldflags "-X github.com/docker/buildx/version.Version=${BUILDX_VERSION}" \
        "github.com/docker/buildx/cmd/buildx@${BUILDX_VERSION}"

FROM ${PYTHON_IMAGE} AS runtime
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates git git-lfs openssh-client tini \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --home-dir /home/pipeline --uid 10001 --user-group --shell /usr/sbin/nologin pipeline \
    && install -d -o pipeline -g pipeline /var/lib/pipeline /etc/pipeline
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DOCKER_BUILDKIT=1
COPY --from=docker-cli /usr/bin/docker /usr/bin/docker
COPY --from=buildx /out/buildx /usr/libexec/docker/cli-plugins/docker-buildx
# Third-party packages first (cached while uv.lock is unchanged), then the project's own wheel.
COPY --from=deps /opt/venv /opt/venv
RUN --mount=type=bind,from=build,source=/dist,target=/dist \
    --mount=type=bind,from=deps,source=/usr/local/bin/uv,target=/usr/local/bin/uv \
    uv pip install --python /opt/venv/bin/python --no-deps --no-cache --compile-bytecode /dist/*.whl
USER 10001:10001
WORKDIR /home/pipeline
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]
ENTRYPOINT ["tini", "--", "pipeline"]
CMD ["serve", "--config", "/etc/pipeline/pipeline.yaml", "--host", "0.0.0.0", "--port", "8080"]
