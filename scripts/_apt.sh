# Sourced by install-service-deps.sh and install-test-deps.sh (Debian 12, as root): apt-get
# without races or surprise service starts, and the checks for what is already there.
PG_BIN=/usr/lib/postgresql/15/bin
APT_WAIT_SECONDS=${APT_WAIT_SECONDS:-900}
export DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1

say() { echo "${SAY_AS:-install}: $*"; }

require_root() {
    if [ "$(id -u)" -ne 0 ]; then
        say "must run as root" >&2
        exit 1
    fi
}

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
        export APT_UPDATED=1
        say "ran apt-get update"
    fi
    # Without a policy-rc.d, installing docker.io would start a system dockerd on the
    # shared docker0 bridge (and openssh-server a system sshd on port 22); the quickstart and
    # the tests start their own daemons, so forbid service starts.
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
have_service_deps() {
    have_dockerd && [ -x /usr/bin/docker ] && [ -x /usr/bin/docker-registry ] && have_static_busybox \
        && command -v git >/dev/null 2>&1 && command -v curl >/dev/null 2>&1
}
