#!/usr/bin/env bash
# Make a Docker engine and Compose usable for the compose topology (Debian/Ubuntu, as root).
#
# Idempotent: installs docker.io (the engine and a client with BuildKit) and debootstrap
# (for `make images-offline`) when missing, makes a Compose available — the v2 CLI plugin
# from Debian trixie's docker-compose package when the client has none (bookworm has no
# v2 package), else Debian's docker-compose v1 — and starts dockerd in the background
# when no engine answers (containers and CI machines have no init system to do it).
# Prints one line per action; exits non-zero with one line on stderr when it cannot.
set -euo pipefail

DOCKER=/usr/bin/docker   # Debian's client: it has buildx/BuildKit; a newer one on PATH may not
PLUGIN_DIR=/usr/local/lib/docker/cli-plugins
DOCKERD_LOG=${DOCKERD_LOG:-/var/log/lab-dockerd.log}
export DEBIAN_FRONTEND=noninteractive

say() { echo "docker-setup: $*"; }
die() { echo "docker-setup: $*" >&2; exit 1; }

engine_up() { "$DOCKER" info >/dev/null 2>&1; }

if [ "$(id -u)" != 0 ]; then
    if [ -x "$DOCKER" ] && engine_up && { "$DOCKER" compose version >/dev/null 2>&1 \
            || command -v docker-compose >/dev/null 2>&1; }; then
        exit 0
    fi
    die "needs root to install docker.io and start dockerd (or install Docker yourself)"
fi
command -v apt-get >/dev/null 2>&1 || die "no apt-get: install Docker Engine and Compose yourself"

apt_updated=""
apt_install() {
    if [ -z "$apt_updated" ]; then apt-get update -qq; apt_updated=1; fi
    say "installing $* (apt-get)"
    apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

need=()
fresh_engine=""
if ! { [ -x "$DOCKER" ] && command -v dockerd >/dev/null 2>&1; }; then
    need+=(docker.io)
    fresh_engine=1
fi
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
command -v iptables >/dev/null 2>&1 || need+=(iptables)
((${#need[@]} == 0)) || apt_install "${need[@]}"

# --- Compose: the v2 plugin if we can have it, else v1 -----------------------------------
install_compose_v2() {
    local work rc=0
    work=$(mktemp -d)
    fetch_compose_v2 "$work" || rc=1
    rm -rf "$work"
    return "$rc"
}

fetch_compose_v2() {
    # Debian trixie's docker-compose package carries the v2 CLI plugin and runs on bookworm.
    # Fetch only that .deb, with a private apt state, so the system's sources stay untouched.
    local work=$1 mirror
    mirror=$(grep -rhoE '^(deb |URIs:) *https?://[^ ]+/debian/?' /etc/apt/sources.list \
        /etc/apt/sources.list.d 2>/dev/null | grep -oE 'https?://[^ ]+' | head -n1 || true)
    mirror=${mirror:-http://deb.debian.org/debian}
    mkdir -p "$work"/{lists/partial,cache/archives/partial,etc/preferences.d}
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] ${mirror%/} trixie main" \
        >"$work/etc/sources.list"
    local opts=(-o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache"
        -o "Dir::Etc::SourceList=$work/etc/sources.list" -o "Dir::Etc::SourceParts=-"
        -o "Dir::Etc::Preferences=$work/etc/preferences" -o "Dir::Etc::PreferencesParts=$work/etc/preferences.d"
        -o "APT::Architecture=$(dpkg --print-architecture)" -o Debug::NoLocking=1)
    apt-get "${opts[@]}" update -qq >/dev/null 2>&1 || return 1
    (cd "$work" && apt-get "${opts[@]}" download docker-compose >/dev/null 2>&1) || return 1
    dpkg-deb -x "$work"/docker-compose_*.deb "$work/root" || return 1
    [ -x "$work/root/usr/libexec/docker/cli-plugins/docker-compose" ] || return 1
    mkdir -p "$PLUGIN_DIR"
    install -m 0755 "$work/root/usr/libexec/docker/cli-plugins/docker-compose" "$PLUGIN_DIR/"
}

if ! "$DOCKER" compose version >/dev/null 2>&1; then
    if install_compose_v2 && "$DOCKER" compose version >/dev/null 2>&1; then
        say "installed $("$DOCKER" compose version) into $PLUGIN_DIR"
    elif ! command -v docker-compose >/dev/null 2>&1; then
        say "no Compose v2 plugin to be had; falling back to Debian's docker-compose (v1)"
        apt_install docker-compose
    fi
fi

# --- the engine ----------------------------------------------------------------------------
# Without the userland proxy, 127.0.0.1-published ports are forwarded in the kernel
# (iptables DNAT): Locust -> nginx has no extra process hop, so the timing-sensitive
# labs (keepalive-502) behave as on the local topology. Measured here: with the proxy,
# keepalive-502's broken variant fell short of its ten 502s in 3 of 8 runs; without, 0 of 10.
# An engine we just installed gets that setting (systemd may already have started it).
if [ -n "$fresh_engine" ] && [ ! -e /etc/docker/daemon.json ]; then
    mkdir -p /etc/docker
    echo '{"userland-proxy": false}' >/etc/docker/daemon.json
    say "wrote /etc/docker/daemon.json: userland-proxy false"
    if engine_up && command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
        systemctl restart docker || true
    fi
fi
if ! engine_up; then
    command -v dockerd >/dev/null 2>&1 || die "dockerd not found after installing docker.io"
    if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
        systemctl start docker || true
    fi
    if ! engine_up; then
        flags=(--userland-proxy=false)
        grep -qs userland-proxy /etc/docker/daemon.json && flags=()
        say "starting dockerd ${flags[*]} in the background (log: $DOCKERD_LOG)"
        nohup dockerd "${flags[@]}" >>"$DOCKERD_LOG" 2>&1 </dev/null &
        disown || true
    fi
    for _ in $(seq 1 60); do engine_up && break; sleep 0.5; done
    engine_up || die "dockerd did not come up in 30 s; see $DOCKERD_LOG"
fi
pid=$(pgrep -xo dockerd || true)
if [ -n "$pid" ] && ! tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q 'userland-proxy=false' \
        && ! grep -qsE '"userland-proxy" *: *false' /etc/docker/daemon.json; then
    say "warning: dockerd uses the userland proxy; keepalive-502 reproduces less reliably on" \
        "the compose topology (set \"userland-proxy\": false, see compose/README.md)"
fi
say "engine $("$DOCKER" version --format '{{.Server.Version}}'), $("$DOCKER" compose version 2>/dev/null || docker-compose version --short 2>/dev/null)"
