#!/usr/bin/env bash
# Build the offline base image (default lab-base:bookworm) from the Debian archive:
# debootstrap a minimal bookworm with Python, venv, nginx, redis-server and CA
# certificates, strip caches and docs, and `docker import` it. For machines that
# reach no container registry (air-gapped sites, CI sandboxes): the service and
# nginx Dockerfiles then build FROM it with --build-arg BASE_IMAGE=lab-base:bookworm.
#
#   WITH_HOST_CA=auto|1|0   copy /usr/local/share/ca-certificates/*.crt into the image
#                           and trust them (a TLS-inspecting proxy between you and PyPI
#                           needs this for `pip install` inside `docker build`);
#                           auto (default) = when the host has any.
#   BASE_IMAGE=name:tag     the image to create (default lab-base:bookworm)
#   DEBIAN_MIRROR=url       default: the first Debian mirror in the apt sources
#   REBUILD=1               rebuild even when the image exists
set -euo pipefail

DOCKER=${DOCKER:-/usr/bin/docker}
[ -x "$DOCKER" ] || DOCKER=docker
IMAGE=${BASE_IMAGE:-lab-base:bookworm}
WITH_HOST_CA=${WITH_HOST_CA:-auto}
PACKAGES=python3,python3-venv,nginx,redis-server,ca-certificates

die() { echo "build-base-image: $*" >&2; exit 2; }

"$DOCKER" info >/dev/null 2>&1 || die "no Docker engine answers (run scripts/docker-setup.sh as root)"
if [ "${REBUILD:-0}" != 1 ] && "$DOCKER" image inspect "$IMAGE" >/dev/null 2>&1; then
    echo "build-base-image: $IMAGE exists (REBUILD=1 to rebuild)"
    exit 0
fi
[ "$(id -u)" = 0 ] || die "debootstrap needs root"
command -v debootstrap >/dev/null 2>&1 || die "debootstrap missing: apt-get install debootstrap"

mirror=${DEBIAN_MIRROR:-$(grep -rhoE '^(deb |URIs:) *(\[[^]]*\] *)?https?://[^ ]+/debian/?( |$)' \
    /etc/apt/sources.list /etc/apt/sources.list.d 2>/dev/null | grep -oE 'https?://[^ ]+' | head -n1 || true)}
mirror=${mirror:-http://deb.debian.org/debian}

host_cas=(/usr/local/share/ca-certificates/*.crt)
[ -e "${host_cas[0]}" ] || host_cas=()
case "$WITH_HOST_CA" in
    auto) ((${#host_cas[@]})) && WITH_HOST_CA=1 || WITH_HOST_CA=0 ;;
    0|1) ;;
    *) die "WITH_HOST_CA must be auto, 0 or 1" ;;
esac

rootfs=$(mktemp -d /tmp/lab-base-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
echo "build-base-image: debootstrap bookworm from $mirror (about a minute)"
debootstrap --variant=minbase --include="$PACKAGES" bookworm "$rootfs" "$mirror" \
    >"$rootfs.log" 2>&1 || { tail -5 "$rootfs.log" >&2; die "debootstrap failed (log: $rootfs.log)"; }
rm -f "$rootfs.log"

if [ "$WITH_HOST_CA" = 1 ]; then
    ((${#host_cas[@]})) || die "WITH_HOST_CA=1 but /usr/local/share/ca-certificates has no *.crt"
    echo "build-base-image: trusting ${#host_cas[@]} extra CA certificate(s) from the host"
    cp "${host_cas[@]}" "$rootfs/usr/local/share/ca-certificates/"
    chroot "$rootfs" update-ca-certificates >/dev/null 2>&1
fi
# Packages start nothing in a container; drop what only an installer needs.
rm -rf "$rootfs"/var/cache/apt/* "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/doc/* \
    "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/usr/share/locale/* \
    "$rootfs"/var/log/*.log "$rootfs"/var/cache/debconf/*-old

tar -C "$rootfs" -c . | "$DOCKER" import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
    --change 'CMD ["/bin/bash"]' - "$IMAGE" >/dev/null
echo "build-base-image: $IMAGE ($("$DOCKER" image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%d MB", $1/1e6}'))"
