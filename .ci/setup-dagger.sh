#!/usr/bin/env bash
# A Dagger engine and CLI on this machine from registries only (opt-in: .ci/setup and .ci/run
# never call this). Dagger's release downloads and its engine image are not reachable here, so
# the engine is built from its Go module and run as a privileged Podman container from a
# debootstrap'd Debian root. Everything lands under $PREFIX (default /opt/nbpipe-dagger); the
# `dagger` wrapper is $PREFIX/bin/dagger (put that folder on PATH yourself: nothing is installed
# on the default PATH, so CI and other users see no dagger unless they ask for it).
#
#   bash .ci/setup-dagger.sh all       # sources, compile, root, sdk content, images, start
#   bash .ci/setup-dagger.sh compile   # one stage (sources compile root content images start stop status)
#
# Facts this follows, read from dagger/dagger at the release commit (toolchains/engine-dev/build):
# - go.mod replaces dagger.io/dagger and engine/distconsts with local folders, so
#   `go install module@version` is refused: the module is downloaded, dagger.io/dagger comes from
#   the proxy at the same version, engine/distconsts (a nested module the proxy does not serve:
#   /@v/<commit>.info answers 403) is a 40-line file of constants kept in .ci/dagger/distconsts.
# - binaries: ./cmd/engine, ./cmd/dagger (CLI), ./cmd/init, ./cmd/dialstdio, ./cmd/dnsname,
#   ./cmd/codegen; tags dfexcludepatterns,dfparents; -X engine.Version / engine.Tag; no cgo.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD

PREFIX=${NBPIPE_DAGGER_PREFIX:-/opt/nbpipe-dagger}
# dagger.json asks v0.21.11; the Go module proxy serves v0.21.7 and v0.21.8 of the v0.21 line
# (v0.21.9..12 answer 403 "not available"), so the nearest release the proxy serves is built.
VERSION=${NBPIPE_DAGGER_VERSION:-v0.21.8}
SRC=$PREFIX/src/dagger-$VERSION
BIN=$PREFIX/bin
ENGINE_NAME=${NBPIPE_DAGGER_ENGINE:-nbpipe-dagger-engine}
ENGINE_IMAGE=localhost/nbpipe/dagger-engine:$VERSION
REGISTRY_PORT=${NBPIPE_DAGGER_MIRROR_PORT:-5111}
# A git checkout of dagger/dagger for the nested modules the proxy does not serve
# (sdk/python/runtime: the Python SDK's runtime module, content of the engine image).
DAGGER_GIT=${NBPIPE_DAGGER_GIT:-/work/.mirror/dagger+dagger/repo}
export GOFLAGS=-mod=mod GOTOOLCHAIN=local CGO_ENABLED=0

log() { printf 'setup-dagger: %s\n' "$*" >&2; }
die() { printf 'setup-dagger: %s\n' "$*" >&2; exit 1; }
stamp() { date +%s; }

stage_sources() {
    [[ -f $SRC/go.mod ]] && { log "sources: $SRC already there"; return; }
    command -v go >/dev/null || die "sources: no go on PATH (the machine kind with Go is needed)"
    log "sources: github.com/dagger/dagger@$VERSION and dagger.io/dagger@$VERSION from the Go proxy"
    local dir sdk
    dir=$(go mod download -json "github.com/dagger/dagger@$VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
    sdk=$(go mod download -json "dagger.io/dagger@$VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
    mkdir -p "$PREFIX/src"
    rm -rf "$SRC.tmp" && cp -r "$dir" "$SRC.tmp" && chmod -R u+w "$SRC.tmp"
    rm -rf "$SRC.tmp/sdk/go" && cp -r "$sdk" "$SRC.tmp/sdk/go" && chmod -R u+w "$SRC.tmp/sdk/go"
    mkdir -p "$SRC.tmp/engine/distconsts"
    cp .ci/dagger/distconsts/consts.go .ci/dagger/distconsts/go.mod "$SRC.tmp/engine/distconsts/"
    (cd .ci/dagger/distconsts && sha256sum -c --quiet SHA256SUMS) || die "sources: distconsts differs from the release's"
    mv "$SRC.tmp" "$SRC"
    replace_unserved
}

# Modules go.mod requires at versions the proxy refuses (403 "This module version is not
# available", seen 2026-12-07 for v0.21.8): each is taken from a git checkout of its public
# repository at the exact commit the pseudo-version or tag names, and `replace`d by folder.
# Format: module version repo-dir treeish subdir
UNSERVED=(
    "github.com/vito/midterm v0.2.5-0.20260312180916-3c2add750bea vito+midterm 3c2add750bea ."
    "github.com/vito/tuist v0.0.6 vito+tuist v0.0.6 ."
    "github.com/vito/tuist/teav1 v0.0.0-20260330150345-de388bf31342 vito+tuist de388bf31342 teav1"
    "github.com/vito/dang/v2 v2.1.1 vito+dang v2.1.1 ."
)
MIRRORS=${NBPIPE_DAGGER_MIRRORS:-/work/.mirror}

replace_unserved() {
    local line mod ver repo tree sub dst
    for line in "${UNSERVED[@]}"; do
        read -r mod ver repo tree sub <<<"$line"
        if go mod download "$mod@$ver" 2>/dev/null; then continue; fi  # served (now)
        [[ -d $MIRRORS/$repo/repo ]] || die "sources: $mod@$ver is not served by the Go proxy and no git checkout at $MIRRORS/$repo/repo"
        dst=$PREFIX/src/replace/${mod//\//+}@$ver
        if [[ ! -f $dst/go.mod ]]; then
            log "sources: $mod@$ver not served by the proxy: from $repo at $tree"
            rm -rf "$dst.tmp" && mkdir -p "$dst.tmp"
            git -C "$MIRRORS/$repo/repo" archive "$tree" "$sub" | tar -x -C "$dst.tmp"
            if [[ $sub != . ]]; then mv "$dst.tmp/$sub" "$dst.tmp.sub" && rm -rf "$dst.tmp" && mv "$dst.tmp.sub" "$dst.tmp"; fi
            mv "$dst.tmp" "$dst"
        fi
        (cd "$SRC" && go mod edit -replace "$mod=$dst")
    done
}

stage_compile() {
    local t0 ldflags out
    t0=$(stamp)
    out=$PREFIX/build
    mkdir -p "$out"
    ldflags="-s -w -X github.com/dagger/dagger/engine.Version=$VERSION -X github.com/dagger/dagger/engine.Tag=$VERSION"
    cd "$SRC"
    # one `go build` per binary, lowest priority: the machine's 2 cores are shared
    local pkg name
    for pkg in ./cmd/engine ./cmd/init ./cmd/dialstdio ./cmd/dnsname ./cmd/codegen ./cmd/dagger; do
        name=${pkg##*/}
        [[ -x $out/$name ]] && continue
        log "compile: $pkg"
        nice -n 19 go build -trimpath -tags dfexcludepatterns,dfparents -ldflags "$ldflags" -o "$out/$name.tmp" "$pkg"
        mv "$out/$name.tmp" "$out/$name"
    done
    cd "$REPO"
    log "compile: done in $(( $(stamp) - t0 )) s"
    echo "compile_s=$(( $(stamp) - t0 ))" >> "$PREFIX/timings"
}

# The engine's root: our debootstrap'd Debian root (localhost/nbpipe/root, from `nbpipe base
# bootstrap`) plus what the release's Wolfi image holds, from Debian's packages where Debian has
# them (runc, CNI plugins, dnsmasq, iptables/nftables, git, ssh, tini, pigz, xz, e2fsprogs,
# ripgrep, sqlite3) and our compiled binaries where it does not (dagger-engine, dagger-init,
# dial-stdio linked as buildctl, dnsname). docker-registry serves the stand-in images as the
# engine's docker.io mirror on the engine's own loopback (127.0.0.1:5000). The machine's CAs
# go to /usr/local/share/ca-certificates: the engine runs update-ca-certificates at start and
# installs those CAs into every container it runs (engine/engineutil/cacerts).
stage_root() {
    local t0 ctr base
    t0=$(stamp)
    base=localhost/nbpipe/root:bookworm-amd64
    podman image exists "$base" || die "root: no $base (run: .venv/bin/nbpipe base bootstrap)"
    ctr=$(buildah from --pull=never "$base")
    buildah run "$ctr" -- sh -c 'apt-get update -q && DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends runc containernetworking-plugins \
        dnsmasq-base iptables nftables git openssh-client ca-certificates openssl pigz \
        xz-utils tini e2fsprogs ripgrep sqlite3 docker-registry procps \
        && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin'
    buildah copy "$ctr" /usr/local/share/ca-certificates/ /usr/local/share/ca-certificates/
    buildah copy --chmod 0755 "$ctr" .ci/dagger/engine-entrypoint.sh /usr/local/bin/dagger-entrypoint.sh
    buildah copy "$ctr" .ci/dagger/registries/mirror.yml /etc/nbpipe/registries/mirror.yml
    buildah copy "$ctr" .ci/dagger/engine.json /etc/dagger/engine.json
    buildah run "$ctr" -- sh -c 'set -e
        mkdir -p /opt/cni/bin && ln -sf /usr/bin/dial-stdio /usr/bin/buildctl
        # the engine points iptables at /usr/bin/xtables-{legacy,nft}-multi (Wolfi paths;
        # network/netinst/iptables.go): Debian has them in /usr/sbin
        ln -sf /usr/sbin/xtables-legacy-multi /usr/bin/xtables-legacy-multi
        ln -sf /usr/sbin/xtables-nft-multi /usr/bin/xtables-nft-multi
        ln -sf /usr/sbin/runc /usr/local/bin/runc
        ln -sf /usr/bin/tini /usr/local/bin/tini
        for p in bridge loopback firewall host-local; do ln -sf /usr/lib/cni/$p /opt/cni/bin/$p; done
        mkdir -p /var/lib/dagger /usr/local/share/dagger/content /var/lib/nbpipe-mirror
        : > /etc/dagger/engine.toml'
    buildah config --entrypoint '["/usr/local/bin/dagger-entrypoint.sh"]' --cmd '[]' \
        --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        --annotation "org.opencontainers.image.version=$VERSION" "$ctr"
    buildah commit -q "$ctr" "$ENGINE_IMAGE.base" >/dev/null
    buildah rm "$ctr" >/dev/null
    log "root: $ENGINE_IMAGE.base in $(( $(stamp) - t0 )) s"
    echo "root_s=$(( $(stamp) - t0 ))" >> "$PREFIX/timings"
}

# The SDKs the engine holds as content (toolchains/engine-dev/build/sdk.go): OCI blobs under
# /usr/local/share/dagger/content, found by the manifest digests in DAGGER_GO_SDK_MANIFEST_DIGEST
# and DAGGER_PYTHON_SDK_MANIFEST_DIGEST.
# - Go SDK: upstream is golang:1.26-alpine + git/openssh/openssl + codegen + a warm
#   /go/pkg/mod. Here: the Debian root + this machine's Go toolchain (the same 1.26 line) +
#   our codegen + the modules of sdk/go and of the Python runtime module, downloaded here.
# - Python SDK: a rootfs (no OS) holding sdk/python (pyproject, uv.lock, src, codegen),
#   runtime/ (the Python runtime, itself a Go module the Go SDK compiles at first use; the
#   proxy does not serve it, so it comes from the git checkout at the release commit), and
#   dist/: uv + uvx (from the uv wheel on PyPI, at the version the runtime's uv image names)
#   and the codegen zipapp (shiv), as upstream bundles them.
RELEASE_COMMIT=7902e644beeba4468f1ea786015b4be1d6d5bbcd
stage_content() {
    local t0 ctr work gomod uvver
    t0=$(stamp)
    work=$PREFIX/work/content && rm -rf "$work" && mkdir -p "$work"
    [[ -x $PREFIX/build/codegen ]] || die "content: no compiled codegen (run the compile stage)"
    # Python runtime module from the git checkout (not served by the proxy)
    [[ -d $DAGGER_GIT ]] || die "content: sdk/python/runtime is not served by the Go proxy; need a git checkout of dagger/dagger at $DAGGER_GIT (NBPIPE_DAGGER_GIT)"
    mkdir -p "$work/py/runtime"
    git -C "$DAGGER_GIT" archive "$RELEASE_COMMIT:sdk/python/runtime" | tar -x -C "$work/py/runtime"
    # Go modules for the Go SDK's warm cache
    gomod=$work/gomod && mkdir -p "$gomod"
    (cd "$SRC/sdk/go" && GOMODCACHE=$gomod GOFLAGS=-mod=mod go mod download)
    (cd "$work/py/runtime" && GOMODCACHE=$gomod GOFLAGS=-mod=mod go mod download)
    # The Go SDK's codegen runs `go get dagger.io/dagger@<commit>` (core/sdk/go_sdk.go
    # goSDKLibVersion, "v0.21.8" by its comment) and `go get github.com/dagger/querybuilder`
    # (@upgrade): the proxy refuses both queries here (403 on /@v/<commit>.info and /@v/list).
    # The warm cache answers them instead: a file:// GOPROXY in front of the real one, with
    # the commit's .info naming the release it is.
    local libver
    libver=$(sed -n 's/^[[:space:]]*goSDKLibVersion = "\([0-9a-f]*\)" \/\/ \(v[0-9.]*\)$/\1 \2/p' "$SRC/core/sdk/go_sdk.go")
    [[ ${libver#* } == "$VERSION" ]] || die "content: goSDKLibVersion in core/sdk/go_sdk.go is not marked $VERSION: '$libver'"
    GOMODCACHE=$gomod GOFLAGS=-mod=mod go mod download "dagger.io/dagger@$VERSION"
    cp "$gomod/cache/download/dagger.io/dagger/@v/$VERSION.info" "$gomod/cache/download/dagger.io/dagger/@v/${libver% *}.info"
    chmod -R u+w "$gomod"
    ctr=$(buildah from --pull=never localhost/nbpipe/root:bookworm-amd64)
    buildah run "$ctr" -- sh -c 'apt-get update -q && DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends git openssh-client openssl ca-certificates \
        && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin && mkdir -p /go/pkg /root/.cache/go-build'
    buildah copy "$ctr" "$(go env GOROOT)" /usr/local/go
    buildah copy --chmod 0755 "$ctr" "$PREFIX/build/codegen" /usr/local/bin/codegen
    buildah copy "$ctr" "$gomod" /go/pkg/mod
    buildah config --env PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        --env GOPATH=/go --env GOTOOLCHAIN=local --env CGO_ENABLED=0 --workingdir /go \
        --env GOPROXY=file:///go/pkg/mod/cache/download,https://proxy.golang.org,direct "$ctr"
    buildah commit -q "$ctr" localhost/nbpipe/dagger-go-sdk:$VERSION >/dev/null
    buildah rm "$ctr" >/dev/null
    # Python SDK rootfs
    local py=$work/py sdkpy=$SRC/sdk/python
    cp -a "$sdkpy/pyproject.toml" "$sdkpy/uv.lock" "$sdkpy/LICENSE" "$sdkpy/README.md" "$sdkpy/codegen" "$py/"
    (cd "$sdkpy" && find src \( -name '*.py' -o -name '*.typed' \) -not -path 'src/dagger/_engine/*' \
        -not -path 'src/dagger/provisioning/*' -print0 | xargs -0 cp --parents -t "$py")
    uvver=$(sed -n 's#^FROM ghcr.io/astral-sh/uv:\([0-9.]*\)@.*#\1#p' "$py/runtime/images/uv/Dockerfile")
    [[ -n $uvver ]] || die "content: no uv version in runtime/images/uv/Dockerfile"
    mkdir -p "$py/dist" "$work/uv"
    python3 -m pip download -q --no-deps --only-binary :all: -d "$work/uv" "uv==$uvver"
    (cd "$work/uv" && python3 -m zipfile -e uv-*.whl x)
    cp "$work"/uv/x/uv-*.data/scripts/uv "$work"/uv/x/uv-*.data/scripts/uvx "$py/dist/" && chmod 0755 "$py"/dist/uv*
    # codegen's requirements as sdk/python's uv.lock pins them (--frozen: graphql-core 3.2.x;
    # a fresh resolve takes 3.3, whose FieldDefinitionNode codegen cannot build)
    (cd "$py" && UV_NATIVE_TLS=1 "$py/dist/uv" export -q --frozen --no-hashes --no-editable --package codegen -o "$work/req.txt" \
        && UV_NATIVE_TLS=1 "$py/dist/uvx" -q shiv==1.0.8 --reproducible --compressed -e codegen.cli:main -o "$py/dist/codegen" -r "$work/req.txt")
    grep -q '^graphql-core==3\.2\.' "$work/req.txt" || die "content: codegen's graphql-core is not the 3.2 line uv.lock pins"
    ctr=$(buildah from scratch)
    buildah copy "$ctr" "$py" /
    buildah commit -q "$ctr" localhost/nbpipe/dagger-python-sdk:$VERSION >/dev/null
    buildah rm "$ctr" >/dev/null
    # both as OCI layouts, blobs merged into one content store
    rm -rf "$PREFIX/content" && mkdir -p "$PREFIX/content/blobs/sha256"
    local name
    for name in go python; do
        rm -rf "$work/oci-$name"
        buildah push -q "localhost/nbpipe/dagger-$name-sdk:$VERSION" "oci:$work/oci-$name" >/dev/null
        cp -n "$work/oci-$name"/blobs/sha256/* "$PREFIX/content/blobs/sha256/"
        python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["manifests"][0]["digest"])' \
            "$work/oci-$name/index.json" > "$PREFIX/content/$name.digest"
    done
    log "content: go $(cat "$PREFIX/content/go.digest"), python $(cat "$PREFIX/content/python.digest") in $(( $(stamp) - t0 )) s"
    echo "content_s=$(( $(stamp) - t0 ))" >> "$PREFIX/timings"
}

# Stand-ins for the images the Python runtime pulls from Docker Hub: python:<X.Y>-slim, the
# tag the module's requires-python picks (">=3.11": 3.11, Debian bookworm's own Python), as
# Debian's python3 with python-is-python3 and no EXTERNALLY-MANAGED marker (the runtime runs
# `uv pip install` into the system Python). Pushed into $PREFIX/mirror, the storage the
# engine's mirror serves, through a registry on loopback that runs only for the push.
stage_images() {
    local t0 ctr pyver port=$REGISTRY_PORT
    t0=$(stamp)
    pyver=${NBPIPE_DAGGER_PYTHON:-3.11}
    ctr=$(buildah from --pull=never localhost/nbpipe/root:bookworm-amd64)
    buildah run "$ctr" -- sh -c 'apt-get update -q && DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends python3 python3-venv python-is-python3 \
        ca-certificates git && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
        && rm -f /usr/lib/python3*/EXTERNALLY-MANAGED'
    buildah config --env LANG=C.UTF-8 --cmd '["python3"]' "$ctr"
    buildah commit -q "$ctr" "localhost/nbpipe/python:$pyver-slim" >/dev/null
    buildah rm "$ctr" >/dev/null
    bash .ci/setup-registry.sh start "$port" "$PREFIX/mirror"
    skopeo copy -q --dest-tls-verify=false "containers-storage:localhost/nbpipe/python:$pyver-slim" \
        "docker://127.0.0.1:$port/library/python:$pyver-slim"
    skopeo copy -q --dest-tls-verify=false "containers-storage:localhost/nbpipe/root:bookworm-amd64" \
        "docker://127.0.0.1:$port/nbpipe/root:bookworm-amd64"
    skopeo inspect --tls-verify=false --format '{{.Digest}}' \
        "docker://127.0.0.1:$port/nbpipe/root:bookworm-amd64" > "$PREFIX/mirror/root.digest"
    bash .ci/setup-registry.sh stop "$PREFIX/mirror"
    log "images: python:$pyver-slim and nbpipe/root ($(cat "$PREFIX/mirror/root.digest")) in $(( $(stamp) - t0 )) s"
    echo "images_s=$(( $(stamp) - t0 ))" >> "$PREFIX/timings"
}

# The engine image: the root plus our binaries, the SDK content and the digests that find it.
stage_image() {
    local ctr
    local b
    for b in engine init dialstdio dnsname; do
        [[ -x $PREFIX/build/$b ]] || die "image: no compiled $b (run the compile stage)"
    done
    ctr=$(buildah from --pull=never "$ENGINE_IMAGE.base")
    buildah copy --chmod 0755 "$ctr" "$PREFIX/build/engine" /usr/local/bin/dagger-engine
    buildah copy --chmod 0755 "$ctr" "$PREFIX/build/init" /usr/local/bin/dagger-init
    buildah copy --chmod 0755 "$ctr" "$PREFIX/build/dialstdio" /usr/bin/dial-stdio
    buildah copy --chmod 0755 "$ctr" "$PREFIX/build/dnsname" /opt/cni/bin/dnsname
    buildah copy "$ctr" "$PREFIX/content/blobs" /usr/local/share/dagger/content/blobs
    buildah config --env "DAGGER_GO_SDK_MANIFEST_DIGEST=$(cat "$PREFIX/content/go.digest")" \
        --env "DAGGER_PYTHON_SDK_MANIFEST_DIGEST=$(cat "$PREFIX/content/python.digest")" "$ctr"
    buildah commit -q "$ctr" "$ENGINE_IMAGE" >/dev/null
    buildah rm "$ctr" >/dev/null
    log "image: $ENGINE_IMAGE"
}

# The wrapper: `dagger` reaching our engine with no further settings, through the engine's
# own socket (unix:///run/dagger/engine.sock inside, engine/distconsts), which the container
# publishes as $SOCK. Not container+podman://: that runs `podman exec NAME buildctl
# dial-stdio` for every client, and podman's state of the container can be lost while the
# engine runs. Seen twice on 2026-12-07: when /run/libpod/alive goes missing (another user
# of this machine's podman removed /run/libpod), the next podman command "refreshes" every
# container as after a reboot ("Refreshing container ...: acquiring lock 0 ...: file
# exists"), the engine's state becomes "created", pid 0, and every `podman exec` is refused
# ("can only create exec sessions on running containers"), so every dagger command hung
# 10 min at "connecting to engine". The socket only needs the engine process.
SOCK=$PREFIX/run/engine.sock
stage_wrapper() {
    mkdir -p "$BIN"
    cat > "$BIN/dagger.tmp" <<WRAP
#!/bin/sh
# nbpipe's dagger $VERSION (built by .ci/setup-dagger.sh): the CLI, pointed at the engine
# container $ENGINE_NAME by its socket (start it: bash .ci/setup-dagger.sh start).
: "\${_EXPERIMENTAL_DAGGER_RUNNER_HOST:=unix://$SOCK}"
export _EXPERIMENTAL_DAGGER_RUNNER_HOST
export DO_NOT_TRACK=1 DAGGER_NO_NAG=1
exec $PREFIX/build/dagger "\$@"
WRAP
    chmod 0755 "$BIN/dagger.tmp" && mv "$BIN/dagger.tmp" "$BIN/dagger"
    log "wrapper: $BIN/dagger (export PATH=$BIN:\$PATH)"
}

stage_start() {
    local t0 i
    t0=$(date +%s.%N)
    stage_wrapper  # (again: a wrapper from before the socket still says container+podman://)
    if [[ $(podman container inspect -f '{{.State.Running}}' "$ENGINE_NAME" 2>/dev/null) == true ]] \
        && timeout 10 "$BIN/dagger" query -M <<<'{version}' >/dev/null 2>&1; then
        log "start: $ENGINE_NAME already running and answering"; return
    fi
    # a previous engine of ours that died (or was killed) may have left processes or rules
    if [[ -n $(podman container inspect -f '{{.Id}}' "$ENGINE_NAME" 2>/dev/null) || -s $PREFIX/engine.id ]]; then
        stage_stop
    fi
    podman rm -f "$ENGINE_NAME" >/dev/null 2>&1 || true
    mkdir -p "$PREFIX/state" "$PREFIX/run"
    rm -f "$SOCK"
    publish_registry
    # engine.json mounted, not only copied into the image: its `gc` settings change without
    # an image rebuild. Those are explicit because BuildKit's defaults keep 20% of the disk
    # free (51 GB of this 252 GB disk, which has 24 GB free): the engine then pruned every
    # withExec result as each session ended, and each `dagger call` rebuilt the whole chain
    # (seen 2026-12-07: `localCache { minFreeSpace }` 51000000000, "dagql pruned result").
    podman run -d --name "$ENGINE_NAME" --privileged \
        -v "$REPO/.ci/dagger/engine.json:/etc/dagger/engine.json:ro" \
        -v "$PREFIX/state:/var/lib/dagger" -v "$PREFIX/run:/run/dagger" -v "$PREFIX/mirror/data:/var/lib/nbpipe-mirror:ro" \
        -v "$PREFIX/publish:$PREFIX/publish" -v "$PREFIX/publish/engine.yml:/etc/nbpipe/registries/publish.yml:ro" \
        -p "127.0.0.1:$PUBLISH_PORT:$PUBLISH_PORT" \
        "$ENGINE_IMAGE" --debug >/dev/null
    podman container inspect -f '{{.Id}}' "$ENGINE_NAME" > "$PREFIX/engine.id"
    write_env
    for i in $(seq 1 120); do
        if timeout 10 "$BIN/dagger" query -M <<<'{version}' >/dev/null 2>&1; then
            log "start: engine answers after $(python3 -c "import time; print(round(time.time() - $t0, 1))") s"
            echo "start_s=$(python3 -c "import time; print(round(time.time() - $t0, 1))")" >> "$PREFIX/timings"
            return
        fi
        sleep 1
    done
    podman logs --tail 30 "$ENGINE_NAME" >&2 || true
    die "start: the engine did not answer in 120 s (podman logs $ENGINE_NAME)"
}

# The publish tests' registry (htpasswd auth), served inside the engine container on
# $PUBLISH_PORT and forwarded to the same port on this machine's loopback, so
# localhost:$PUBLISH_PORT names it for the engine's pushes and for the tests' checks alike.
# Its config and htpasswd are made by .ci/setup-registry.sh (started once, then stopped).
PUBLISH_PORT=${NBPIPE_DAGGER_PUBLISH_PORT:-5112}
publish_registry() {
    local dir=$PREFIX/publish user=nbpipe pw
    mkdir -p "$dir"
    if [[ ! -s $dir/credentials ]]; then
        pw=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
        (umask 077 && printf '%s:%s\n' "$user" "$pw" > "$dir/credentials")
    fi
    bash .ci/setup-registry.sh start "$PUBLISH_PORT" "$dir" --htpasswd "$(cat "$dir/credentials")" >/dev/null
    bash .ci/setup-registry.sh stop "$dir" >/dev/null
    sed -e "s/addr: 127.0.0.1:$PUBLISH_PORT/addr: :$PUBLISH_PORT/" "$dir/config.yml" > "$dir/engine.yml"
    grep -q "addr: :$PUBLISH_PORT" "$dir/engine.yml" || die "start: no http addr to rewrite in $dir/config.yml"
}

# $PREFIX/env: what a shell sources to use this engine (README, "With Dagger").
write_env() {
    cat > "$PREFIX/env" <<ENV
# source this: the dagger wrapper on PATH, and what the live tests need
export PATH=$BIN:\$PATH
export NBPIPE_DAGGER_ROOT=localhost:5000/nbpipe/root@$(cat "$PREFIX/mirror/root.digest")
export NBPIPE_DAGGER_PUBLISH_REGISTRY=localhost:$PUBLISH_PORT
export NBPIPE_DAGGER_PUBLISH_CREDENTIALS=$PREFIX/publish/credentials
ENV
}

# What a stopped engine must not leave: processes of its container, and the port-forwarding
# rules netavark made for it. Seen 2026-12-07 (bench/dagger_live.md): podman lost the
# container's state (inspect said "created", pid 0, while conmon, tini and the engine ran),
# `podman stop` stopped nothing, SIGTERM did not end tini, SIGKILL did but left netavark's
# DNAT rules for 127.0.0.1:$PUBLISH_PORT -> the dead container's address, and the next
# start failed until they were deleted. So stop checks what is left, by the container's id
# only (never by a process name), and says what it tried when something is left.
engine_pids() {  # processes in the container's cgroup, and the conmon monitors of its id
    local id=$1 p
    for p in /proc/[0-9]*; do
        grep -qs "libpod-$id" "$p/cgroup" 2>/dev/null && printf '%s\n' "${p#/proc/}"
    done
    ps -eo pid=,args= | awk -v id="$id" '$2 ~ /(^|\/)conmon$/ && index($0, " -c " id " ") { print $1 }'
}

# netavark's nat rules for a container: a jump from NETAVARK-HOSTPORT-DNAT per host port,
# commented with the container's id, into the NETWORK's chain NETAVARK-DN-<hash>, which other
# containers' ports share; in it, that port's rules (mark, DNAT to the container's address).
# Host ports are the host's, so a chain rule for one of our ports is ours.
stale_rules() {
    local id=$1 rule port chain
    command -v iptables >/dev/null || return 0
    { iptables -w -t nat -S 2>/dev/null | grep -F -- "podman id: $id" || true; } | while read -r rule; do
        chain=$(sed -n 's/.* -j \(NETAVARK-DN-[A-Za-z0-9]*\).*/\1/p' <<<"$rule")
        port=$(sed -n 's/.* --dport \([0-9]*\) .*/\1/p' <<<"$rule")
        if [[ -n $chain && -n $port ]]; then
            iptables -w -t nat -S "$chain" 2>/dev/null | grep -- "^-A $chain .* --dport $port " \
                | while read -r r; do eval "iptables -w -t nat ${r/#-A /-D }" || exit 1; done || return 1
        fi
        eval "iptables -w -t nat ${rule/#-A /-D }" || return 1
        log "stop: deleted netavark's rules for $id, host port ${port:-?}: $rule and its ${chain:-?} rules"
    done
}

stage_stop() {
    local id running left err tried=()
    id=$(podman container inspect -f '{{.Id}}' "$ENGINE_NAME" 2>/dev/null) || id=
    [[ -n $id ]] || id=$(cat "$PREFIX/engine.id" 2>/dev/null) || id=
    if [[ -z $id ]]; then
        log "stop: no container $ENGINE_NAME and no $PREFIX/engine.id: nothing to stop"
        return 0
    fi
    if err=$(podman stop -t 10 "$ENGINE_NAME" 2>&1 >/dev/null); then
        tried+=("podman stop -t 10 $ENGINE_NAME: ok")
    else
        tried+=("podman stop -t 10 $ENGINE_NAME: ${err##*$'\n'}")
    fi
    running=$(podman container inspect -f '{{.State.Running}}' "$ENGINE_NAME" 2>/dev/null) || running=
    left=$(engine_pids "$id" | sort -un | tr '\n' ' ')
    if [[ $running == true || -n ${left// } ]]; then
        err=$(podman kill "$ENGINE_NAME" 2>&1 >/dev/null) && tried+=("podman kill: ok") \
            || tried+=("podman kill: ${err##*$'\n'}")
        sleep 2
        left=$(engine_pids "$id" | sort -un | tr '\n' ' ')
    fi
    if [[ -n ${left// } ]]; then  # podman's state no longer matches: end them by pid
        # shellcheck disable=SC2086
        kill -TERM $left 2>/dev/null; tried+=("kill -TERM $left")
        sleep 5
        left=$(engine_pids "$id" | sort -un | tr '\n' ' ')
        if [[ -n ${left// } ]]; then
            # shellcheck disable=SC2086
            kill -KILL $left 2>/dev/null; tried+=("kill -KILL $left")
            sleep 2
            left=$(engine_pids "$id" | sort -un | tr '\n' ' ')
        fi
    fi
    # network teardown as podman does it when it still knows the container, then by hand
    podman container cleanup "$ENGINE_NAME" >/dev/null 2>&1 && tried+=("podman container cleanup: ok")
    stale_rules "$id" || tried+=("deleting netavark's rules for $id: failed")
    running=$(podman container inspect -f '{{.State.Running}}' "$ENGINE_NAME" 2>/dev/null) || running=
    local rules
    rules=$(iptables -w -t nat -S 2>/dev/null | grep -cF -- "podman id: $id" || true)
    if [[ $running == true || -n ${left// } || ${rules:-0} != 0 ]]; then
        die "stop: $ENGINE_NAME ($id) is not stopped: podman says running=${running:-unknown}, processes left: ${left:-none}, netavark rules left: ${rules:-0}; tried: $(IFS=';'; echo "${tried[*]}")"
    fi
    log "stop: $ENGINE_NAME stopped (${tried[*]}; state kept in $PREFIX/state; start again: $0 start)"
}

stage_status() {
    podman ps -a --filter "name=^$ENGINE_NAME\$" --format '{{.Names}} {{.Status}} {{.Image}}'
    [[ -x $BIN/dagger ]] && timeout 10 "$BIN/dagger" version || true
}

need_tools() {
    local t missing=()
    for t in go git podman buildah skopeo python3 curl; do
        command -v "$t" >/dev/null || missing+=("$t")
    done
    [[ -x /usr/bin/docker-registry ]] || missing+=("docker-registry (bash .ci/setup-registry.sh install)")
    ((${#missing[@]} == 0)) || die "missing: ${missing[*]} (run bash .ci/setup first)"
}

main() {
    local stage
    [[ $(id -u) -eq 0 ]] || die "run as root (it runs a privileged engine container)"
    [[ $# -gt 0 ]] || set -- all
    for stage in "$@"; do  # stop and status need podman only
        [[ $stage == stop || $stage == status ]] || { need_tools; break; }
    done
    for stage in "$@"; do
        case $stage in
            all) main sources compile root content images image wrapper start ;;
            sources|compile|root|content|images|image|wrapper|start|stop|status) "stage_$stage" ;;
            replace) replace_unserved ;;
            *) die "unknown stage '$stage' (sources compile root content images image wrapper start stop status all)" ;;
        esac
    done
}
main "$@"
