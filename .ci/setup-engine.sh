#!/usr/bin/env bash
# setup-engine.sh - prepare Podman/Buildah (and optionally Docker) for nbpipe.
#
# Idempotent: safe to run repeatedly. Targets Debian bookworm, run as root,
# including nested containers/VMs without systemd and with hybrid cgroups.
#
# Usage:
#   .ci/setup-engine.sh                 # packages + engine config + smoke test
#   .ci/setup-engine.sh --docker        # also install docker.io and start dockerd
#   .ci/setup-engine.sh --no-check      # skip the smoke test
#
# Environment overrides:
#   NBPIPE_ROOT_IMAGE   (default localhost/nbpipe/root:bookworm-amd64; only for the run check)
#
# What it configures and why (details in the nbpipe notes):
#   * /etc/containers/containers.conf.d/50-nbpipe.conf
#       [containers] default_ulimits = []   only when root cannot raise RLIMIT_NOFILE/NPROC
#           (no CAP_SYS_RESOURCE); otherwise `podman run` fails with
#           "error setting rlimit type 7 (NOFILE) / type 6 (NPROC): operation not permitted".
#       [engine] runtime = "runc"           crun 1.8.1 (bookworm) fails on hybrid cgroups:
#           "crun: cgroups in hybrid mode not supported, drop all controllers from cgroupv2".
#           Also affects `buildah build` RUN steps. runc works on v1, hybrid and v2.
#       [engine] cgroup_manager = "cgroupfs", events_logger = "file"   when systemd is not PID 1.
#   * storage: native kernel overlay is probed; fuse-overlayfs, then vfs, is used only if
#     it fails (written to /etc/containers/storage.conf, which podman 4.3 reads without drop-ins).
set -euo pipefail

ROOT_IMAGE=${NBPIPE_ROOT_IMAGE:-localhost/nbpipe/root:bookworm-$(dpkg --print-architecture)}

CONF_DROPIN=/etc/containers/containers.conf.d/50-nbpipe.conf
STORAGE_CONF=/etc/containers/storage.conf
MARKER="# managed by nbpipe .ci/setup-engine.sh"

LOG_TAG=setup-engine
# shellcheck source=.ci/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"



# write_file PATH (content on stdin); rewrites only when content changed.
write_file() {
    local dst=$1 tmp
    tmp=$(mktemp "${dst}.XXXXXX")
    cat >"$tmp"
    chmod 0644 "$tmp"
    if [[ -f $dst ]] && cmp -s "$tmp" "$dst"; then
        rm -f "$tmp"
    else
        mv -f "$tmp" "$dst"
        log "wrote $dst"
    fi
}

have_systemd() { [[ -d /run/systemd/system ]]; }

# ---------------------------------------------------------------- packages
install_packages() {
    # runc explicitly: podman depends on "crun | runc" and crun cannot run on hybrid cgroups.
    # catatonit gives `podman run --init` (python http.server ignores SIGTERM as PID 1).
    # dpkg-dev: dpkg-scanpackages indexes the loopback apt archive of the lock tests.
    apt_install_missing podman buildah runc conmon skopeo uidmap fuse-overlayfs \
        slirp4netns netavark aardvark-dns iptables catatonit debootstrap \
        ca-certificates tar curl dpkg-dev
}

# ---------------------------------------------------------------- containers.conf
configure_engine() {
    mkdir -p /etc/containers/containers.conf.d
    local need_ulimits=0
    # podman (rootful) sets RLIMIT_NOFILE=1048576 and RLIMIT_NPROC=4194304 by default.
    if ! prlimit --nofile=1048576:1048576 --nproc=4194304:4194304 true 2>/dev/null; then
        need_ulimits=1
    fi
    {
        echo "$MARKER"
        if ((need_ulimits)); then
            echo '[containers]'
            echo '# root lacks CAP_SYS_RESOURCE here: "error setting rlimit type 7/6: operation not permitted"'
            echo 'default_ulimits = []'
            echo
        fi
        echo '[engine]'
        echo '# crun 1.8 (bookworm): "cgroups in hybrid mode not supported"; runc works on v1/hybrid/v2'
        echo 'runtime = "runc"'
        if ! have_systemd; then
            echo '# no systemd as PID 1'
            echo 'cgroup_manager = "cgroupfs"'
            echo 'events_logger = "file"'
        fi
    } | write_file "$CONF_DROPIN"
}

# ---------------------------------------------------------------- storage
graphroot() {
    local r
    r=$(podman info --format '{{.Store.GraphRoot}}' 2>/dev/null || true)
    echo "${r:-/var/lib/containers/storage}"
}

probe_kernel_overlay() {
    local base rc=1
    base=$(graphroot)
    mkdir -p "$base"
    base=$(mktemp -d "$base/../.nbpipe-ovl-probe.XXXXXX")
    mkdir -p "$base"/{lower,upper,work,merged}
    echo x >"$base/lower/f"
    if mount -t overlay overlay \
        -o "lowerdir=$base/lower,upperdir=$base/upper,workdir=$base/work" "$base/merged" 2>/dev/null; then
        if echo y >"$base/merged/f" 2>/dev/null; then rc=0; fi
        umount "$base/merged" || true
    fi
    rm -rf "$base"
    return $rc
}

configure_storage() {
    local driver
    if probe_kernel_overlay; then
        driver=overlay
    elif [[ -c /dev/fuse ]] && command -v fuse-overlayfs >/dev/null; then
        driver=fuse-overlayfs
    else
        driver=vfs
    fi
    log "storage driver: $driver"

    if [[ -f $STORAGE_CONF ]] && ! grep -qF "$MARKER" "$STORAGE_CONF"; then
        log "$STORAGE_CONF exists and is not ours; leaving it alone"
        return 0
    fi
    case $driver in
    overlay)
        # Debian's /usr/share/containers/storage.conf already defaults to native overlay.
        if [[ -f $STORAGE_CONF ]]; then rm -f "$STORAGE_CONF"; log "removed $STORAGE_CONF"; fi
        ;;
    fuse-overlayfs)
        write_file "$STORAGE_CONF" <<EOF
$MARKER
[storage]
driver = "overlay"
runroot = "/run/containers/storage"
graphroot = "/var/lib/containers/storage"
[storage.options.overlay]
mount_program = "/usr/bin/fuse-overlayfs"
EOF
        ;;
    vfs)
        write_file "$STORAGE_CONF" <<EOF
$MARKER
[storage]
driver = "vfs"
runroot = "/run/containers/storage"
graphroot = "/var/lib/containers/storage"
EOF
        ;;
    esac
    # Switching drivers over an existing store fails with a graph driver mismatch;
    # fix by hand with `podman system reset -f` (destroys images).
}

# ---------------------------------------------------------------- smoke test
smoke_test() {
    local info
    info=$(podman info --format '{{.Host.OCIRuntime.Name}} {{.Host.CgroupManager}} {{.Store.GraphDriverName}} {{.Host.NetworkBackend}}')
    log "podman: $info"
    if podman image exists "$ROOT_IMAGE"; then
        podman run --rm --network none "$ROOT_IMAGE" true ||
            die "podman run of $ROOT_IMAGE failed"
        log "podman run OK"
    else
        log "no $ROOT_IMAGE yet (make it with: nbpipe base bootstrap); skipped the run check"
    fi
}

# ---------------------------------------------------------------- docker (optional)
# Debian's docker.io 20.10 works here (overlay2, cgroupfs, runc, built-in BuildKit).
# Use /usr/bin/docker for `DOCKER_BUILDKIT=1 docker build`: a newer client such as
# /usr/local/bin/docker needs the buildx plugin, which bookworm does not package.
setup_docker() {
    apt_install_missing docker.io
    if /usr/bin/docker info >/dev/null 2>&1; then
        log "dockerd already running"
        return 0
    fi
    if have_systemd; then
        systemctl start docker
    else
        log "starting dockerd in background (log /var/log/dockerd.log)"
        nohup dockerd >>/var/log/dockerd.log 2>&1 &
    fi
    local i
    for i in $(seq 1 60); do
        /usr/bin/docker info >/dev/null 2>&1 && { log "dockerd up"; return 0; }
        sleep 1
    done
    die "dockerd did not come up; see /var/log/dockerd.log"
}

# ---------------------------------------------------------------- main
main() {
    local want_docker=0 want_check=1 a
    for a in "$@"; do
        case $a in
        --docker) want_docker=1 ;;
        --no-check) want_check=0 ;;
        -h | --help) sed -n '2,20p' "$0"; exit 0 ;;
        *) die "unknown argument: $a" ;;
        esac
    done
    [[ $(id -u) -eq 0 ]] || die "must run as root"

    install_packages
    configure_engine
    configure_storage
    ((want_check)) && smoke_test
    ((want_docker)) && setup_docker
    log "done"
}

main "$@"
