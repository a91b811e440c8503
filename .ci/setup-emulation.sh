#!/usr/bin/env bash
# setup-emulation.sh - run linux/arm64 containers, builds and debootstraps under qemu.
#
# Idempotent: safe to run repeatedly. Targets Debian bookworm (amd64 host), run as root,
# including nested containers/VMs without systemd.
#
# Usage:
#   .ci/setup-emulation.sh              # packages + binfmt registration + checks
#   .ci/setup-emulation.sh --no-check   # skip the checks
#
# Environment overrides:
#   NBPIPE_ARM64_IMAGE  (default localhost/nbpipe/root:bookworm-arm64; only for the run check)
#
# What it does and why:
#   * installs qemu-user-static (static qemu-aarch64) if missing. Its postinst registers
#     nothing where binfmt_misc is not mounted and systemd-binfmt does not run (no systemd),
#     so the registration is done here by hand:
#   * mounts binfmt_misc on /proc/sys/fs/binfmt_misc if it is not mounted;
#   * writes the line of /usr/lib/binfmt.d/qemu-aarch64.conf into .../register, unless
#     .../qemu-aarch64 exists already. Debian's line has flags "OPF"; F (fix binary) makes
#     the kernel open the interpreter once, at registration, so it works inside containers
#     and chroots that do not have /usr/bin/qemu-aarch64-static. An existing entry without
#     F is replaced.
#   The registration is kernel state: it is lost on reboot (or a fresh VM), and here
#   (kernel 6.18) also when binfmt_misc is unmounted; run this again.
set -euo pipefail

ARM64_IMAGE=${NBPIPE_ARM64_IMAGE:-localhost/nbpipe/root:bookworm-arm64}
BINFMT_DIR=/proc/sys/fs/binfmt_misc
BINFMT_CONF=/usr/lib/binfmt.d/qemu-aarch64.conf
ENTRY=$BINFMT_DIR/qemu-aarch64

LOG_TAG=setup-emulation
# shellcheck source=.ci/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"



binfmt_mounted() { awk -v d="$BINFMT_DIR" '$2 == d && $3 == "binfmt_misc" {f=1} END {exit !f}' /proc/mounts; }

entry_flags() { sed -n 's/^flags: *//p' "$ENTRY"; }

mount_binfmt() {
    if binfmt_mounted; then return 0; fi
    log "mounting binfmt_misc on $BINFMT_DIR"
    mount -t binfmt_misc binfmt_misc "$BINFMT_DIR" ||
        die "cannot mount binfmt_misc (a container without CAP_SYS_ADMIN? register qemu on the host)"
}

register_aarch64() {
    [[ -f $BINFMT_CONF ]] || die "$BINFMT_CONF missing (qemu-user-static not installed?)"
    if [[ -e $ENTRY ]]; then
        if [[ $(entry_flags) == *F* ]]; then
            log "qemu-aarch64 already registered (flags: $(entry_flags))"
            return 0
        fi
        log "qemu-aarch64 registered without the F flag (flags: $(entry_flags)); re-registering"
        echo -1 >"$ENTRY"
    fi
    local line
    line=$(grep -v -e '^[[:space:]]*#' -e '^[[:space:]]*$' "$BINFMT_CONF" | head -n1)
    [[ -n $line ]] || die "no registration line in $BINFMT_CONF"
    printf '%s\n' "$line" >"$BINFMT_DIR/register"
    log "registered qemu-aarch64 (flags: $(entry_flags))"
}

check() {
    grep -qx enabled "$BINFMT_DIR/status" || die "binfmt_misc is disabled ($BINFMT_DIR/status)"
    grep -qx enabled "$ENTRY" || die "$ENTRY is disabled"
    [[ $(entry_flags) == *F* ]] || die "$ENTRY lacks the F flag"
    if command -v podman >/dev/null && podman image exists "$ARM64_IMAGE"; then
        local m
        m=$(podman run --rm --network none --platform linux/arm64 "$ARM64_IMAGE" uname -m) ||
            die "podman run of $ARM64_IMAGE failed"
        [[ $m == aarch64 ]] || die "uname -m in $ARM64_IMAGE says '$m', not aarch64"
        log "podman run --platform linux/arm64: $m"
    else
        log "no $ARM64_IMAGE yet (make it with: nbpipe base bootstrap --platform linux/arm64);" \
            "skipped the run check"
    fi
}

main() {
    local want_check=1 a
    for a in "$@"; do
        case $a in
        --no-check) want_check=0 ;;
        -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
        *) die "unknown argument: $a" ;;
        esac
    done
    [[ $(id -u) -eq 0 ]] || die "must run as root"
    [[ $(dpkg --print-architecture) == arm64 ]] && { log "host is arm64; nothing to do"; exit 0; }

    apt_install_missing qemu-user-static debootstrap
    mount_binfmt
    # status may say "disabled" if someone wrote 0 into it
    grep -qx enabled "$BINFMT_DIR/status" || echo 1 >"$BINFMT_DIR/status"
    register_aarch64
    ((want_check)) && check
    log "done"
}

main "$@"
