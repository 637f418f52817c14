#!/bin/sh
# Install the system programs the local topology runs (nginx; redis-server when a
# lab needs it; chromium for `make test`'s report.html check). As root on
# Debian/Ubuntu this uses apt-get; otherwise it prints one line saying what to
# install and fails.
set -eu

missing=""
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing="$missing nginx"
for pkg in "$@"; do
    case "$pkg" in
        redis-server) command -v redis-server >/dev/null 2>&1 || missing="$missing redis-server" ;;
        # Headless browser for tests/test_report_html.py; its fonts are only a
        # Recommends, and without any font a screenshot shows boxes for text.
        chromium) command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 \
            || missing="$missing chromium fonts-dejavu-core" ;;
        *) command -v "$pkg" >/dev/null 2>&1 || missing="$missing $pkg" ;;
    esac
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing:$missing (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
    # Debian starts the packaged services; the labs run their own instances.
    for service in $missing; do
        if command -v service >/dev/null 2>&1; then service "$service" stop >/dev/null 2>&1 || true; fi
    done
    exit 0
fi

echo "missing:$missing — install it: sudo apt-get install$missing (Debian/Ubuntu) or brew install$missing (macOS)" >&2
exit 1
