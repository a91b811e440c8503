"""Build and run with a container CLI: Podman/Buildah (default here) or Docker+BuildKit.

Both take the same Dockerfile lowering. Results are tagged by content digest, and only
after the build succeeded: a tag never points at a half-built image.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence, overload

from nbpipe.engines.dockerfile import Rendered
from nbpipe.errors import BuildError, NbpipeError
from nbpipe.inputs import safe_io
from nbpipe.recipe.options import CA_ID, DEBSTORE_ID, WHEELHOUSE_ID, BuildOptions

BUILD_TIMEOUT = 6 * 3600  # seconds for one image build (the slowest here take minutes)
_STEP_BUILDAH = re.compile(r"^STEP (\d+)/(\d+):")
_PINNED_DEB = re.compile(r"=[A-Za-z0-9.+~:-]+ ([0-9a-f]{64})")  # steps.Apt's lock lines
DOCKER_NO_CACHE = (
    "--cache-registry: not supported with docker (BuildKit's registry cache needs a buildx "
    "builder of its own): use --engine podman"
)
_STEP_BUILDKIT = re.compile(r"^#\d+ \[(?:[\w-]+ )?\s*(\d+)/(\d+)\]")


@dataclass(frozen=True)
class ImageInfo:
    ref: str
    id: str
    size: int  # bytes, uncompressed
    labels: dict[str, str]
    created: str
    arch: str = ""  # amd64 | arm64 ("" where the listing does not say)


@dataclass(frozen=True)
class LayerCache:
    """A registry repository that podman/buildah builds share layers through
    (`--cache-from`/`--cache-to`, buildah >= 1.27): a runner that has never built a step
    pulls the layer another runner pushed instead of running it.

    Why it can never serve a layer of another recipe: buildah tags each cached layer by a
    sha256 over the parent image's layer digests (diffIDs) and history, the manifest
    type, and the instruction's own text (for COPY, the digest of the files copied).
    With `--layers` every step's parent is the previous step's image, so a key covers the
    whole chain down to FROM. Our FROM is content-addressed (a parent built from its own
    recipe digest, or the root pinned by sha256) and every input of a step is in its
    text: Debian pins with their sha256, Python pins, files by content. A recipe that
    changes a step changes that instruction's key and, through the parent chain, every
    later one; the final LABEL carries the image's digest (io.nbpipe.digest), so the
    finished image is never another recipe's. (The `# digest:` comment line itself is
    not an instruction: it is not in any key.) What is mounted rather than copied (the
    CA bundle, a wheelhouse, the .deb store, package caches) is not in a key, and need
    not be: options change where bytes come from, never which bytes (recipe/options.py).
    A parent that arrives another way (a docker-archive load: another manifest type)
    only misses the cache, never hits a wrong layer."""

    repo: str  # host[:port]/namespace/NAME-cache
    flags: tuple[str, ...] = ()  # --tls-verify=..., --authfile FILE (Registry.flags)


@dataclass(frozen=True)
class OciEngine:
    """One container CLI. ``kind`` is "podman" or "docker"; ``binary`` is its path."""

    kind: str
    binary: str
    runtime: str | None = None  # podman: an OCI runtime to force (runc on hybrid cgroups)
    # podman: a store of its own (graph root; run root beside it), e.g. a node that has
    # never pulled anything; None: the machine's store
    graph_root: str | None = None

    # -- discovery ---------------------------------------------------------------------
    @classmethod
    def detect(cls, prefer: str = "auto") -> "OciEngine":
        """podman if installed (daemonless), else docker with a reachable daemon."""
        return cls.connect(prefer)[0]

    @classmethod
    def connect(
        cls, prefer: str = "auto", runtime: str | None = None
    ) -> "tuple[OciEngine, dict[str, ImageInfo]]":
        """The engine to use and its image store: listing the store is the check that the
        engine works, so finding it costs one engine call. ``runtime``: NBPIPE_RUNTIME."""
        if prefer not in ("auto", "podman", "docker"):
            raise NbpipeError(f"--engine {prefer!r}: use auto, podman or docker")
        order = ["podman", "docker"] if prefer == "auto" else [prefer]
        problems = []
        for kind in order:
            binary = _find(kind)
            if binary is None:
                problems.append(f"{kind}: not installed")
                continue
            engine = cls(kind, binary, runtime)
            try:
                return engine, engine.images()
            except (NbpipeError, ValueError) as exc:
                problems.append(f"{kind}: {exc}")
        raise NbpipeError(
            "no usable container engine ("
            + "; ".join(problems)
            + "): run `bash .ci/setup-engine.sh` or install podman and buildah"
        )

    # -- images ------------------------------------------------------------------------
    def images(self) -> dict[str, ImageInfo]:
        """Every tagged image in the store, by reference, from ONE engine call: what plans
        and no-op builds read instead of asking the engine once per image."""
        # The fast paths read the machine's store; a store of its own is asked through podman.
        own = self.graph_root is None
        if self.kind == "podman" and own and (indexed := _storage_index()) is not None:
            return indexed
        buildah = shutil.which("buildah") if self.kind == "podman" and own else None
        if buildah:  # the same store, listed without podman's slower start (0.2 s, not 0.6)
            r = subprocess.run(
                [buildah, "images", "--json", "--no-trunc"],
                capture_output=True,
                text=True,
                timeout=120,
            )
            if r.returncode != 0:
                raise NbpipeError(f"`buildah images` failed: {_last_line(r.stderr)}")
            rows = [
                {"Id": x["id"], "Names": x.get("names"), "Size": _bytes(x.get("size", ""))}
                for x in json.loads(r.stdout or "[]")
            ]
        elif self.kind == "podman":
            rows = json.loads(self._run(["images", "--format", "json"]).stdout or "[]")
        else:  # docker's `images` JSON lacks full ids and labels: list ids, inspect them once
            ids = self._run(["images", "-q", "--no-trunc"]).stdout.split()
            rows = (
                json.loads(self._run(["image", "inspect", *dict.fromkeys(ids)]).stdout)
                if ids
                else []
            )
        out: dict[str, ImageInfo] = {}
        for row in rows:
            info = _info("", row)
            for name in row.get("Names") or row.get("RepoTags") or []:
                out[name] = ImageInfo(name, info.id, info.size, info.labels, info.created)
        return out

    def exists(self, ref: str) -> bool:
        if self.kind == "podman":
            return self._run(["image", "exists", ref], check=False).returncode == 0
        return self._run(["image", "inspect", ref], check=False).returncode == 0

    def inspect(self, ref: str) -> ImageInfo:
        r = self._run(["image", "inspect", ref], check=False)
        if r.returncode != 0:
            raise NbpipeError(
                f"image {ref} is not in {self.kind}'s store: build it first (nbpipe build NAME)"
            )
        return _info(ref, json.loads(r.stdout)[0])

    def tag(self, source: str, ref: str) -> None:
        self._run(["tag", source, ref])

    def untag(self, ref: str) -> None:
        """Drop the name ``ref`` only; the image stays under its other names."""
        self._run(["untag", ref, ref] if self.kind == "podman" else ["rmi", ref], check=False)

    def remove(self, ref: str) -> None:
        self._run(["rmi", "-f", ref], check=False)

    def drop_store(self) -> None:
        """Empty a store of its own (``graph_root``: a test's, a bench's fresh runner) and
        remove its folders. Never `podman system reset`: besides the store it removes
        podman's tmpdir (/run/libpod), which every store on the machine shares, and the
        machine's own podman then "refreshes" its running containers."""
        if self.graph_root is None:
            raise NbpipeError("drop_store: only a store of its own (graph_root) is dropped")
        for args in (["pod", "rm", "-af"], ["rm", "-af"], ["rmi", "-af"]):
            self._run(args, check=False, timeout=300)
        if shutil.which("buildah"):  # a build's working containers, if one was cut off
            run = ["--root", self.graph_root, "--runroot", f"{self.graph_root}-run"]
            subprocess.run(["buildah", *run, "rm", "--all"], capture_output=True, timeout=300)
        for folder in (self.graph_root, f"{self.graph_root}-run"):
            shutil.rmtree(folder, ignore_errors=True)

    def import_tar(self, tar: Path, ref: str, platform: str) -> str:
        """Import a root filesystem tarball as an image; returns its id (sha256:...)."""
        args = ["import"]
        if self.kind == "podman":
            args += ["--arch", platform.split("/")[1]]
        else:
            args += ["--platform", platform]
        r = self._run([*args, str(tar), ref])
        return self.inspect(ref).id if r.returncode == 0 else ""

    def build(
        self,
        rendered: Rendered,
        ref: str,
        platform: str,
        options: BuildOptions,
        log: Path,
        *,
        no_cache: bool = False,
        cache: LayerCache | None = None,
    ) -> ImageInfo:
        """Build, then tag ``ref`` only if the build succeeded; raise BuildError naming
        the failed step and the last lines of its log otherwise. ``cache``: the registry
        repository to pull cached layers from and push new ones to (podman only)."""
        with tempfile.TemporaryDirectory(prefix="nbpipe-ctx-") as tmp:
            ctx = Path(tmp)
            rendered.write(ctx)
            if options.wheelhouse is not None:
                _link_tree(options.wheelhouse, ctx / WHEELHOUSE_ID)
            if options.deb_store is not None:  # only the .debs this Dockerfile pins
                wanted = {f"{h}.deb" for h in _PINNED_DEB.findall(rendered.text)}
                _link_tree(options.deb_store, ctx / DEBSTORE_ID, only=wanted)
            iidfile = ctx / ".iid"
            pull = "never" if rendered.from_ref.startswith("localhost/") else "missing"
            args = self._build_args(ctx, platform, options, iidfile, no_cache, pull, cache)
            env = {**os.environ, "DOCKER_BUILDKIT": "1", "BUILDAH_LAYERS": "true"}
            with safe_io.new_file(log) as out:  # a link left at the log's name: replaced
                out.write(f"$ {self.binary} {' '.join(args)}\n\n{rendered.text}\n")
                out.flush()
                try:  # a build runs someone else's steps (postBuild): bounded too
                    proc = subprocess.run(
                        [self.binary, *self._store_flags(), *args],
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        env=env,
                        timeout=BUILD_TIMEOUT,
                    )
                except subprocess.TimeoutExpired:
                    limit = (
                        f"{BUILD_TIMEOUT / 3600:g} h"
                        if BUILD_TIMEOUT >= 3600
                        else f"{BUILD_TIMEOUT:g} s"
                    )
                    raise BuildError(
                        f"{ref}: the build ran longer than {limit} and was stopped; its log: {log}"
                    ) from None
            if proc.returncode != 0 or not iidfile.exists():
                raise BuildError(self._failure(rendered, log, ref))
            image_id = iidfile.read_text().strip()
        self.tag(image_id, ref)
        return self.inspect(ref)

    def _build_args(
        self,
        ctx: Path,
        platform: str,
        options: BuildOptions,
        iidfile: Path,
        no_cache: bool,
        pull: str = "missing",
        cache: LayerCache | None = None,
    ) -> list[str]:
        """``pull``: never for our own local parents (built first, never in a registry);
        missing for a registry root, pulled once by its pinned digest. ``cache``: layers
        from and to a registry (--no-cache: only to it, a rebuild refreshes it)."""
        args = [
            "build",
            "--platform",
            platform,
            "--iidfile",
            str(iidfile),
            "-f",
            str(ctx / "Dockerfile"),
            "--network",
            "host",
        ]
        if self.kind == "podman":
            args += ["--layers", f"--pull={pull}", "--timestamp", str(options.source_date_epoch)]
            if self.runtime:
                args += ["--runtime", self.runtime]
            if cache is not None:
                if not no_cache:
                    args += ["--cache-from", cache.repo]
                args += ["--cache-to", cache.repo, *cache.flags]
        else:
            if cache is not None:
                raise NbpipeError(DOCKER_NO_CACHE)
            args += ["--progress", "plain"]
        if no_cache:
            args.append("--no-cache")
        if options.ca_bundle is not None:
            args += ["--secret", f"id={CA_ID},src={options.ca_bundle}"]
        return [*args, str(ctx)]

    def _failure(self, rendered: Rendered, log: Path, ref: str) -> str:
        lines = log.read_text(errors="replace").splitlines()
        step = None
        for line in lines:
            m = _STEP_BUILDAH.match(line) or _STEP_BUILDKIT.match(line)
            if m:
                step = int(m.group(1))
        where = rendered.origin(step) if step else "before the first step"
        tail = "\n".join("    " + line for line in lines[-15:])
        return f"{ref}: step failed: {where}\n  log: {log}\n{tail}"

    @overload
    def cache_dir(self, cache_id: str) -> Path | None: ...
    @overload
    def cache_dir(self, cache_id: str, *, create: tuple[int, int]) -> Path: ...
    def cache_dir(self, cache_id: str, *, create: tuple[int, int] | None = None) -> Path | None:
        """The host folder of a build cache mount, where this engine keeps it there
        (buildah as root: $TMPDIR or /var/tmp, `buildah-cache/<id>`); None where it does
        not. ``create`` (uid, gid): made as buildah makes it for a mount with that owner
        when missing; an engine without such folders is then an error."""
        base = Path(os.environ.get("TMPDIR") or "/var/tmp") / "buildah-cache" / cache_id
        if create is not None and (self.kind != "podman" or os.geteuid() != 0):
            raise NbpipeError(f"{self.kind} keeps no build cache folders this run can fill")
        if self.kind != "podman":
            return None
        if create is not None and not base.is_dir():
            base.mkdir(parents=True, exist_ok=True)
            os.chown(base, *create)
        return base if base.is_dir() else None

    # -- registries ------------------------------------------------------------------
    def push(self, ref: str, dest: str, flags: Sequence[str]) -> str:
        """Push a local image to ``dest`` (docker://...); returns the pushed manifest digest."""
        self._need_podman("push")
        with tempfile.TemporaryDirectory(prefix="nbpipe-push-") as tmp:
            digestfile = Path(tmp) / "digest"
            r = self._run(
                ["push", *flags, "--digestfile", str(digestfile), ref, dest],
                check=False,
                timeout=3600,
            )
            if r.returncode != 0:
                raise NbpipeError(
                    f"push of {ref} to {dest.removeprefix('docker://')} failed: "
                    f"{_last_line(r.stderr)}"
                )
            return digestfile.read_text().strip()

    def pull(self, ref: str, flags: Sequence[str] = ()) -> float:
        """Pull ``ref`` from its registry into this store; returns the seconds it took."""
        self._need_podman("pull")
        start = time.monotonic()
        r = self._run(["pull", "--quiet", *flags, ref], check=False, timeout=3600)
        if r.returncode != 0:
            raise NbpipeError(f"pull of {ref} failed: {_last_line(r.stderr)}")
        return time.monotonic() - start

    def publish_list(
        self, sources: dict[str, str], dests: Sequence[str], flags: Sequence[str]
    ) -> str:
        """One manifest list of already-pushed per-platform images (platform -> remote
        ref), pushed to every ``dest``; returns the list's digest."""
        self._need_podman("publish a manifest list")
        name = f"localhost/nbpipe-publish/list:{os.getpid()}"
        self._run(["manifest", "rm", name], check=False)
        self._run(["manifest", "create", name])
        try:
            for platform, ref in sources.items():
                arch = platform.split("/")[1]
                r = self._run(
                    [
                        "manifest",
                        "add",
                        *flags,
                        "--os",
                        "linux",
                        "--arch",
                        arch,
                        name,
                        f"docker://{ref}",
                    ],
                    check=False,
                    timeout=600,
                )
                if r.returncode != 0:
                    raise NbpipeError(f"manifest add {ref} failed: {_last_line(r.stderr)}")
            digest = ""
            for dest in dests:
                with tempfile.TemporaryDirectory(prefix="nbpipe-push-") as tmp:
                    digestfile = Path(tmp) / "digest"
                    r = self._run(
                        [
                            "manifest",
                            "push",
                            *flags,
                            "--digestfile",
                            str(digestfile),
                            name,
                            f"docker://{dest}",
                        ],
                        check=False,
                        timeout=3600,
                    )
                    if r.returncode != 0:
                        raise NbpipeError(
                            f"push of the manifest list to {dest} failed: {_last_line(r.stderr)}"
                        )
                    digest = digestfile.read_text().strip()
            return digest
        finally:
            self._run(["manifest", "rm", name], check=False)

    def _need_podman(self, what: str) -> None:
        if self.kind != "podman":
            raise NbpipeError(
                f"to {what} nbpipe uses podman/buildah's manifest tools; run with --engine podman"
            )

    # -- containers --------------------------------------------------------------------
    def run_detached(
        self,
        ref: str,
        *,
        env: dict[str, str],
        mounts: Sequence[str],
        port: int,
        container_port: int,
        name: str,
        extra: Sequence[str] = (),
    ) -> str:
        args = ["run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:{container_port}"]
        if self.kind == "podman" and self.runtime:
            args[1:1] = ["--runtime", self.runtime]
        for k, v in env.items():
            args += ["-e", f"{k}={v}"]
        for m in mounts:
            args += ["-v", m]
        r = self._run([*args, *extra, ref], check=False)
        if r.returncode != 0:
            raise NbpipeError(f"could not start {ref}: {r.stderr.strip()[-400:]}")
        return r.stdout.strip()

    def run_once(
        self, ref: str, argv: Sequence[str], *, extra: Sequence[str] = (), timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        """Run a command in a throw-away container of ``ref`` (e.g. a GPU smoke test)."""
        args = [
            "run",
            "--rm",
            *(["--runtime", self.runtime] if self.runtime else []),
            *extra,
            "--entrypoint",
            argv[0],
            ref,
            *argv[1:],
        ]
        return self._run(args, check=False, timeout=timeout)

    def exec(
        self, container: str, argv: Sequence[str], *, user: str | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        args = ["exec"] + (["--user", user] if user else []) + [container, *argv]
        return self._run(args, check=False, timeout=timeout)

    def logs(self, container: str) -> str:
        r = self._run(["logs", container], check=False)
        return r.stdout + r.stderr

    def remove_container(self, container: str) -> None:
        self._run(["rm", "-f", "-t", "2", container], check=False)

    def running(self, container: str) -> bool:
        r = self._run(["inspect", "--format", "{{.State.Running}}", container], check=False)
        return r.stdout.strip() == "true"

    # -- pods (podman kube play) ---------------------------------------------------------
    def kube_play(self, manifest: Path) -> None:
        """Create and start the pods of a Kubernetes YAML file."""
        self._need_podman("play a Kubernetes pod")
        r = self._run(
            [*self._runtime_flag(), "kube", "play", "--quiet", str(manifest)],
            check=False,
            timeout=900,
        )
        if r.returncode != 0:
            raise NbpipeError(f"podman kube play {manifest.name} failed: {_last_line(r.stderr)}")

    def kube_down(self, manifest: Path) -> None:
        """Remove the pods of a Kubernetes YAML file (nothing if they are gone)."""
        self._run(["kube", "down", str(manifest)], check=False, timeout=120)

    def stop(self, container: str, grace: int) -> float:
        """Stop as the kubelet does: the stop signal, then SIGKILL after ``grace`` seconds.
        Returns the seconds it took."""
        start = time.monotonic()
        self._run(["stop", "-t", str(grace), container], check=False, timeout=grace + 60)
        return time.monotonic() - start

    def exit_code(self, container: str) -> int | None:
        r = self._run(["inspect", "--format", "{{.State.ExitCode}}", container], check=False)
        return int(r.stdout.strip()) if r.returncode == 0 and r.stdout.strip().isdigit() else None

    def _store_flags(self) -> list[str]:
        if self.graph_root is None or self.kind != "podman":
            return []
        return ["--root", self.graph_root, "--runroot", f"{self.graph_root}-run"]

    def _runtime_flag(self) -> list[str]:
        return ["--runtime", self.runtime] if self.kind == "podman" and self.runtime else []

    # -- plumbing ----------------------------------------------------------------------
    def _run(
        self, args: list[str], *, check: bool = True, timeout: float | None = 600
    ) -> subprocess.CompletedProcess[str]:
        try:
            r = subprocess.run(
                [self.binary, *self._store_flags(), *args],
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            raise NbpipeError(
                f"`{self.kind} {' '.join(args[:3])}` timed out after {timeout:.0f}s"
            ) from None
        if check and r.returncode != 0:
            raise NbpipeError(
                f"`{self.kind} {' '.join(args[:3])}` failed: {r.stderr.strip()[-500:]}"
            )
        return r


def _info(ref: str, data: dict) -> ImageInfo:
    """One image as `image inspect` or podman's `images --format json` describes it."""
    labels = (data.get("Config") or {}).get("Labels") or data.get("Labels") or {}
    image_id = data["Id"] if data["Id"].startswith("sha256:") else f"sha256:{data['Id']}"
    return ImageInfo(
        ref=ref,
        id=image_id,
        size=int(data.get("Size", 0)),
        labels=dict(labels),
        created=str(data.get("Created", "")),
        arch=str(data.get("Architecture", "")),
    )


STORAGE_CONF = Path("/etc/containers/storage.conf")
GRAPH_ROOT = Path("/var/lib/containers/storage")  # containers/storage's default, for root


def _storage_index() -> dict[str, ImageInfo] | None:
    """Podman's store as containers/storage itself indexes it (images.json, layers.json,
    both replaced atomically on every change): read in milliseconds, where starting
    podman or buildah to list it costs 0.2-0.6 s of CPU. Sizes are the layers' own (what
    `podman images` shows, less a few kB of metadata). None, so the engine is asked,
    wherever the store is not the plain root one (rootless, another configuration)."""
    import tomllib

    if os.geteuid() != 0 or os.environ.get("CONTAINERS_STORAGE_CONF"):
        return None
    try:
        conf = (
            tomllib.loads(STORAGE_CONF.read_text()).get("storage", {})
            if STORAGE_CONF.exists()
            else {}
        )
        root = Path(conf.get("graphroot") or GRAPH_ROOT)
        drivers = [conf["driver"]] if conf.get("driver") else ["overlay", "vfs"]
        found = [d for d in drivers if (root / f"{d}-images" / "images.json").is_file()]
        if len(found) != 1:
            return None
        images = json.loads((root / f"{found[0]}-images" / "images.json").read_text())
        layers = {
            x["id"]: x
            for x in json.loads((root / f"{found[0]}-layers" / "layers.json").read_text())
        }
        out: dict[str, ImageInfo] = {}
        for img in images:
            size, layer = 0, img.get("layer")
            while layer:
                size += int(layers[layer].get("diff-size", 0))
                layer = layers[layer].get("parent")
            info = _info("", {"Id": img["id"], "Size": size})
            for name in img.get("names") or []:
                out[name] = ImageInfo(name, info.id, info.size, {}, str(img.get("created", "")))
        return out
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _bytes(human: str) -> int:
    """buildah's sizes ("188 MB", "77.9 kB"): decimal units, three significant digits."""
    units = {"B": 1, "kB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}
    number, _, unit = human.partition(" ")
    try:
        return int(float(number) * units[unit])
    except (ValueError, KeyError):
        return 0


def _last_line(stderr: str) -> str:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "failed"


def _find(kind: str) -> str | None:
    if kind == "docker":
        # Debian's docker.io client has BuildKit built in; another docker on PATH may not.
        return "/usr/bin/docker" if Path("/usr/bin/docker").exists() else shutil.which("docker")
    return shutil.which(kind)


def _link_tree(src: Path, dst: Path, only: set[str] | None = None) -> None:
    """Give the build context a copy of a folder (or of the files named ``only`` in it),
    by hard links where the disk allows."""
    dst.mkdir(parents=True, exist_ok=True)
    files = src.iterdir() if only is None else (src / n for n in sorted(only))
    for f in files:
        if f.is_file() and not f.is_symlink():
            try:
                os.link(f, dst / f.name)
            except OSError:
                shutil.copy2(f, dst / f.name)
