#!/usr/bin/env bash
# Emulated platforms for the multi-platform build tests, as root on Debian 12: Debian's
# qemu-user-static registered with the kernel's binfmt_misc (flag F, so BuildKit's runc
# containers find the interpreter), and an arm64 busybox (Debian's busybox-static:arm64) for a
# base image whose RUN steps execute under emulation. Idempotent; prints the busybox path.
set -euo pipefail

TOOLS=${PIPELINE_TOOLS_DIR:-/var/cache/pipeline/tools}
OUT="$TOOLS/arm64"
say() { echo "install-qemu-binfmt: $*" >&2; }

if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
fi
if [ ! -x /usr/bin/qemu-aarch64-static ] || ! command -v update-binfmts >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q qemu-user-static binfmt-support >/dev/null
fi
[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || update-binfmts --enable qemu-aarch64
grep -q '^flags: .*F' /proc/sys/fs/binfmt_misc/qemu-aarch64 || {
    say "qemu-aarch64 is registered without the F flag: containers would not find the interpreter"; exit 1; }

if [ ! -x "$OUT/busybox" ]; then
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    # one package of another architecture, downloaded only: the architecture is removed again
    dpkg --add-architecture arm64
    apt-get update -q >/dev/null
    (cd "$work" && apt-get download -q busybox-static:arm64 >/dev/null 2>&1)
    dpkg --remove-architecture arm64
    apt-get update -q >/dev/null
    dpkg-deb -x "$work"/busybox-static_*_arm64.deb "$work/x"
    mkdir -p "$OUT"
    install -m 0755 "$work/x/bin/busybox" "$OUT/busybox"
fi
"$OUT/busybox" true || { say "$OUT/busybox does not run under qemu"; exit 1; }
echo "$OUT/busybox"
