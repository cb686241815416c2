#!/usr/bin/env bash
# Install the real services the test suite runs against (Debian 12, as root).
# Idempotent: installs only what is missing, prints one line per thing it did.
#   What the service needs (scripts/install-service-deps.sh: Docker Engine 20.10 with BuildKit,
#   CNCF distribution registry, static busybox for base images without Docker Hub), then skopeo, PostgreSQL 15, OpenSSH server and
#   client (a real SSH Git host: tests/ssh_server.py starts its own sshd), runc (for
#   buildkitd), and the pinned Go tools of scripts/install-go-tools.sh (BuildKit, buildx,
#   cosign 2 and 3, crane, distribution 3).
set -euo pipefail
SAY_AS=install-test-deps
source "$(dirname "$0")/_apt.sh"
require_root

bash "$(dirname "$0")/install-service-deps.sh"   # the engine, registry and busybox the service needs
if [ -x /usr/bin/skopeo ]; then
    say "skopeo already present"
else
    apt_install skopeo
fi

if [ -x "$PG_BIN/initdb" ] && [ -x "$PG_BIN/pg_ctl" ] && [ -x /usr/bin/psql ]; then
    say "postgresql-15 already present"
else
    apt_install postgresql-15
fi

if [ -x /usr/sbin/sshd ] && [ -x /usr/bin/ssh ] && [ -x /usr/bin/ssh-keygen ]; then
    say "openssh-server, openssh-client already present"
else
    apt_install openssh-server openssh-client
fi

if [ -x /usr/sbin/runc ] || [ -x /usr/bin/runc ]; then
    say "runc already present"
else
    apt_install runc
fi

if ! id postgres >/dev/null 2>&1; then
    say "user postgres is missing although postgresql-15 is installed" >&2
    exit 1
fi

# headless Chromium and its matching WebDriver for tests/integration/test_web_page.py
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
    say "chromium, chromium-driver already present"
else
    apt_install chromium chromium-driver
fi

# helm (pinned, from the npm registry) for the chart's checks in tests/integration/test_packaging.py
if command -v npm >/dev/null 2>&1; then
    say "npm already present"
else
    apt_install npm
fi
say "helm at $(bash "$(dirname "$0")/install-packaging-tools.sh" | tail -n 1)"
started=$(date +%s)
say "go tools in $(bash "$(dirname "$0")/install-go-tools.sh") ($(( $(date +%s) - started )) s)"
