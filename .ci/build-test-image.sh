#!/usr/bin/env bash
# Build the image the Docker tests run, with no registry: a root filesystem holding a static
# busybox (Debian's busybox-static) and its applets as relative symlinks, a passwd/group with
# root and nobody, and an empty /www; imported with `docker import`. The daemon is the one
# DOCKER_HOST names. Does nothing if the image is already there (unless --force).
#
# usage: .ci/build-test-image.sh [--force] [TAG]     (TAG: dmsnode-test/busybox:latest)
set -euo pipefail

force=
if [ "${1:-}" = --force ]; then
    force=1
    shift
fi
tag=${1:-dmsnode-test/busybox:latest}
say() { echo "build-test-image: $*" >&2; }

if [ -z "$force" ] && docker image inspect "$tag" >/dev/null 2>&1; then
    say "$tag is already there"
    exit 0
fi

busybox=${BUSYBOX:-}
if [ -z "$busybox" ]; then
    for candidate in /bin/busybox /usr/bin/busybox; do
        if [ -x "$candidate" ]; then
            busybox=$candidate
            break
        fi
    done
fi
if [ -z "$busybox" ]; then
    say "no busybox binary (Debian: apt-get install busybox-static)"
    exit 1
fi
if ldd "$busybox" >/dev/null 2>&1; then
    say "$busybox is dynamically linked: it cannot run alone in an image (install busybox-static)"
    exit 1
fi

rootfs=$(mktemp -d)
trap 'rm -rf "$rootfs"' EXIT
mkdir -p "$rootfs"/{bin,etc,tmp,www,root,proc,sys,dev}
chmod 1777 "$rootfs/tmp"
cp "$busybox" "$rootfs/bin/busybox"
for applet in $("$busybox" --list); do
    [ "$applet" = busybox ] || ln -s busybox "$rootfs/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' \
    >"$rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$rootfs/etc/group"

tar -C "$rootfs" -c . | docker import \
    --change 'ENV PATH=/bin' --change 'CMD ["/bin/sh"]' \
    --message 'dmsnode test image: static busybox' - "$tag" >/dev/null
if ! out=$(docker run --rm --network none "$tag" echo ok 2>&1) || [ "$out" != ok ]; then
    say "$tag was imported but does not run: $out"
    exit 1
fi
say "$tag built ($(docker image inspect --format '{{.Size}}' "$tag") bytes)"
