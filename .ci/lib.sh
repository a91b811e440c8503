# shellcheck shell=bash
# Shared by the .ci/setup-*.sh scripts: logging and "install what is missing" for apt.
# The sourcing script sets LOG_TAG first.

log() { printf '[%s] %s\n' "${LOG_TAG:-setup}" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

export DEBIAN_FRONTEND=noninteractive
APT_OPTS=(-o DPkg::Lock::Timeout=600 -o Dpkg::Options::=--force-confold -y -q)

# missing_packages PKG...: print those not installed, one per line
missing_packages() {
    local p
    for p in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
            echo "$p"
        fi
    done
}

# apt_install PKG...: install them (no recommends), after an update
apt_install() {
    log "installing: $*"
    apt-get "${APT_OPTS[@]}" update
    apt-get "${APT_OPTS[@]}" install --no-install-recommends "$@"
}

# apt_install_missing PKG...: install those not installed yet
apt_install_missing() {
    local missing
    mapfile -t missing < <(missing_packages "$@")
    if ((${#missing[@]})); then
        apt_install "${missing[@]}"
    fi
}
