#!/usr/bin/env bash
# setup-registry.sh - a real local OCI registry (Debian's docker-registry, distribution 2.8)
# on 127.0.0.1, for push/pull tests.
#
# Idempotent: `start` on a DIR whose registry already runs with the same config does
# nothing; with another config (port, auth) it restarts it. `stop` of a stopped one is a no-op.
#
# Usage:
#   .ci/setup-registry.sh start PORT DIR [--htpasswd USER:PASSWORD]
#   .ci/setup-registry.sh stop DIR
#   .ci/setup-registry.sh install      # only install the package (service kept off)
#
# In DIR: config.yml, data/ (storage), registry.log, registry.pid, htpasswd (with --htpasswd).
# `start` returns once `curl http://127.0.0.1:PORT/v2/` answers 200 (401 with --htpasswd).
#
# The registry speaks plain http, so clients need --tls-verify=false
# (podman push/pull, skopeo, buildah manifest push), or a registries.conf entry
#   [[registry]]
#   location = "127.0.0.1:PORT"
#   insecure = true
#
# The Debian package ships a systemd unit and an init script (docker-registry on :5000,
# all interfaces). They are not used: when this script installs the package it keeps
# the postinst from starting the service and disables it.
set -euo pipefail

LOG_TAG=setup-registry
# shellcheck source=.ci/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2; exit 2; }

REGISTRY_BIN=/usr/bin/docker-registry
POLICY_RC=/usr/sbin/policy-rc.d
POLICY_MARKER="# temporary, from nbpipe .ci/setup-registry.sh"



remove_policy_rc() {
    if [[ -f $POLICY_RC ]] && grep -qF "$POLICY_MARKER" "$POLICY_RC"; then rm -f "$POLICY_RC"; fi
}

# docker-registry's postinst starts the Debian service (:5000 on all interfaces) through
# invoke-rc.d; a policy-rc.d that exits 101 forbids that. Then the service is disabled.
install_registry_package() {
    local missing
    missing=$(missing_packages docker-registry curl)
    [[ -n $missing ]] || return 0
    if [[ $missing == *docker-registry* && ! -e $POLICY_RC ]]; then
        printf '#!/bin/sh\n%s\nexit 101\n' "$POLICY_MARKER" >"$POLICY_RC"
        chmod 0755 "$POLICY_RC"
        trap remove_policy_rc EXIT
    fi
    # shellcheck disable=SC2086
    apt_install $missing
    remove_policy_rc
    trap - EXIT
    if [[ $missing == *docker-registry* ]]; then
        if [[ -d /run/systemd/system ]]; then
            systemctl disable --now docker-registry.service >/dev/null 2>&1 || true
        else
            # no systemd now: drop the init script's start links and the unit's
            # multi-user.target.wants link (for a later boot with systemd)
            update-rc.d docker-registry disable >/dev/null 2>&1 || true
            deb-systemd-helper disable docker-registry.service >/dev/null 2>&1 || true
        fi
        log "Debian's docker-registry service disabled (this script runs its own)"
    fi
}

# bcrypt_hash PASSWORD -> a bcrypt hash ($2y$/$2b$), which is all docker-registry accepts.
# shellcheck disable=SC2016  # '$2' is the bcrypt prefix, not a shell expansion
bcrypt_hash() {
    local pw=$1 h=""
    if command -v htpasswd >/dev/null; then
        h=$(printf '%s' "$pw" | htpasswd -niB x | cut -d: -f2-)
    elif /usr/bin/python3 -c 'import bcrypt' 2>/dev/null; then
        h=$(printf '%s' "$pw" | /usr/bin/python3 -c \
            'import sys, bcrypt; print(bcrypt.hashpw(sys.stdin.buffer.read(), bcrypt.gensalt()).decode())')
    elif /usr/bin/python3 -W ignore -c \
        'import crypt, sys; sys.exit(not crypt.crypt("x", crypt.mksalt(crypt.METHOD_BLOWFISH)).startswith("$2"))' \
        2>/dev/null; then
        # python3.11's crypt (deprecated, gone in 3.13) over libxcrypt, which does bcrypt
        h=$(printf '%s' "$pw" | /usr/bin/python3 -W ignore -c \
            'import crypt, sys; print(crypt.crypt(sys.stdin.read(), crypt.mksalt(crypt.METHOD_BLOWFISH)))')
    else
        apt_install apache2-utils >&2
        h=$(printf '%s' "$pw" | htpasswd -niB x | cut -d: -f2-)
    fi
    [[ $h == '$2'* ]] || die "could not make a bcrypt hash"
    printf '%s\n' "$h"
}

# htpasswd_matches FILE USER PASSWORD: FILE holds exactly USER with a hash of PASSWORD.
htpasswd_matches() {
    local f=$1 user=$2 pw=$3
    [[ -f $f ]] && [[ $(wc -l <"$f") -eq 1 ]] && [[ $(cut -d: -f1 "$f") == "$user" ]] || return 1
    if command -v htpasswd >/dev/null; then
        htpasswd -vb "$f" "$user" "$pw" >/dev/null 2>&1
        return
    fi
    [[ -x /usr/bin/python3 ]] || return 1
    printf '%s' "$pw" | /usr/bin/python3 -W ignore -c '
import sys
h = open(sys.argv[1]).read().strip().split(":", 1)[1]
pw = sys.stdin.read()
try:
    import bcrypt
    ok = bcrypt.checkpw(pw.encode(), h.encode())
except ImportError:
    import crypt
    ok = crypt.crypt(pw, h) == h
sys.exit(not ok)' "$f" 2>/dev/null
}

pid_alive() {  # pid_alive DIR: the registry recorded in DIR/registry.pid is running
    local pidf=$1/registry.pid pid
    [[ -f $pidf ]] || return 1
    pid=$(<"$pidf")
    [[ $pid =~ ^[0-9]+$ ]] && [[ -r /proc/$pid/cmdline ]] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "docker-registry serve $1/config.yml"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

http_code() { curl -s -o /dev/null -m 2 -w '%{http_code}' "http://127.0.0.1:$1/v2/" || true; }

write_config() {  # write_config PORT DIR AUTH(0|1) > stdout
    cat <<EOF
# written by nbpipe .ci/setup-registry.sh
version: 0.1
log:
  level: info
  fields:
    service: registry
storage:
  filesystem:
    rootdirectory: $2/data
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
http:
  addr: 127.0.0.1:$1
  headers:
    X-Content-Type-Options: [nosniff]
EOF
    if (($3)); then
        cat <<EOF
auth:
  htpasswd:
    realm: nbpipe-registry
    path: $2/htpasswd
EOF
    fi
}

do_stop() {
    local dir=$1 pid
    if ! pid_alive "$dir"; then
        rm -f "$dir/registry.pid"
        log "no registry running for $dir"
        return 0
    fi
    pid=$(<"$dir/registry.pid")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
        [[ -d /proc/$pid ]] || break
        sleep 0.2
    done
    if [[ -d /proc/$pid ]]; then
        log "registry $pid ignored SIGTERM; killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$dir/registry.pid"
    log "stopped registry $pid ($dir)"
}

do_start() {
    local port=$1 dir=$2 creds=$3 auth=0 want code
    if ! [[ $port =~ ^[0-9]+$ ]] || ((port < 1 || port > 65535)); then die "bad port: $port"; fi
    [[ -n $creds ]] && auth=1
    if ((auth)) && [[ $creds != ?*:?* ]]; then die "--htpasswd wants USER:PASSWORD"; fi

    install_registry_package
    mkdir -p "$dir/data"
    dir=$(cd "$dir" && pwd -P)

    local restart=0
    if ((auth)); then
        local user=${creds%%:*} pass=${creds#*:} hash
        # keep an existing file that still matches (bcrypt salts are random, and the
        # registry reads the file only when it starts)
        if ! htpasswd_matches "$dir/htpasswd" "$user" "$pass"; then
            hash=$(bcrypt_hash "$pass")
            (umask 077 && printf '%s:%s\n' "$user" "$hash" >"$dir/htpasswd.new")
            mv -f "$dir/htpasswd.new" "$dir/htpasswd"
            log "wrote $dir/htpasswd (user $user, bcrypt)"
            restart=1
        fi
    else
        rm -f "$dir/htpasswd"
    fi

    want=$(write_config "$port" "$dir" "$auth")
    if pid_alive "$dir"; then
        if ((!restart)) && [[ -f $dir/config.yml && $(<"$dir/config.yml") == "$want" ]]; then
            code=$(http_code "$port")
            if [[ $code == 200 || $code == 401 ]]; then
                log "registry already running on 127.0.0.1:$port (pid $(<"$dir/registry.pid"))"
                return 0
            fi
        fi
        log "config or credentials changed; restarting"
        do_stop "$dir"
    fi
    if port_open "$port"; then
        die "127.0.0.1:$port is already in use by another process"
    fi
    printf '%s\n' "$want" >"$dir/config.yml"
    rm -f "$dir/registry.pid"

    start-stop-daemon --start --background --no-close \
        --pidfile "$dir/registry.pid" --make-pidfile \
        --exec "$REGISTRY_BIN" -- serve "$dir/config.yml" \
        >>"$dir/registry.log" 2>&1 </dev/null

    for _ in $(seq 1 150); do
        code=$(http_code "$port")
        if [[ $code == 200 || $code == 401 ]]; then
            log "registry up on http://127.0.0.1:$port (pid $(<"$dir/registry.pid"), /v2/ -> $code," \
                "auth $( ((auth)) && echo htpasswd || echo none))"
            return 0
        fi
        if ! pid_alive "$dir"; then
            tail -n 20 "$dir/registry.log" >&2 || true
            die "docker-registry exited; see $dir/registry.log"
        fi
        sleep 0.2
    done
    tail -n 20 "$dir/registry.log" >&2 || true
    die "registry on 127.0.0.1:$port did not answer within 30 s (last /v2/ code: ${code:-none})"
}

main() {
    [[ $(id -u) -eq 0 ]] || die "must run as root"
    (($#)) || usage
    local cmd=$1; shift
    case $cmd in
    start)
        (($# == 2 || $# == 4)) || usage
        local port=$1 dir=$2 creds=""
        if (($# == 4)); then
            [[ $3 == --htpasswd ]] || usage
            creds=$4
        fi
        do_start "$port" "$dir" "$creds"
        ;;
    stop)
        (($# == 1)) || usage
        [[ -d $1 ]] || { log "no such directory: $1"; return 0; }
        do_stop "$(cd "$1" && pwd -P)"
        ;;
    install)
        install_registry_package
        ;;
    -h | --help) usage ;;
    *) usage ;;
    esac
}

main "$@"
