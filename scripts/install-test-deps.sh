#!/usr/bin/env bash
# Install the real services the test suite runs against (Debian 12, as root).
# Idempotent: installs only what is missing, prints one line per thing it did.
#   Docker Engine 20.10 (BuildKit built in), CNCF distribution registry, skopeo,
#   static busybox (base images without Docker Hub), PostgreSQL 15, OpenSSH server and
#   client (a real SSH Git host: tests/ssh_server.py starts its own sshd), runc (for
#   buildkitd), and the pinned Go tools of scripts/install-go-tools.sh (BuildKit, buildx,
#   cosign 2 and 3, crane, distribution 3).
set -euo pipefail

PG_BIN=/usr/lib/postgresql/15/bin
APT_WAIT_SECONDS=${APT_WAIT_SECONDS:-900}
export DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1

say() { echo "install-test-deps: $*"; }

if [ "$(id -u)" -ne 0 ]; then
    say "must run as root" >&2
    exit 1
fi

# Another apt-get (e.g. a provisioning step started in the background) holds the
# dpkg lock; wait for it instead of failing or racing it.
wait_for_apt() {
    local waited=0
    while pgrep -x apt-get >/dev/null || pgrep -x dpkg >/dev/null; do
        if [ "$waited" -eq 0 ]; then say "waiting for a running apt-get/dpkg to finish"; fi
        if [ "$waited" -ge "$APT_WAIT_SECONDS" ]; then
            say "gave up waiting for apt-get after ${waited}s" >&2
            exit 1
        fi
        sleep 2
        waited=$((waited + 2))
    done
}

apt_install() {
    wait_for_apt
    if [ -z "${APT_UPDATED:-}" ]; then
        apt-get -o DPkg::Lock::Timeout=600 update -qq
        APT_UPDATED=1
        say "ran apt-get update"
    fi
    # Without a policy-rc.d, installing docker.io would start a system dockerd on the
    # shared docker0 bridge (and openssh-server a system sshd on port 22); tests start
    # their own daemons, so forbid service starts.
    local made_policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        made_policy=1
    fi
    local rc=0
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq "$@" || rc=$?
    if [ -n "$made_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi
    if [ "$rc" -ne 0 ]; then
        say "apt-get install $* failed with exit code $rc" >&2
        exit "$rc"
    fi
    say "installed $*"
}

# Debian's docker.io puts dockerd in /usr/sbin; accept either location.
have_dockerd() { [ -x /usr/bin/dockerd ] || [ -x /usr/sbin/dockerd ]; }
# A dynamic busybox would not run inside an image that has no libc.
have_static_busybox() {
    [ -x /bin/busybox ] || return 1
    local out
    out=$(LC_ALL=C ldd /bin/busybox 2>&1 || true)
    [[ "$out" == *"not a dynamic executable"* ]]
}

wait_for_apt   # the background install may be about to provide everything
if have_dockerd && [ -x /usr/bin/docker ] && [ -x /usr/bin/docker-registry ] \
    && [ -x /usr/bin/skopeo ] && have_static_busybox; then
    say "docker.io, docker-registry, skopeo, busybox-static already present"
else
    apt_install docker.io docker-registry skopeo busybox-static
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
