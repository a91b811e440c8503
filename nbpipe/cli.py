"""`nbpipe`: the command line. Thin: every command calls the SDK and prints the result."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.text import Text

from . import cli_supply, contract
from . import graph as graphs
from . import platforms as plat
from .catalog import Catalog
from .errors import NbpipeError, printable
from .image import short
from .loader import load

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Build, test and publish the notebook-server image family.")
console = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, markup=False, highlight=False)  # messages carry user text
STATE_DIR = Path(".nbpipe")  # probe records, logs, SBOMs; its lock keeps runs apart

CatalogOpt = typer.Option(None, "--catalog", help="module:function giving the Catalog "
                          "(default: nbpipe.family:family, or $NBPIPE_CATALOG)")
EngineOpt = typer.Option("auto", "--engine", help="auto (Dagger if a session or CLI is "
                         "there, else podman, else docker) | dagger | podman | docker")
RootOpt = typer.Option("auto", "--root", help="auto (the local debootstrap root if "
                       "present, else the registry pin) | local | registry")
PlatformOpt = typer.Option(None, "--platform", help="linux/amd64 | linux/arm64 (default: this machine's)")
CaOpt = typer.Option("auto", "--ca-bundle", help="PEM bundle trusted during the build only "
                     "(TLS-intercepting proxies), never stored in the image; auto: this "
                     "machine's own bundle if it has one; none: the image's own trust")


def _version(value: bool) -> None:
    if value:
        from . import __version__

        print(f"nbpipe {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", is_eager=True, callback=_version,
                                       help="print nbpipe's version and exit")) -> None:
    """Build, test and publish the notebook-server image family."""


def _machine(catalog: Catalog, engine: str, root: str, platform: str | None = None, *,
             need_engine: bool = True):
    """This machine's engine, platform and root; said on stderr where something is built."""
    from .machine import detect

    m = detect(catalog, engine=engine, root=root, platform=platform, need_engine=need_engine)
    if need_engine:
        err.print(m.describe(), highlight=False)
    return m


WheelOpt = typer.Option(None, "--wheelhouse", help="folder of wheels pip may use (find-links)")
JobsOpt = typer.Option(2, "--jobs", "-j", help="images built at the same time")
DebStoreOpt = typer.Option("auto", "--deb-store", help="package store: a folder of pinned "
                           ".debs named by sha256 that apt steps install from first and "
                           "builds add to (auto: ~/.cache/nbpipe/debs; none: off)")
LockedOpt = typer.Option(False, "--locked", help="never change the lock file: a pinned "
                         "version that has left Debian's archive is an error (releases); "
                         "without it, that step is resolved again, saved and built")
ReportOpt = typer.Option(Path("reports"), "--report-dir", help="where the JSON and Markdown reports go")


FileOpt = typer.Option(None, "--file", "-f", help="a team's YAML spec (repeatable): its "
                       "image joins the family and is the default target")
RepoOpt = typer.Option(None, "--from-repo", help="a Binder-ready repo (requirements.txt, "
                       "apt.txt, environment.yml, postBuild, start), built on --parent")
ParentOpt = typer.Option("jupyter", "--parent", help="parent image for --from-repo")


def _catalog(spec: str | None, files: list[Path] | None = None, repo: Path | None = None,
             parent: str = "jupyter") -> Catalog:
    """The catalog plus any team images given as YAML specs or a Binder repo."""
    cat = load(spec)
    if files:
        from . import spec as specs

        for f in files:
            specs.load(f).register(cat)
    if repo is not None:
        from . import repo2docker

        repo2docker.from_repo(repo, parent).register(cat)
    return cat


def _targets(names: list[str] | None, files: list[Path] | None, repo: Path | None) -> list[str]:
    """Names asked for; with -f/--from-repo and no names, the team's own images."""
    if names or not (files or repo):
        return names or []
    from . import repo2docker
    from . import spec as specs

    out = [specs.load(f).name for f in files or []]
    if repo is not None:
        out.append(repo2docker.from_repo(repo).name)
    return out


@app.command()
def images(engine: str = EngineOpt, root: str = RootOpt, platform: Optional[str] = PlatformOpt,
           catalog: Optional[str] = CatalogOpt) -> None:
    """List every image: parent, platforms, runner tags, and its digest and state here."""
    from .state import assess

    m = _machine(_catalog(catalog), engine, root, platform, need_engine=False)
    states = {s.name: s for s in assess(m.catalog, m.platform, m.store)}
    from rich.table import Table

    table = Table("name", "parent", "platforms", "runner tags", "digest", "state")
    for name in m.catalog.order():
        img = m.catalog.resolve(name)
        parent = m.catalog.parent_name(name) or img.root.ref
        tags = img.config().label_dict().get(contract.LABEL_RUNNER_TAGS, "")
        arches = ",".join(p.split("/")[1] for p in img.platforms)
        st = states.get(name)
        table.add_row(name, escape(parent), arches, escape(tags or "-"),
                      short(st.digest, 16) if st else "-",
                      st.state.value if st else f"not for {m.platform}")
    console.print(table)


@app.command()
def graph(fmt: str = typer.Option("text", "--format", help="text | mermaid | dot"),
          catalog: Optional[str] = CatalogOpt) -> None:
    """Print the image family as a tree, Mermaid chart or Graphviz dot."""
    print(graphs.render(_catalog(catalog), fmt))


@app.command()
def plan(names: list[str] = typer.Argument(None, help="images to build (default: all)"),
         since: Optional[Path] = typer.Option(None, help="a plan JSON from before: list only "
                                              "the images whose digest changed since"),
         registry: Optional[str] = typer.Option(None, "--registry", help="leave out images "
                                                "whose content tag is already published there"),
         root: str = RootOpt, engine: str = EngineOpt, platform: Optional[str] = PlatformOpt,
         wheelhouse: Optional[Path] = WheelOpt,
         as_json: bool = typer.Option(False, "--json", help="print the plan as JSON"),
         file: Optional[list[Path]] = FileOpt, from_repo: Optional[Path] = RepoOpt,
         parent: str = ParentOpt, catalog: Optional[str] = CatalogOpt) -> None:
    """What would be built here, parents first: each image's digest and state."""
    from .registry import Registry
    from .state import plan as make_plan

    reg = Registry.parse(registry) if registry is not None else None  # checked before work
    m = _machine(_catalog(catalog, file, from_repo, parent), engine, root, platform,
                 need_engine=False)
    p = make_plan(m, _targets(names, file, from_repo) or None, since=since, registry=reg,
                  wheelhouse=wheelhouse is not None)
    if as_json:
        print(json.dumps(p.to_json(), indent=2))
        return
    for line in p.lines():
        print(line)
    print(p.summary())


@app.command()
def export(name: Optional[str] = typer.Argument(None, help="the image (default: the -f spec's "
                                                 "or --from-repo's own)"),
           platform: str = typer.Option(plat.AMD64, help="linux/amd64 | linux/arm64"),
           out: Optional[Path] = typer.Option(None, help="write Dockerfile + files/ here"),
           file: Optional[list[Path]] = FileOpt, from_repo: Optional[Path] = RepoOpt,
           parent: str = ParentOpt, catalog: Optional[str] = CatalogOpt) -> None:
    """The Dockerfile that builds IMAGE from its parent (same steps, same order)."""
    if out is not None and out.exists() and not out.is_dir():
        raise NbpipeError(f"--out {out}: exists and is not a folder; give a folder")
    targets = [name] if name else _targets(None, file, from_repo)
    if len(targets) != 1:
        raise NbpipeError("name the image to export (or give one -f SPEC or --from-repo DIR)")
    img = _catalog(catalog, file, from_repo, parent).resolve(targets[0])
    from .engines import dockerfile

    rendered = dockerfile.render(img, plat.check(platform))
    if out is None:
        sys.stdout.write(rendered.text)
    else:
        path = rendered.write(out)
        err.print(printable(f"wrote {path} and {len(rendered.files)} file(s) under {out}"))


# -- building and testing ----------------------------------------------------------------


def _run_pipeline(names: list[str], *, catalog: Catalog, engine, root, platform, ca_bundle,
                  wheelhouse, jobs, report_dir, probe: bool, force_probe: bool,
                  no_cache: bool = False, pod: str | None = None, locked: bool = False,
                  deb_store: str = "auto", audit: bool = False) -> None:
    from . import report
    from .options import BuildOptions
    from .pipeline import build as run_build

    from . import safe_io

    m = _machine(catalog, engine, root, platform)
    with _progress() as on_event, safe_io.locked(STATE_DIR, on_wait=lambda w: on_event("nbpipe", w)):
        results = run_build(m, names or None,
                            BuildOptions.from_flags(ca_bundle, wheelhouse, deb_store=deb_store),
                            jobs=jobs, probe=probe, force_probe=force_probe, no_cache=no_cache,
                            pod=pod, locked=locked, audit=audit,
                            on_event=on_event)
        js, md = report.write(results, report_dir)  # under the lock: this run's reports
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
    if any(r.status in (report.Outcome.FAILED, report.Outcome.BLOCKED) for r in results):
        raise typer.Exit(1)


class _progress:
    """Live lines on a terminal; plain timestamped lines in CI logs."""

    def __enter__(self):
        self.start = time.monotonic()
        if console.is_terminal:
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self.bar = Progress(SpinnerColumn(), TextColumn("{task.description}"),
                                TimeElapsedColumn(), console=err, transient=True)
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
        err.print(f"[{time.monotonic() - self.start:6.1f}s] {name}: {what}", highlight=False,
                  markup=False)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()


@app.command()
def build(names: list[str] = typer.Argument(None, help="images (default: all); ancestors come too"),
          engine: str = EngineOpt, root: str = RootOpt, platform: Optional[str] = PlatformOpt,
          ca_bundle: str = CaOpt, wheelhouse: Optional[Path] = WheelOpt,
          jobs: int = JobsOpt, report_dir: Path = ReportOpt,
          no_probe: bool = typer.Option(False, "--no-probe", help="skip the contract probes"),
          no_cache: bool = typer.Option(False, "--no-cache", help="rebuild even if built"),
          file: Optional[list[Path]] = FileOpt, from_repo: Optional[Path] = RepoOpt,
          parent: str = ParentOpt, catalog: Optional[str] = CatalogOpt,
          locked: bool = LockedOpt, deb_store: str = DebStoreOpt,
          audit: bool = typer.Option(False, "--audit", help="also check each image's Python "
                                     "packages against PyPI's advisories (in the report)")) -> None:
    """Build images (parents first, already-built digests skipped) and probe each one."""
    cat = _catalog(catalog, file, from_repo, parent)
    _run_pipeline(_targets(names, file, from_repo), catalog=cat, engine=engine, root=root, platform=platform,
                  ca_bundle=ca_bundle, wheelhouse=wheelhouse, jobs=jobs, report_dir=report_dir,
                  probe=not no_probe, force_probe=False, no_cache=no_cache, locked=locked,
                  deb_store=deb_store, audit=audit)


@app.command()
def test(names: list[str] = typer.Argument(None, help="images to probe (built first if needed)"),
         engine: str = EngineOpt, root: str = RootOpt, platform: Optional[str] = PlatformOpt,
         ca_bundle: str = CaOpt, wheelhouse: Optional[Path] = WheelOpt,
         jobs: int = JobsOpt, report_dir: Path = ReportOpt,
         file: Optional[list[Path]] = FileOpt, from_repo: Optional[Path] = RepoOpt,
         parent: str = ParentOpt, catalog: Optional[str] = CatalogOpt,
         locked: bool = LockedOpt, deb_store: str = DebStoreOpt,
         as_: str = typer.Option("container", "--as", help="container: run as Kubernetes "
                                 "would (empty home, random NB_PREFIX); kubeflow: as the pod "
                                 "Kubeflow's notebook controller makes (podman kube play); "
                                 "openshift: that pod under the restricted-v2 SCC")) -> None:
    """Run the notebook-server contract probes against images (fresh, never from cache)."""
    from .kubeflow import FLAVORS

    targets = _targets(names, file, from_repo)
    if not targets:
        raise NbpipeError("name the images to test (or give -f SPEC / --from-repo DIR)")
    if as_ not in ("container", *FLAVORS):
        raise NbpipeError(f"--as {as_}: use container, {', '.join(FLAVORS)}")
    _run_pipeline(targets, catalog=_catalog(catalog, file, from_repo, parent), engine=engine, root=root, platform=platform,
                  ca_bundle=ca_bundle, wheelhouse=wheelhouse, jobs=jobs, report_dir=report_dir,
                  probe=True, force_probe=True, pod=None if as_ == "container" else as_,
                  locked=locked, deb_store=deb_store)


base_app = typer.Typer(help="The root filesystem the family builds on.", no_args_is_help=True)
app.add_typer(base_app, name="base")


@base_app.command("bootstrap")
def base_bootstrap(platform: Optional[str] = PlatformOpt, engine: str = EngineOpt,
                   force: bool = typer.Option(False, help="make it again even if present")) -> None:
    """debootstrap Debian bookworm (minbase) and import it: builds need no registry."""
    from .engines.oci import OciEngine
    from . import rootfs

    eng = OciEngine.detect(engine)
    root = rootfs.bootstrap(eng, plat.check(platform or plat.host()), force=force,
                            log=lambda m: err.print(m, highlight=False))
    for p in root.platforms:
        print(f"{root.pinned(p)} {root.digest(p)}")


RegistryOpt = typer.Option(..., "--registry", help="host[:port][/namespace]; credentials "
                           "from $NBPIPE_REGISTRY_USER/$NBPIPE_REGISTRY_PASSWORD or a docker config")


@app.command()
def publish(names: list[str] = typer.Argument(None, help="images to publish"),
            registry: str = RegistryOpt,
            platform: Optional[list[str]] = typer.Option(None, "--platform", help="repeatable; "
                                                         "default: every platform of the image"),
            tag: Optional[list[str]] = typer.Option(None, "--tag", help="extra tags (repeatable)"),
            latest: bool = typer.Option(False, "--latest", help="also move the latest tag"),
            engine: str = EngineOpt, root: str = RootOpt, ca_bundle: str = CaOpt,
            wheelhouse: Optional[Path] = WheelOpt, file: Optional[list[Path]] = FileOpt,
            from_repo: Optional[Path] = RepoOpt, parent: str = ParentOpt,
            catalog: Optional[str] = CatalogOpt,
            compression: str = typer.Option("gzip", "--compression", help="layer compression: "
                                            "gzip (any runtime) | zstd (smaller, faster to "
                                            "unpack; containerd >= 1.5, CRI-O, podman)"),
            locked: bool = LockedOpt, deb_store: str = DebStoreOpt,
            sign_key: Optional[str] = cli_supply.SignKeyOpt) -> None:
    """Build every platform, push, then one manifest list per tag (all or nothing)."""
    from .options import BuildOptions
    from .publish import publish as do_publish
    from .registry import Registry

    reg = Registry.parse(registry)
    key = cli_supply.load_sign_key(sign_key)  # a wrong passphrase stops before any build
    targets = _targets(names, file, from_repo)
    if not targets:
        raise NbpipeError("name the images to publish")
    m = _machine(_catalog(catalog, file, from_repo, parent), engine, root)
    m.check_platforms(tuple(platform or ()))
    with _progress() as on_event:
        results = do_publish(m.catalog, targets, m.need_engine(), reg,
                             platforms=tuple(platform) if platform else None,
                             options=BuildOptions.from_flags(ca_bundle, wheelhouse,
                                                             deb_store=deb_store),
                             state_dir=STATE_DIR, extra_tags=tuple(tag or ()),
                             latest=latest, native=m.platform, compression=compression,
                             locked=locked, sign_key=key, on_event=on_event)
    from rich.table import Table

    table = Table("image", "platforms", "digest", "tags", "layers", "result")
    for r in results:
        table.add_row(r.name, ",".join(p.split("/")[1] for p in r.platforms), short(r.digest),
                      escape(" ".join(r.tags)), r.compression, escape(r.message))
    console.print(table)
    for r in results:
        print(r.ref)


@app.command("verify-reproducible")
def verify_reproducible(name: str, engine: str = EngineOpt, root: str = RootOpt,
                        platform: Optional[str] = PlatformOpt, ca_bundle: str = CaOpt,
                        catalog: Optional[str] = CatalogOpt) -> None:
    """Build IMAGE twice from scratch and compare the digests (and the files, if they differ)."""
    from .options import BuildOptions
    from .reproducible import verify

    m = _machine(_catalog(catalog), engine, root, platform)
    platform = m.platform
    v = verify(m.catalog, name, m.need_engine(), platform,
               BuildOptions.from_flags(ca_bundle), STATE_DIR)
    print(f"{name} ({platform}): build 1 {v.ids[0][:19]} in {v.seconds[0]}s, "
          f"build 2 {v.ids[1][:19]} in {v.seconds[1]}s")
    if v.same:
        print("reproducible: both builds gave the same image digest")
        return
    print(f"NOT reproducible: {len(v.differing)} path(s) differ:")
    for path in v.differing[:50]:
        print(f"  {path}")
    raise typer.Exit(1)


@app.command("lock")
def lock_cmd(names: list[str] = typer.Argument(None, help="images to lock (default: all "
                                               "buildable ones)"),
             check: bool = typer.Option(False, "--check", help="only list apt and pip steps the "
                                        "lock does not cover (exit 1 if any)"),
             lock_file: Optional[Path] = typer.Option(None, "--lock-file", help="default: "
                                                      "images/lock.json"),
             engine: str = EngineOpt, root: str = RootOpt, platform: Optional[str] = PlatformOpt,
             ca_bundle: str = CaOpt, catalog: Optional[str] = CatalogOpt,
             deb_store: str = DebStoreOpt,
             add_hashes: bool = typer.Option(False, "--add-hashes", help="give the apt lines "
                                             "of an older lock their .debs' sha256 (the "
                                             "package store's key), re-resolving nothing")) -> None:
    """Resolve every apt and pip step as it builds today and pin it (pip: with hashes)."""
    from . import lock as locks
    from .options import BuildOptions

    if lock_file is None:
        from nbpipe import family as images

        lock_file = images.LOCK_FILE
    cat = _catalog(catalog)
    if check:
        entries = locks.load(lock_file)
        missing = locks.check(cat, entries)
        for m in missing:
            print(f"not locked: {m}")
        print(f"{len(missing)} step(s) not locked" if missing else "every apt and pip step is locked")
        gone = _vanished(cat, entries, engine, root, platform,
                         BuildOptions.from_flags("none", deb_store=deb_store,
                                                 oci_labels=False).deb_store)
        for g in gone:
            print(f"gone from the archive: {g}")
        if gone:
            print(f"{len(gone)} step(s) pin versions Debian's archive no longer has: "
                  "`nbpipe lock IMAGE` (or a build without --locked) pins today's")
        if missing or gone:
            raise typer.Exit(1)
        return
    m = _machine(cat, engine, root, platform)
    if add_hashes:
        plats = [p for p in plat.ALL if m.local_root is None or p in m.local_root.platforms]
        with _progress() as on_event:
            n = locks.add_hashes(m.need_engine(), m.catalog, lock_file, plats, on_event)
        print(f"wrote {lock_file}: {n} apt line(s) gained their sha256")
        return
    with _progress() as on_event:
        current = locks.refresh(m, names or None, lock_file,
                                BuildOptions.from_flags(ca_bundle, oci_labels=False,
                                                        deb_store=deb_store), on_event)
    print(f"wrote {lock_file}: {sum(len(v) for v in current.values())} locked step(s)")


def _vanished(cat: Catalog, entries, engine: str, root: str, platform: str | None,
              store: Path | None) -> list[str]:
    """Pinned apt versions the archive no longer has, asked in this machine's root for
    each platform it has a root for; a line instead when no engine can ask."""
    from . import lock as locks

    m = _machine(cat, engine, root, platform, need_engine=False)
    if m.engine is None or m.dagger:
        print("archive not asked: pinned versions are checked with podman or docker")
        return []
    return locks.vanished(m.engine, m.catalog, entries, m.platform, store=store)


kubeflow_app = typer.Typer(help="Kubeflow integration.", no_args_is_help=True)
app.add_typer(kubeflow_app, name="kubeflow")


@kubeflow_app.command("spawner-options")
def spawner_options(registry: str = RegistryOpt, engine: str = EngineOpt, root: str = RootOpt,
                    catalog: Optional[str] = CatalogOpt) -> None:
    """The spawner_ui_config.yaml fragment listing the published images, pinned by digest."""
    from .publish import spawner_options as render
    from .registry import Registry

    m = _machine(_catalog(catalog), engine, root, need_engine=False)
    sys.stdout.write(render(m.catalog, Registry.parse(registry)))


spec_app = typer.Typer(help="YAML specs: a team's image on one of ours.", no_args_is_help=True)
app.add_typer(spec_app, name="spec")


@spec_app.command("validate")
def spec_validate(files: list[Path] = typer.Argument(..., help="spec files"),
                  catalog: Optional[str] = CatalogOpt) -> None:
    """Check specs without building: every error names the file, line and field."""
    from . import spec as specs

    cat = _catalog(catalog)
    for f in files:
        sp = specs.load(f)
        sp.register(cat)
        img = cat.resolve(sp.name)
        print(printable(f"{f}: ok: {sp.name} on {cat.parent_name(sp.name) or sp.parent}, "
                        f"{len(img.steps)} step(s), digest {short(img.digest())}"))


@app.command()
def new(name: str = typer.Argument(..., help="the new image's name"),
        parent: str = typer.Option("jupyter", help="the family image to build on"),
        python: bool = typer.Option(False, "--python", help="the image as Python (NAME.py); "
                                    "without --repo, next to the spec"),
        out: Path = typer.Option(Path("."), help="folder to write into"),
        repo: Optional[Path] = typer.Option(None, "--repo", help="write a whole team repository "
                                            "here: image, README, test, CI workflow, Dagger module"),
        ci: str = typer.Option("cli", "--ci", help="with --repo: the workflow runs the nbpipe "
                               "CLI (cli) or this repository's Dagger module (dagger)"),
        catalog: Optional[str] = CatalogOpt) -> None:
    """Write a spec (and optionally a Python module), or a team repository, to edit."""
    from . import scaffold

    cat = _catalog(catalog)
    cat.entry(parent)
    if repo is not None:
        written = scaffold.write_repo(name, parent, repo, python=python, ci=ci)
    else:
        written = scaffold.write(name, parent, out, python=python)
    for path in written:
        print(printable(f"wrote {path}"))


cli_supply.register(app, console, err, _machine, _catalog, {
    "engine": EngineOpt, "root": RootOpt, "platform": PlatformOpt, "catalog": CatalogOpt})


def _fail(message: str) -> None:
    """One line on stderr, printed as plain text (a '[...]' in it is not rich markup),
    with any control character shown escaped so the message stays one line."""
    err.print(Text.assemble(("nbpipe: error: ", "red"), printable(message)), soft_wrap=True)


def main() -> None:
    """The one error path: an NbpipeError or a usage error is one clear message and a
    non-zero exit; anything else too (never a traceback, unless NBPIPE_DEBUG=1)."""
    import os

    from .safe_io import exit_on_signals

    exit_on_signals()  # SIGTERM/SIGHUP: `finally` blocks run, the registry auth file goes
    try:
        rc = app(standalone_mode=False)  # returns typer.Exit's code instead of exiting
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
        if callable(getattr(exc, "show", None)) and isinstance(getattr(exc, "exit_code", None), int):
            exc.show()  # a usage error: click's, vendored by typer or not (never `import click`)
            sys.exit(exc.exit_code)
        if os.environ.get("NBPIPE_DEBUG"):  # a bug: still one line, and how to see the details
            raise
        _fail(f"internal error: {type(exc).__name__}: {exc} (a bug in nbpipe; run again "
              "with NBPIPE_DEBUG=1 for the traceback)")
        sys.exit(70)


if __name__ == "__main__":
    main()
