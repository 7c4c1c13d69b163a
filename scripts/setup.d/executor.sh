#!/usr/bin/env bash
# Builds the executor's Docker test image `shoal-test/busybox:latest` on this
# machine with `docker import` (no registry needed): a root filesystem holding
# Debian's static busybox and one symlink per applet. Safe to run again: does
# nothing when the image is already present. Needs dockerd running and the
# busybox-static package (scripts/setup.sh does both).
set -euo pipefail
IMAGE="${SHOAL_TEST_IMAGE:-shoal-test/busybox:latest}"
if docker image inspect "$IMAGE" >/dev/null 2>&1; then
    echo "executor: $IMAGE already present" >&2
    exit 0
fi
BUSYBOX="${BUSYBOX:-/bin/busybox}"
if ! file -L "$BUSYBOX" 2>/dev/null | grep -q "statically linked" && ! ldd "$BUSYBOX" 2>&1 | grep -q "not a dynamic"; then
    echo "executor: $BUSYBOX is not a static busybox; install the busybox-static package" >&2
    exit 1
fi
root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/bin" "$root/tmp" "$root/etc"
chmod 1777 "$root/tmp"
cp "$BUSYBOX" "$root/bin/busybox"
for applet in $("$root/bin/busybox" --list); do
    [ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
done
printf 'root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n' >"$root/etc/passwd"
printf 'root:x:0:\nnobody:x:65534:\n' >"$root/etc/group"
tar -C "$root" --owner=0 --group=0 -c . |
    docker import -c 'ENV PATH=/bin' -c 'CMD ["/bin/sh"]' -m "shoal executor test image (busybox-static)" - "$IMAGE" >/dev/null
echo "executor: built $IMAGE" >&2
