#!/usr/bin/env bash
# What the service itself needs on the embedded defaults (Debian 12, as root): Docker Engine
# 20.10 (BuildKit built in), the CNCF distribution registry, static busybox (the quickstart's
# offline base image: there is no Docker Hub), git and curl. Nothing of the test toolchain.
# Idempotent: installs only what is missing. scripts/quickstart.sh and install-test-deps.sh
# both call it.
set -euo pipefail
SAY_AS=install-service-deps
source "$(dirname "$0")/_apt.sh"
require_root

wait_for_apt   # a background install may be about to provide everything
if have_service_deps; then
    say "docker.io, docker-registry, busybox-static, git, curl already present"
else
    apt_install docker.io docker-registry busybox-static git curl
fi
