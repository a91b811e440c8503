"""`nbpipe`: the command line. Thin: every command calls the SDK and prints the result."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.text import Text

from nbpipe.cli import output
from nbpipe.cli import supply as cli_supply
from nbpipe.errors import NbpipeError, printable
from nbpipe.inputs.loader import load
from nbpipe.probing.kubeflow import FLAVORS
from nbpipe.recipe import contract
from nbpipe.recipe import graph as graphs
from nbpipe.recipe import platforms as plat
from nbpipe.recipe.catalog import Catalog
from nbpipe.recipe.image import short
from nbpipe.run.machine import ENGINES, ROOTS
from nbpipe.run.settings import Settings

HELP = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _group(help: str, **kwargs) -> typer.Typer:
    """A command group whose help is plain text: never read as rich markup (a help line
    such as `host[:port][/namespace]` is text, not a closing tag), `-h` as `--help`."""
    return typer.Typer(
        help=help,
        no_args_is_help=True,
        add_completion=False,
        rich_markup_mode=None,
        context_settings=HELP,
        **kwargs,
    )


app = _group(
    "Build, test and publish the notebook-server image family.",
    epilog="Exit codes: 0 ok, 1 failed (an image not built or probed, bad input), "
    "2 usage, 70 a bug in nbpipe.",
)
console = output.console()
err = output.console(stderr=True, markup=False)  # messages carry user text


_SETTINGS: list[Settings] = []  # this command line's, made by the app's callback


def _settings() -> Settings:
    """This command line's settings: made once (in `_root`, before any command runs) from
    the environment (settings.ENV), and passed down to everything it runs."""
    if not _SETTINGS:
        _SETTINGS.append(Settings.from_env())
    return _SETTINGS[0]


def _state_lock(on_event):
    """The state folder's lock, taken once per command that writes there."""
    from nbpipe.inputs import safe_io

    return safe_io.locked(_settings().state_dir, on_wait=lambda w: on_event("nbpipe", w))


def _choice(*values: str):
    """A callback refusing any value but ``values``: exit 2 and one wording for every
    option ("Invalid value for '--format': 'svg': use one of text, mermaid, dot")."""

    def check(value):
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if v is not None and v not in values:
                raise typer.BadParameter(f"{v!r}: use one of {', '.join(values)}")
        return value

    return check


def _registry(value: Optional[str]) -> Optional[str]:
    """--registry checked before any work (a scheme, a space, an empty name: exit 2)."""
    if value is not None:
        from nbpipe.engines.registry import Registry

        try:
            Registry.parse(value)
        except NbpipeError as exc:
            raise typer.BadParameter(f"{value!r}: {str(exc).split(': ', 1)[-1]}") from None
    return value


CatalogOpt = typer.Option(
    None,
    "--catalog",
    metavar="MODULE:FUNC",
    help="module:function giving the Catalog (default: nbpipe.family:family, or $NBPIPE_CATALOG)",
)
EngineOpt = typer.Option(
    "auto",
    "--engine",
    metavar="ENGINE",
    callback=_choice(*ENGINES),
    help="auto (Dagger if a session or CLI is there, else podman, else "
    "docker) | dagger | podman | docker",
)
RootOpt = typer.Option(
    "auto",
    "--root",
    metavar="ROOT",
    callback=_choice(*ROOTS),
    help="auto (the local debootstrap root if present, else the registry pin) | local | registry",
)
PlatformOpt = typer.Option(
    None,
    "--platform",
    metavar="PLATFORM",
    callback=_choice(*plat.ALL),
    help="linux/amd64 | linux/arm64 (default: this machine's)",
)
CaOpt = typer.Option(
    "auto",
    "--ca-bundle",
    metavar="auto|none|PEM",
    help="PEM bundle trusted "
    "during the build only (TLS-intercepting proxies), never stored in the "
    "image; auto: this machine's own bundle if it has one; none: the image's "
    "own trust",
)
CacheOpt = typer.Option(
    None,
    "--cache-registry",
    callback=_registry,
    metavar="HOST[:PORT]/NAMESPACE",
    help="share built layers through this registry (podman): pull a step's layer from "
    "<registry>/<image>-cache instead of running it, push the ones built here (default: "
    "$NBPIPE_CACHE_REGISTRY; credentials and --tls-verify as --registry's). Not with "
    "docker; a Dagger build keeps its own cache and ignores it",
)
JsonOpt = typer.Option(False, "--json", help='print JSON on stdout (shape: README, "JSON output")')


def _version(value: bool) -> None:
    if value:
        from nbpipe import __version__

        print(f"nbpipe {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", is_eager=True, callback=_version, help="print nbpipe's version and exit"
    ),
) -> None:
    """Build, test and publish the notebook-server image family."""
    _SETTINGS[:] = [Settings.from_env()]


def _cache_registry(value: Optional[str]) -> None:
    """--cache-registry replaces $NBPIPE_CACHE_REGISTRY in this command line's settings."""
    if value is not None:
        from dataclasses import replace

        _SETTINGS[:] = [replace(_settings(), cache_registry=value.rstrip("/"))]


def _examples(*lines: str) -> str:
    """A help epilog click prints as written (\b: no rewrapping)."""
    return "\b\nExamples:\n" + "\n".join(f"  {line}" for line in lines)


def _machine(
    catalog: Catalog,
    engine: str,
    root: str,
    platform: str | None = None,
    *,
    need_engine: bool = True,
):
    """This machine's engine, platform and root; said on stderr where something is built."""
    from nbpipe.run.machine import detect

    m = detect(
        catalog, _settings(), engine=engine, root=root, platform=platform, need_engine=need_engine
    )
    if need_engine:
        err.print(m.describe(), highlight=False)
    return m


def _where(m) -> str:
    """Which identity a command printed: the platform and the root its digests are on."""
    root = (
        f"the local root {m.local_root.pinned(m.platform)}"
        if m.local_root is not None
        else "the registry root"
    )
    return f"{m.platform} on {root}"


WheelOpt = typer.Option(
    None, "--wheelhouse", metavar="DIR", help="folder of wheels pip may use (find-links)"
)
JobsOpt = typer.Option(
    2, "--jobs", "-j", metavar="N", min=1, help="images built at the same time (>= 1)"
)
DebStoreOpt = typer.Option(
    "auto",
    "--deb-store",
    metavar="auto|none|DIR",
    help="package store: a folder of pinned .debs named by sha256 that "
    "apt steps install from first and builds add to (auto: "
    "~/.cache/nbpipe/debs; none: off)",
)
PullDebsOpt = typer.Option(
    None,
    "--registry",
    callback=_registry,
    metavar="HOST[:PORT][/NAMESPACE]",
    help="where `publish` pushed the images: their pinned .debs fill the package store "
    "before building (exact rebuilds after Debian's archive moved)",
)
LockedOpt = typer.Option(
    False,
    "--locked",
    help="never change the lock file: a pinned "
    "version that has left Debian's archive is an error (releases); "
    "without it, that step is resolved again, saved and built",
)
ReportOpt = typer.Option(
    Path("reports"), "--report-dir", metavar="DIR", help="where the JSON and Markdown reports go"
)
AllowOpt = typer.Option(
    False,
    "--allow-unbuildable",
    help="exit 0 although images asked "
    "for are unbuildable here (or blocked by one); they are listed as skipped",
)


FileOpt = typer.Option(
    None,
    "--file",
    "-f",
    metavar="SPEC",
    help="a team's YAML spec (repeatable): its image joins the family and is the default target",
)
RepoOpt = typer.Option(
    None,
    "--from-repo",
    metavar="DIR",
    help="a Binder-ready repo "
    "(requirements.txt, apt.txt, environment.yml, postBuild, start), built "
    "on --parent",
)
ParentOpt = typer.Option(
    "jupyter", "--parent", metavar="IMAGE", help="parent image for --from-repo"
)


@dataclass(frozen=True)
class Inputs:
    """The catalog with the team images of this command line, each spec and repository
    parsed once: their names (the default targets) and where each came from (labels)."""

    catalog: Catalog
    own: tuple[str, ...] = ()  # the team images given with -f / --from-repo
    origins: tuple = ()

    def targets(self, names: list[str] | None) -> list[str]:
        """Names asked for; with -f/--from-repo and no names, the team's own images."""
        return list(names) if names else list(self.own)


def _inputs(
    spec: str | None,
    files: list[Path] | None = None,
    repo: Path | None = None,
    parent: str = "jupyter",
) -> Inputs:
    """The catalog plus any team images given as YAML specs or a Binder repo (a spec's
    own lock file, NAME.lock.json next to it, pins its apt and pip steps)."""
    cat = load(spec or _settings().catalog)
    from nbpipe.inputs import binder
    from nbpipe.inputs import spec as specs
    from nbpipe.locks import lock as locks
    from nbpipe.run import origin

    own: list[str] = []
    where: dict[str, Path] = {}
    for f in files or []:
        sp = specs.load(f)
        sp.register(cat)
        locks.apply_to(cat, sp.name, locks.spec_lock(f))
        own.append(sp.name)
        where[sp.name] = Path(f).resolve().parent
    if repo is not None:
        rp = binder.from_repo(repo, parent)
        rp.register(cat)
        own.append(rp.name)
        where[rp.name] = Path(repo).resolve()
    return Inputs(cat, tuple(own), origin.team_images(cat, where))


def _catalog(spec: str | None) -> Catalog:
    return _inputs(spec).catalog


@app.command(epilog=_examples("nbpipe images", "nbpipe images --json | jq '.images[].name'"))
def images(
    engine: str = EngineOpt,
    root: str = RootOpt,
    platform: Optional[str] = PlatformOpt,
    as_json: bool = JsonOpt,
    catalog: Optional[str] = CatalogOpt,
) -> None:
    """List every image: parent, platforms, runner tags, and its digest and state here."""
    from nbpipe.recipe.naming import content_tag
    from nbpipe.run.state import assess

    m = _machine(_catalog(catalog), engine, root, platform, need_engine=False)
    states = {s.name: s for s in assess(m.catalog, m.platform, m.store)}
    rows = []
    for name in m.catalog.order():
        img = m.catalog.resolve(name)
        tags = img.config().label_dict().get(contract.LABEL_RUNNER_TAGS, "")
        st = states.get(name)
        rows.append(
            {
                "name": name,
                "parent": m.catalog.parent_name(name) or img.root.ref,
                "platforms": list(img.platforms),
                "runner_tags": [t for t in tags.split(",") if t],
                "digest": st.digest if st else None,
                "content_tag": content_tag(img),
                "state": st.state.value if st else f"not for {m.platform}",
                "reason": st.reason if st else "",
            }
        )
    if as_json:
        output.emit_json({"platform": m.platform, "root": m.root_name, "images": rows})
        return
    from rich.table import Table

    table = Table(
        "name", "parent", "platforms", "runner tags", "digest", "state", caption=_where(m)
    )
    for r in rows:
        table.add_row(
            r["name"],
            escape(r["parent"]),
            ",".join(p.split("/")[1] for p in r["platforms"]),
            escape(",".join(r["runner_tags"]) or "-"),
            short(r["digest"], 16) if r["digest"] else "-",
            r["state"],
        )
    console.print(table)


@app.command(epilog=_examples("nbpipe graph", "nbpipe graph --format mermaid"))
def graph(
    fmt: str = typer.Option(
        "text",
        "--format",
        metavar="FORMAT",
        callback=_choice(*graphs.FORMATS),
        help=" | ".join(graphs.FORMATS),
    ),
    catalog: Optional[str] = CatalogOpt,
) -> None:
    """Print the image family as a tree, Mermaid chart, Graphviz dot or JSON."""
    print(graphs.render(_catalog(catalog), fmt))


@app.command(
    epilog=_examples(
        "nbpipe plan jupyter-scipy",
        "nbpipe plan --json > plan.json",
        "nbpipe plan --since plan.json",
        "nbpipe plan --registry ghcr.io/acme",
    )
)
def plan(
    names: list[str] = typer.Argument(None, metavar="IMAGE", help="images to build (default: all)"),
    since: Optional[Path] = typer.Option(
        None,
        "--since",
        metavar="PLAN.json",
        help="a plan JSON from before (same "
        "platform and root): list only the images "
        "whose digest changed since",
    ),
    registry: Optional[str] = typer.Option(
        None,
        "--registry",
        callback=_registry,
        metavar="HOST[:PORT][/NAMESPACE]",
        help="leave out images whose content tag is already published there",
    ),
    root: str = RootOpt,
    engine: str = EngineOpt,
    platform: Optional[str] = PlatformOpt,
    wheelhouse: Optional[Path] = WheelOpt,
    as_json: bool = JsonOpt,
    file: Optional[list[Path]] = FileOpt,
    from_repo: Optional[Path] = RepoOpt,
    parent: str = ParentOpt,
    catalog: Optional[str] = CatalogOpt,
) -> None:
    """What would be built here, parents first: each image's digest and state."""
    from nbpipe.engines.registry import Registry
    from nbpipe.run.state import plan as make_plan

    reg = Registry.parse(registry) if registry is not None else None
    inputs = _inputs(catalog, file, from_repo, parent)
    m = _machine(inputs.catalog, engine, root, platform, need_engine=False)
    p = make_plan(
        m,
        inputs.targets(names) or None,
        since=since,
        registry=reg,
        wheelhouse=wheelhouse is not None,
    )
    if as_json:
        output.emit_json(p.to_json())
        return
    for line in p.lines():
        print(line)
    print(p.summary())


@app.command(
    epilog=_examples(
        "nbpipe export jupyter-scipy",
        "nbpipe export -f team.yaml",
        "nbpipe export jupyter --out ctx && buildah build ctx",
    )
)
def export(
    name: Optional[str] = typer.Argument(
        None, metavar="IMAGE", help="the image (default: the -f spec's or --from-repo's own)"
    ),
    platform: Optional[str] = PlatformOpt,
    engine: str = EngineOpt,
    root: str = RootOpt,
    out: Optional[Path] = typer.Option(
        None, "--out", metavar="DIR", help="write Dockerfile + files/ here"
    ),
    file: Optional[list[Path]] = FileOpt,
    from_repo: Optional[Path] = RepoOpt,
    parent: str = ParentOpt,
    catalog: Optional[str] = CatalogOpt,
) -> None:
    """The Dockerfile that builds IMAGE from its parent (same steps, same order), on the
    root and platform `plan` and `build` use here (said on stderr)."""
    if out is not None and out.exists() and not out.is_dir():
        raise NbpipeError(f"--out {out}: exists and is not a folder; give a folder")
    inputs = _inputs(catalog, file, from_repo, parent)
    targets = [name] if name else inputs.targets(None)
    if len(targets) != 1:
        raise NbpipeError("name the image to export (or give one -f SPEC or --from-repo DIR)")
    m = _machine(inputs.catalog, engine, root, platform, need_engine=False)
    img = m.catalog.resolve(targets[0])
    from nbpipe.engines import dockerfile

    rendered = dockerfile.render(img, m.platform)
    err.print(f"{targets[0]}: {short(img.digest(m.platform), 16)} ({_where(m)})")
    if out is None:
        sys.stdout.write(rendered.text)
    else:
        path = rendered.write(out)
        err.print(printable(f"wrote {path} and {len(rendered.files)} file(s) under {out}"))


# -- building and testing ----------------------------------------------------------------


def _run_pipeline(
    names: list[str],
    *,
    inputs: Inputs,
    engine,
    root,
    platform,
    ca_bundle,
    wheelhouse,
    jobs,
    report_dir,
    probe: bool,
    force_probe: bool,
    no_cache: bool = False,
    pod: str | None = None,
    allow_unbuildable: bool,
    as_json: bool,
    locked: bool = False,
    deb_store: str = "auto",
    audit: bool = False,
    registry: str | None = None,
) -> None:
    from dataclasses import replace

    from nbpipe.engines.registry import Registry
    from nbpipe.recipe.options import BuildOptions
    from nbpipe.run import report
    from nbpipe.run.pipeline import build as run_build

    m = _machine(inputs.catalog, engine, root, platform)
    options = replace(
        BuildOptions.from_flags(ca_bundle, wheelhouse, deb_store=deb_store),
        origins=inputs.origins,
    )
    with _progress() as on_event, _state_lock(on_event):
        results = run_build(
            m,
            names or None,
            options,
            _settings(),
            jobs=jobs,
            probe=probe,
            force_probe=force_probe,
            no_cache=no_cache,
            pod=pod,
            locked=locked,
            audit=audit,
            on_event=on_event,
            registry=Registry.parse(registry) if registry else None,
        )
        js, md = report.write(results, report_dir)  # under the lock: this run's reports
    if as_json:
        output.emit_json([r.to_dict() for r in results])
    else:
        console.print(report.table(results))
    for r in results:
        for line in r.refreshed:  # the archive moved: what the lock file now says instead
            err.print(f"lock refreshed: {line}")
    for r in results:
        if not r.ok and r.message:
            err.print(Text.assemble((r.name, "bold"), f": {r.message}"))
            if r.log:
                err.print(r.log, highlight=False, markup=False)
    err.print(f"reports: {js} {md}")
    verdict = report.verdict(results)
    if verdict.skipped:
        err.print(
            ("allowed (--allow-unbuildable): " if allow_unbuildable else "")
            + verdict.skipped_line()
        )
    if verdict.failed or (verdict.skipped and not allow_unbuildable):
        if verdict.skipped and not verdict.failed:
            _fail(
                "images asked for were not built or probed (see above); "
                "--allow-unbuildable accepts that"
            )
        raise typer.Exit(1)


class _progress:
    """Live lines on a terminal; plain timestamped lines in CI logs."""

    def __enter__(self):
        self.start = time.monotonic()
        if console.is_terminal and err.is_terminal:
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self.bar = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
                console=err,
                transient=True,
            )
            self.bar.start()
            self.tasks: dict[str, int] = {}
        else:
            self.bar = None
        return self.event

    def event(self, name: str, what: str) -> None:
        if self.bar is not None:
            if name not in self.tasks:
                self.tasks[name] = self.bar.add_task(escape(f"{name}: {what}"))
            self.bar.update(self.tasks[name], description=escape(f"{name}: {what}"))
        err.print(
            f"[{time.monotonic() - self.start:6.1f}s] {name}: {what}", highlight=False, markup=False
        )

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()


@app.command(
    epilog=_examples(
        "nbpipe build jupyter-scipy",
        "nbpipe build -f team.yaml",
        "nbpipe build --allow-unbuildable   # everything buildable here",
    )
)
def build(
    names: list[str] = typer.Argument(
        None, metavar="IMAGE", help="images (default: all); ancestors come too"
    ),
    engine: str = EngineOpt,
    root: str = RootOpt,
    platform: Optional[str] = PlatformOpt,
    ca_bundle: str = CaOpt,
    wheelhouse: Optional[Path] = WheelOpt,
    jobs: int = JobsOpt,
    report_dir: Path = ReportOpt,
    no_probe: bool = typer.Option(False, "--no-probe", help="skip the contract probes"),
    no_cache: bool = typer.Option(False, "--no-cache", help="rebuild even if built"),
    allow_unbuildable: bool = AllowOpt,
    as_json: bool = JsonOpt,
    file: Optional[list[Path]] = FileOpt,
    from_repo: Optional[Path] = RepoOpt,
    parent: str = ParentOpt,
    catalog: Optional[str] = CatalogOpt,
    locked: bool = LockedOpt,
    deb_store: str = DebStoreOpt,
    registry: Optional[str] = PullDebsOpt,
    audit: bool = typer.Option(
        False,
        "--audit",
        help="also check each image's Python packages against PyPI's advisories (in the report)",
    ),
    cache_registry: Optional[str] = CacheOpt,
) -> None:
    """Build images (parents first, already-built digests skipped) and probe each one.
    Exit 1 if an image asked for was not built and probed (unbuildable here, blocked,
    failed), unless --allow-unbuildable (failures still count)."""
    _cache_registry(cache_registry)
    inputs = _inputs(catalog, file, from_repo, parent)
    _run_pipeline(
        inputs.targets(names),
        inputs=inputs,
        engine=engine,
        root=root,
        platform=platform,
        ca_bundle=ca_bundle,
        wheelhouse=wheelhouse,
        jobs=jobs,
        report_dir=report_dir,
        probe=not no_probe,
        force_probe=False,
        no_cache=no_cache,
        allow_unbuildable=allow_unbuildable,
        as_json=as_json,
        locked=locked,
        deb_store=deb_store,
        audit=audit,
        registry=registry,
    )


@app.command(
    epilog=_examples(
        "nbpipe test jupyter",
        "nbpipe test jupyter-scipy --as kubeflow",
        "nbpipe test -f team.yaml --json > report.json",
    )
)
def test(
    names: list[str] = typer.Argument(
        None, metavar="IMAGE", help="images to probe (built first if needed)"
    ),
    engine: str = EngineOpt,
    root: str = RootOpt,
    platform: Optional[str] = PlatformOpt,
    ca_bundle: str = CaOpt,
    wheelhouse: Optional[Path] = WheelOpt,
    jobs: int = JobsOpt,
    report_dir: Path = ReportOpt,
    allow_unbuildable: bool = AllowOpt,
    as_json: bool = JsonOpt,
    file: Optional[list[Path]] = FileOpt,
    from_repo: Optional[Path] = RepoOpt,
    parent: str = ParentOpt,
    catalog: Optional[str] = CatalogOpt,
    locked: bool = LockedOpt,
    deb_store: str = DebStoreOpt,
    registry: Optional[str] = PullDebsOpt,
    as_: str = typer.Option(
        "container",
        "--as",
        metavar="MODE",
        callback=_choice("container", *FLAVORS),
        help="container: run as Kubernetes would (empty home, random "
        "NB_PREFIX); kubeflow: as the pod Kubeflow's notebook "
        "controller makes (podman kube play); openshift: that pod "
        "under the restricted-v2 SCC",
    ),
    cache_registry: Optional[str] = CacheOpt,
) -> None:
    """Run the notebook-server contract probes against the images named (fresh, never
    from a record); ancestors are built if needed, and probed only when built now."""
    _cache_registry(cache_registry)
    inputs = _inputs(catalog, file, from_repo, parent)
    targets = inputs.targets(names)
    if not targets:
        raise NbpipeError("name the images to test (or give -f SPEC / --from-repo DIR)")
    _run_pipeline(
        targets,
        inputs=inputs,
        engine=engine,
        root=root,
        platform=platform,
        ca_bundle=ca_bundle,
        wheelhouse=wheelhouse,
        jobs=jobs,
        report_dir=report_dir,
        probe=True,
        force_probe=True,
        pod=None if as_ == "container" else as_,
        allow_unbuildable=allow_unbuildable,
        as_json=as_json,
        locked=locked,
        deb_store=deb_store,
        registry=registry,
    )


base_app = _group("The root filesystem the family builds on.")
app.add_typer(base_app, name="base")


@base_app.command(
    "bootstrap",
    epilog=_examples("nbpipe base bootstrap", "nbpipe base bootstrap --platform linux/arm64"),
)
def base_bootstrap(
    platform: Optional[str] = PlatformOpt,
    engine: str = EngineOpt,
    force: bool = typer.Option(False, help="make it again even if present"),
) -> None:
    """debootstrap Debian bookworm (minbase) and import it: builds need no registry."""
    from nbpipe.engines import rootfs
    from nbpipe.engines.oci import OciEngine

    eng, _ = OciEngine.connect(engine, runtime=_settings().runtime)
    root = rootfs.bootstrap(
        eng,
        plat.check(platform or plat.host()),
        force=force,
        log=lambda m: err.print(m, highlight=False),
        workdir=_settings().workdir,
    )
    for p in root.platforms:
        print(f"{root.pinned(p)} {root.digest(p)}")


RegistryOpt = typer.Option(
    ...,
    "--registry",
    callback=_registry,
    metavar="HOST[:PORT][/NAMESPACE]",
    help="where the images are: "
    "host[:port][/namespace]; credentials from $NBPIPE_REGISTRY_USER / "
    "$NBPIPE_REGISTRY_PASSWORD or a docker config",
)
COMPRESSIONS = ("gzip", "zstd")


@app.command(
    epilog=_examples(
        "nbpipe publish jupyter-scipy --registry ghcr.io/acme --latest",
        "nbpipe publish -f team.yaml --registry ghcr.io/acme --json",
    )
)
def publish(
    names: list[str] = typer.Argument(None, metavar="IMAGE", help="images to publish"),
    registry: str = RegistryOpt,
    platform: Optional[list[str]] = typer.Option(
        None,
        "--platform",
        metavar="PLATFORM",
        callback=_choice(*plat.ALL),
        help="repeatable; default: every platform of the image",
    ),
    tag: Optional[list[str]] = typer.Option(
        None, "--tag", metavar="TAG", help="extra tags (repeatable)"
    ),
    latest: bool = typer.Option(False, "--latest", help="also move the latest tag"),
    engine: str = EngineOpt,
    root: str = RootOpt,
    ca_bundle: str = CaOpt,
    wheelhouse: Optional[Path] = WheelOpt,
    as_json: bool = JsonOpt,
    file: Optional[list[Path]] = FileOpt,
    from_repo: Optional[Path] = RepoOpt,
    parent: str = ParentOpt,
    catalog: Optional[str] = CatalogOpt,
    compression: str = typer.Option(
        "gzip",
        "--compression",
        metavar="gzip|zstd",
        callback=_choice(*COMPRESSIONS),
        help="layer compression: gzip (any runtime) | "
        "zstd (smaller, faster to unpack; containerd >= "
        "1.5, CRI-O, podman)",
    ),
    locked: bool = LockedOpt,
    deb_store: str = DebStoreOpt,
    sign_key: Optional[str] = cli_supply.SignKeyOpt,
    cache_registry: Optional[str] = CacheOpt,
) -> None:
    """Build every platform, push, then one manifest list per tag (all or nothing)."""
    _cache_registry(cache_registry)
    from dataclasses import replace

    from nbpipe.engines.registry import Registry
    from nbpipe.recipe.options import BuildOptions
    from nbpipe.run.publish import publish as do_publish

    reg = Registry.parse(registry)
    inputs = _inputs(catalog, file, from_repo, parent)
    targets = inputs.targets(names)
    if not targets:
        raise NbpipeError("name the images to publish")
    key = cli_supply.load_sign_key(sign_key)  # a wrong passphrase stops before any build
    m = _machine(inputs.catalog, engine, root)
    m.check_platforms(tuple(platform or ()))
    options = replace(
        BuildOptions.from_flags(ca_bundle, wheelhouse, deb_store=deb_store),
        origins=inputs.origins,
    )
    with _progress() as on_event, _state_lock(on_event):
        results = do_publish(
            m,
            targets,
            reg,
            platforms=tuple(platform) if platform else None,
            options=options,
            settings=_settings(),
            extra_tags=tuple(tag or ()),
            latest=latest,
            compression=compression,
            locked=locked,
            sign_key=key,
            on_event=on_event,
        )
    if as_json:
        output.emit_json(
            [
                {
                    "name": r.name,
                    "platforms": list(r.platforms),
                    "digest": r.digest,
                    "ref": r.ref,
                    "tags": list(r.tags),
                    "compression": r.compression,
                    "message": r.message,
                }
                for r in results
            ]
        )
        return
    from rich.table import Table

    table = Table("image", "platforms", "digest", "tags", "layers", "result")
    for r in results:
        table.add_row(
            r.name,
            ",".join(p.split("/")[1] for p in r.platforms),
            short(r.digest),
            escape(" ".join(r.tags)),
            r.compression,
            escape(r.message),
        )
    console.print(table)
    for r in results:
        print(r.ref)


@app.command("verify-reproducible", epilog=_examples("nbpipe verify-reproducible jupyter"))
def verify_reproducible(
    name: str = typer.Argument(..., metavar="IMAGE", help="the image to build twice"),
    engine: str = EngineOpt,
    root: str = RootOpt,
    platform: Optional[str] = PlatformOpt,
    ca_bundle: str = CaOpt,
    catalog: Optional[str] = CatalogOpt,
) -> None:
    """Build IMAGE twice from scratch and compare the digests (and the files, if they differ)."""
    from nbpipe.recipe.options import BuildOptions
    from nbpipe.run.reproducible import verify

    m = _machine(_catalog(catalog), engine, root, platform)
    platform = m.platform
    with _progress() as on_event, _state_lock(on_event):
        v = verify(m, name, BuildOptions.from_flags(ca_bundle), _settings())
    print(
        f"{name} ({platform}): build 1 {v.ids[0][:19]} in {v.seconds[0]}s, "
        f"build 2 {v.ids[1][:19]} in {v.seconds[1]}s"
    )
    if v.same:
        print("reproducible: both builds gave the same image digest")
        return
    print(f"NOT reproducible: {len(v.differing)} path(s) differ:")
    for path in v.differing[:50]:
        print(f"  {path}")
    raise typer.Exit(1)


@app.command(
    "lock",
    epilog=_examples(
        "nbpipe lock jupyter-scipy",
        "nbpipe lock --check",
        "nbpipe lock --check jupyter jupyter-scipy --json",
        "nbpipe lock -f team.yaml   # writes team.lock.json",
    ),
)
def lock_cmd(
    names: list[str] = typer.Argument(
        None,
        metavar="IMAGE",
        help="images to lock (default: all buildable ones, or the -f spec's own)",
    ),
    check: bool = typer.Option(
        False,
        "--check",
        help="only list the apt and pip "
        "steps of these images (and their ancestors) the lock "
        "does not cover (exit 1 if any)",
    ),
    lock_file: Optional[Path] = typer.Option(
        None,
        "--lock-file",
        metavar="FILE",
        help="default: images/lock.json, or NAME.lock.json next to the -f spec",
    ),
    engine: str = EngineOpt,
    root: str = RootOpt,
    platform: Optional[str] = PlatformOpt,
    ca_bundle: str = CaOpt,
    as_json: bool = JsonOpt,
    file: Optional[list[Path]] = FileOpt,
    catalog: Optional[str] = CatalogOpt,
    deb_store: str = DebStoreOpt,
    add_hashes: bool = typer.Option(
        False,
        "--add-hashes",
        help="give the apt lines "
        "of an older lock their .debs' sha256 (the "
        "package store's key), re-resolving nothing",
    ),
    only_missing: bool = typer.Option(
        False,
        "--missing",
        help="lock only the images with steps not locked yet for this platform, built "
        "on their parents as locked (nothing locked moves)",
    ),
) -> None:
    """Resolve every apt and pip step as it builds today and pin it (pip: with hashes)."""
    from nbpipe.locks import lock as locks
    from nbpipe.recipe.options import BuildOptions
    from nbpipe.run import locking

    if lock_file is not None and check and not lock_file.exists():
        raise NbpipeError(f"--lock-file {lock_file}: no such file")
    if file and len(file) > 1 and lock_file is None:
        raise NbpipeError(
            "one -f SPEC at a time (each spec has its own lock file), or give --lock-file"
        )
    inputs = _inputs(catalog, file)
    cat = inputs.catalog
    own = list(inputs.own) if file else None  # a team locks its own images only
    for n in names or []:
        cat.entry(n)  # an unknown name is an error, never silently ignored
    if own and names and not set(names) <= set(own):
        raise NbpipeError(
            f"with -f, lock the spec's own image ({', '.join(own)}); the "
            "family's images are locked in nbpipe's images/lock.json"
        )
    if lock_file is None:
        if file:
            lock_file = locks.spec_lock(file[0])
        else:
            from nbpipe import family as images

            lock_file = images.LOCK_FILE
    wanted = names or own or None
    if check:
        entries = locks.load(lock_file)
        missing, cannot = _lockable_here(
            cat, locks.uncovered(cat, entries, wanted, ancestors=own is None)
        )
        gone = _vanished(
            cat,
            entries,
            wanted,
            engine,
            root,
            platform,
            BuildOptions.from_flags("none", deb_store=deb_store, oci_labels=False).deb_store,
        )
        if as_json:
            output.emit_json(
                {
                    "lock_file": str(lock_file),
                    "missing": [u.to_dict() for u in missing],
                    "unbuildable_here": [{**u.to_dict(), "why": why} for u, why in cannot],
                    "gone": gone,
                }
            )
        else:
            for u in missing:
                print(f"not locked: {u}")
            print(
                f"{len(missing)} step(s) not locked in {lock_file}"
                if missing
                else f"every apt and pip step is locked in {lock_file}"
            )
            for u, why in cannot:
                print(f"cannot lock here: {u}: {why}")
            if cannot:
                print(
                    f"{len(cannot)} step(s) of images that cannot build here "
                    "(not counted: lock them where their sources are reachable)"
                )
            for g in gone:
                print(f"gone from the archive: {g}")
            if gone:
                print(
                    f"{len(gone)} step(s) pin versions Debian's archive no longer has: "
                    "`nbpipe lock IMAGE` (or a build without --locked) pins today's"
                )
        if missing or gone:
            raise typer.Exit(1)
        return
    m = _machine(cat, engine, root, platform)
    if add_hashes:
        plats = [p for p in plat.ALL if m.local_root is None or p in m.local_root.platforms]
        with _progress() as on_event:
            added = locks.add_hashes(m.need_engine(), m.catalog, lock_file, plats, on_event)
        print(f"wrote {lock_file}: {added} apt line(s) gained their sha256")
        return
    if only_missing and own is None:  # the images whose steps lack an entry for this platform
        entries = locks.load(lock_file) if lock_file.exists() else {}
        gaps, _ = _lockable_here(cat, locks.uncovered(cat, entries, wanted))
        own = sorted({u.image for u in gaps if u.platform == m.platform})
        if not own:
            print(f"nothing to lock for {m.platform}: every step that builds here is locked")
            return
    with _progress() as on_event:
        with _state_lock(on_event):
            current = locking.refresh(
                m,
                wanted,
                lock_file,
                BuildOptions.from_flags(ca_bundle, oci_labels=False, deb_store=deb_store),
                on_event,
                only=own,
            )
    print(f"wrote {lock_file}: {sum(len(v) for v in current.values())} locked step(s)")


def _lockable_here(cat: Catalog, missing: list) -> tuple[list, list]:
    """Split unlocked steps into those of images that build here (they count) and those
    of images that cannot (a source out of reach or unpinned, here or in an ancestor),
    each with the reason: a lock is written by building, so those wait for a machine that
    reaches their sources."""
    from nbpipe.locks import lock as locks
    from nbpipe.run.state import unreachable

    plain = locks.unlocked(cat)
    assume = _settings().assume_reachable
    why: dict[tuple[str, str], str] = {}

    def reason(name: str, platform: str) -> str:
        if (name, platform) not in why:
            own = unreachable(plain.resolve(name), platform, assume=assume)
            parent = plain.parent_name(name)
            up = reason(parent, platform) if parent else ""
            why[name, platform] = f"{name} {own}" if own else up
        return why[name, platform]

    counted, cannot = [], []
    for u in missing:
        r = reason(u.image, u.platform)
        if r:
            cannot.append((u, r))
        else:
            counted.append(u)
    return counted, cannot


def _vanished(
    cat: Catalog,
    entries,
    names: list[str] | None,
    engine: str,
    root: str,
    platform: str | None,
    store: Path | None,
) -> list[str]:
    """Pinned apt versions the archive no longer has, asked in this machine's root for
    each platform it has a root for; a line (stderr) instead when no engine can ask."""
    from nbpipe.locks import lock as locks

    m = _machine(cat, engine, root, platform, need_engine=False)
    if m.engine is None or m.dagger:
        err.print("archive not asked: pinned versions are checked with podman or docker")
        return []
    return locks.vanished(m.engine, m.catalog, entries, m.platform, names, store=store)


cli_supply.register(
    app,
    console,
    err,
    _machine,
    _catalog,
    {"engine": EngineOpt, "root": RootOpt, "platform": PlatformOpt, "catalog": CatalogOpt},
)


kubeflow_app = _group("Kubeflow integration.")
app.add_typer(kubeflow_app, name="kubeflow")


@kubeflow_app.command(
    "spawner-options",
    epilog=_examples(
        "nbpipe kubeflow spawner-options --registry ghcr.io/acme",
        "nbpipe kubeflow spawner-options --registry ghcr.io/acme --default jupyter-scipy \\",
        "    --merge-into spawner_ui_config.yaml > merged.yaml",
    ),
)
def spawner_options(
    registry: str = RegistryOpt,
    engine: str = EngineOpt,
    root: str = RootOpt,
    default: Optional[list[str]] = typer.Option(
        None,
        "--default",
        metavar="IMAGE",
        help="the image preselected in "
        "its dropdown (repeatable, one per server kind; default: the first)",
    ),
    merge_into: Optional[Path] = typer.Option(
        None,
        "--merge-into",
        metavar="YAML",
        help="a spawner_ui_config.yaml: "
        "print it whole with its image, imageGroupOne and imageGroupTwo "
        "replaced (everything else, comments too, kept)",
    ),
    catalog: Optional[str] = CatalogOpt,
) -> None:
    """The image dropdowns of Kubeflow's spawner_ui_config.yaml, refs as name:tag@sha256:
    blocks to paste under spawnerFormDefaults (never a second spawnerFormDefaults: YAML
    keeps the last one, losing your cpu and memory defaults), or --merge-into your file."""
    from nbpipe.engines.registry import Registry
    from nbpipe.run import spawner

    m = _machine(_catalog(catalog), engine, root, need_engine=False)
    groups = spawner.published(m.catalog, Registry.parse(registry), tuple(default or ()))
    if merge_into is None:
        sys.stdout.write(spawner.blocks(groups))
    else:
        sys.stdout.write(spawner.merge(merge_into, groups))


spec_app = _group("YAML specs: a team's image on one of ours.")
app.add_typer(spec_app, name="spec")


@spec_app.command(
    "validate",
    epilog=_examples("nbpipe spec validate team.yaml", "nbpipe spec validate images/*.yaml --json"),
)
def spec_validate(
    files: list[Path] = typer.Argument(..., metavar="SPEC...", help="spec files"),
    engine: str = EngineOpt,
    root: str = RootOpt,
    platform: Optional[str] = PlatformOpt,
    as_json: bool = JsonOpt,
    catalog: Optional[str] = CatalogOpt,
) -> None:
    """Check specs without building: every error names the file, line and field; every
    file is checked (exit 1 if any is bad). Digests are the ones `plan` and `build` give
    here (same root and platform, said on stderr)."""
    from nbpipe.inputs import spec as specs
    from nbpipe.locks import lock as locks

    cat = _catalog(catalog)
    loaded: list[tuple[Path, specs.Spec | None, str]] = []
    for f in files:
        try:
            one = specs.load(f)
            one.register(cat)
            locks.apply_to(cat, one.name, locks.spec_lock(f))
            loaded.append((f, one, ""))
        except NbpipeError as exc:
            loaded.append((f, None, str(exc)))
    m = _machine(cat, engine, root, platform, need_engine=False)
    from nbpipe.recipe.naming import content_tag

    rows = []
    for f, sp, problem in loaded:
        row: dict = {"file": str(f), "ok": False, "error": problem or None, "warnings": []}
        if sp is not None:
            try:
                img = m.catalog.resolve(sp.name)
                covered = not locks.uncovered(
                    m.catalog, locks.load(locks.spec_lock(f)), [sp.name], ancestors=False
                )
                row |= {
                    "ok": True,
                    "error": None,
                    "name": sp.name,
                    "parent": m.catalog.parent_name(sp.name) or str(sp.parent),
                    "steps": len(img.steps),
                    "digest": img.digest(m.platform),
                    "content_tag": content_tag(img),
                    "warnings": [] if covered else list(sp.warnings),
                }
            except NbpipeError as exc:
                row["error"] = str(exc)
        rows.append(row)
    if as_json:
        output.emit_json({"platform": m.platform, "root": m.root_name, "specs": rows})
    else:
        for row in rows:
            for w in row["warnings"]:
                _fail(w, "warning")
            if row["ok"]:
                print(
                    printable(
                        f"{row['file']}: ok: {row['name']} on {row['parent']}, "
                        f"{row['steps']} step(s), digest {short(row['digest'], 16)}"
                    )
                )
            else:
                _fail(row["error"])
        if any(row["ok"] for row in rows):
            err.print(f"digests for {_where(m)}")
    if not all(row["ok"] for row in rows):
        raise typer.Exit(1)


@app.command(
    epilog=_examples(
        "nbpipe new team-x --parent jupyter-scipy",
        "nbpipe new team-x --repo team-x",
        "nbpipe new team-x --repo team-x --ci dagger",
    )
)
def new(
    name: str = typer.Argument(..., metavar="NAME", help="the new image's name"),
    parent: str = typer.Option(
        "jupyter", "--parent", metavar="IMAGE", help="the family image to build on"
    ),
    python: bool = typer.Option(
        False, "--python", help="the image as Python (NAME.py); without --repo, next to the spec"
    ),
    out: Path = typer.Option(Path("."), "--out", metavar="DIR", help="folder to write into"),
    repo: Optional[Path] = typer.Option(
        None,
        "--repo",
        metavar="DIR",
        help="write a whole team repository here: image, README, test, CI workflow, Dagger module",
    ),
    ci: Optional[str] = typer.Option(
        None,
        "--ci",
        metavar="cli|dagger",
        callback=_choice("cli", "dagger"),
        help="with --repo: the workflow runs the nbpipe CLI "
        "(cli, the default) or this repository's Dagger "
        "module (dagger)",
    ),
    catalog: Optional[str] = CatalogOpt,
) -> None:
    """Write a spec (and optionally a Python module), or a team repository, to edit."""
    from nbpipe.cli import scaffold

    if ci is not None and repo is None:
        raise typer.BadParameter(
            "--ci chooses the CI workflow of a team repository: give --repo DIR too",
            param_hint="'--ci'",
        )
    cat = _catalog(catalog)
    cat.entry(parent)
    if name in cat.entries:
        raise NbpipeError(
            f"{name!r} is already an image of the family; a team image needs "
            f"its own name (e.g. team-{name})"
        )
    venv = cat.resolve(parent).config().env_dict().get("VIRTUAL_ENV") == contract.VENV
    if repo is not None:
        written = scaffold.write_repo(name, parent, repo, python=python, ci=ci or "cli", venv=venv)
    else:
        written = scaffold.write(name, parent, out, python=python, venv=venv)
    for path in written:
        print(printable(f"wrote {path}"))


def _fail(message: str, kind: str = "error") -> None:
    """One line on stderr, printed as plain text (a '[...]' in it is not rich markup),
    with any control character shown escaped so the message stays one line."""
    line = printable(message)
    err.print(
        Text.assemble((f"nbpipe: {kind}: ", "red" if kind == "error" else "yellow"), line),
        soft_wrap=True,
    )


def _command():
    """The click command typer makes of ``app``, with argument help free of typer's type
    placeholders (`IMAGE... <list[str]>`): the metavar says it."""
    command = typer.main.get_command(app)

    def plain(cmd) -> None:
        for param in getattr(cmd, "params", ()):
            if param.param_type_name == "argument":
                param.display_type_rich = lambda ctx: None
        for sub in getattr(cmd, "commands", {}).values():
            plain(sub)

    plain(command)
    return command


def main() -> None:
    """The one error path: an NbpipeError or a usage error is one clear message and a
    non-zero exit; anything else too (never a traceback, unless NBPIPE_DEBUG=1).
    Exit codes: 0 ok, 1 failed, 2 usage, 70 a bug (internal error), 130 interrupted."""

    from nbpipe.inputs.safe_io import exit_on_signals

    exit_on_signals()  # SIGTERM/SIGHUP: `finally` blocks run, the registry auth file goes
    try:
        rc = _command()(standalone_mode=False)  # returns typer.Exit's code, never exits
        sys.exit(rc if isinstance(rc, int) else 0)
    except NbpipeError as exc:
        _fail(str(exc))
        sys.exit(1)
    except (typer.Abort, KeyboardInterrupt):
        err.print("nbpipe: interrupted", markup=False)
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except RecursionError:
        _fail("input nested too deeply to read")
        sys.exit(1)
    except Exception as exc:
        show, code = getattr(exc, "show", None), getattr(exc, "exit_code", None)
        if callable(show) and isinstance(code, int):
            show()  # a usage error: click's, vendored by typer or not (never `import click`)
            sys.exit(code)
        if Settings.from_env().debug:  # a bug: still one line, and how to see the details
            raise
        _fail(
            f"internal error: {type(exc).__name__}: {exc} (a bug in nbpipe; run again "
            "with NBPIPE_DEBUG=1 for the traceback)"
        )
        sys.exit(70)


if __name__ == "__main__":
    main()
