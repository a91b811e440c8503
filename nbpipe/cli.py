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
from rich.table import Table
from rich.text import Text

from . import contract
from . import graph as graphs
from . import platforms as plat
from .catalog import Catalog
from .engines import dockerfile
from .errors import NbpipeError
from .image import short
from .loader import load

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Build, test and publish the notebook-server image family.")
console = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, markup=False, highlight=False)  # messages carry user text

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
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")


def _version(value: bool) -> None:
    if value:
        from . import __version__

        print(f"nbpipe {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", is_eager=True, callback=_version,
                                       help="print nbpipe's version and exit")) -> None:
    """Build, test and publish the notebook-server image family."""


def _ca(value: str | Path | None) -> Path | None:
    """--ca-bundle: builds trust what this machine trusts unless told otherwise."""
    if value in (None, "none"):
        return None
    if value == "auto":
        return HOST_CA if HOST_CA.is_file() else None
    return Path(value)
WheelOpt = typer.Option(None, "--wheelhouse", help="folder of wheels pip may use (find-links)")
JobsOpt = typer.Option(2, "--jobs", "-j", help="images built at the same time")
ReportOpt = typer.Option(Path("reports"), "--report-dir", help="where the JSON and Markdown reports go")


FileOpt = typer.Option(None, "--file", "-f", help="a team's YAML spec (repeatable): its "
                       "image joins the family and is the default target")
RepoOpt = typer.Option(None, "--from-repo", help="a Binder-ready repo (requirements.txt, "
                       "apt.txt, environment.yml, postBuild, start), built on --parent")
ParentOpt = typer.Option("jupyter", "--parent", help="parent image for --from-repo")


def _catalog(spec: str | None, files: list[Path] | None = None, repo: Path | None = None,
             parent: str = "jupyter") -> Catalog:
    """The catalog plus any team images given as YAML specs or a Binder repo."""
    from . import repo2docker
    from . import spec as specs

    cat = load(spec)
    for f in files or []:
        specs.load(f).register(cat)
    if repo is not None:
        repo2docker.from_repo(repo, parent).register(cat)
    return cat


def _targets(names: list[str] | None, files: list[Path] | None, repo: Path | None) -> list[str]:
    """Names asked for; with -f/--from-repo and no names, the team's own images."""
    from . import repo2docker
    from . import spec as specs

    if names:
        return names
    out = [specs.load(f).name for f in files or []]
    if repo is not None:
        out.append(repo2docker.from_repo(repo).name)
    return out


@app.command()
def images(catalog: Optional[str] = CatalogOpt) -> None:
    """List every image: parent, platforms, runner tags, digest."""
    cat = _catalog(catalog)
    table = Table("name", "parent", "platforms", "runner tags", "digest")
    for name in cat.order():
        img = cat.resolve(name)
        parent = cat.parent_name(name) or cat.entry(name).parent.ref  # type: ignore[union-attr]
        tags = img.config().label_dict().get(contract.LABEL_RUNNER_TAGS, "")
        arches = ",".join(p.split("/")[1] for p in img.platforms)
        table.add_row(name, escape(parent), arches, escape(tags or "-"), short(img.digest()))
    console.print(table)


@app.command()
def graph(fmt: str = typer.Option("text", "--format", help="text | mermaid | dot"),
          catalog: Optional[str] = CatalogOpt) -> None:
    """Print the image family as a tree, Mermaid chart or Graphviz dot."""
    renderers = {"text": graphs.text, "mermaid": graphs.mermaid, "dot": graphs.dot}
    if fmt not in renderers:
        raise NbpipeError(f"--format {fmt!r}: use one of {', '.join(renderers)}")
    print(renderers[fmt](_catalog(catalog)))


@app.command()
def plan(names: list[str] = typer.Argument(None, help="images to build (default: all)"),
         since: Optional[Path] = typer.Option(None, help="a plan JSON from before: list only "
                                              "the images whose digest changed since"),
         registry: Optional[str] = typer.Option(None, "--registry", help="leave out images "
                                                "whose content tag is already published there"),
         root: str = RootOpt, engine: str = EngineOpt,
         as_json: bool = typer.Option(False, "--json", help="print the plan as JSON"),
         file: Optional[list[Path]] = FileOpt, from_repo: Optional[Path] = RepoOpt,
         parent: str = ParentOpt, catalog: Optional[str] = CatalogOpt) -> None:
    """What would be built, parents first."""
    from .registry import Registry

    reg = Registry.parse(registry) if registry is not None else None  # checked before work
    cat = _catalog(catalog, file, from_repo, parent)
    if registry is not None and root != "registry":
        cat, _, _ = _setup(cat, engine, root, None)  # tags depend on the root builds use
    order = cat.order(_targets(names, file, from_repo) or None)
    if since is not None:
        previous = _plan_digests(since)
        changed = set(cat.affected(previous))
        order = [n for n in order if n in changed]
    published: list[str] = []
    if reg is not None:
        from .naming import content_tag

        with reg.authfile() as auth:
            published = [n for n in order if reg.digest(
                f"{reg.repo(n)}:{content_tag(cat.resolve(n))}", auth) is not None]
        order = [n for n in order if n not in published]
    digests = {n: cat.resolve(n).digest() for n in order}
    if as_json:
        print(json.dumps({"order": order, "digests": digests, "published": published}, indent=2))
        return
    for i, name in enumerate(order, 1):
        print(f"{i:2}. {name:32} {short(digests[name])}")
    if published:
        print(f"already published in {registry}: {', '.join(published)}")
    if not order:
        print("nothing to build")


@app.command()
def export(name: str, platform: str = typer.Option(plat.AMD64, help="linux/amd64 | linux/arm64"),
           out: Optional[Path] = typer.Option(None, help="write Dockerfile + files/ here"),
           file: Optional[list[Path]] = FileOpt, from_repo: Optional[Path] = RepoOpt,
           parent: str = ParentOpt, catalog: Optional[str] = CatalogOpt) -> None:
    """The Dockerfile that builds IMAGE from its parent (same steps, same order)."""
    if out is not None and out.exists() and not out.is_dir():
        raise NbpipeError(f"--out {out}: exists and is not a folder; give a folder")
    img = _catalog(catalog, file, from_repo, parent).resolve(name)
    rendered = dockerfile.render(img, plat.check(platform))
    if out is None:
        sys.stdout.write(rendered.text)
    else:
        path = rendered.write(out)
        err.print(f"wrote {path} and {len(rendered.files)} file(s) under {out / 'files'}")


# -- building and testing ----------------------------------------------------------------


def _plan_digests(since: Path) -> dict[str, str]:
    """The digests of a plan file (`nbpipe plan --json`), its shape checked."""
    from . import safe_io

    what = f"--since {since}"
    data = safe_io.load_json(since, what)
    digests = data.get("digests") if isinstance(data, dict) else None
    if not isinstance(digests, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in digests.items()):
        raise NbpipeError(f"{what}: not a plan file written by `nbpipe plan --json` "
                          "(it needs \"digests\": {name: digest})")
    return digests


def _setup(cat: Catalog, engine: str, root: str, platform: str | None):
    from .engines.oci import OciEngine
    from . import rootfs

    eng = OciEngine.detect(engine)
    platform = plat.check(platform or plat.host())
    if root not in ("auto", "local", "registry"):
        raise NbpipeError(f"--root {root!r}: use auto, local or registry")
    local = rootfs.local_root(eng) if root != "registry" else None
    if root == "local" and (local is None or platform not in local.platforms):
        raise NbpipeError(f"no local root for {platform}: run `nbpipe base bootstrap "
                          f"--platform {platform}` first")
    if local is not None and platform in local.platforms:
        cat = cat.rebased(local)
        err.print(f"engine: {eng.kind} ({eng.binary}); root: {local.pinned(platform)} "
                  f"(debootstrap, {short(local.digest(platform))})")
    else:
        err.print(f"engine: {eng.kind} ({eng.binary}); root: registry pin")
    return cat, eng, platform


def _run_pipeline(names: list[str], *, catalog, engine, root, platform, ca_bundle, wheelhouse,
                  jobs, report_dir, probe: bool, force_probe: bool, no_cache: bool = False) -> None:
    import anyio

    from . import report
    from .engines import dagger_client
    from .options import BuildOptions
    from .pipeline import Pipeline

    if engine == "dagger" or (engine == "auto" and dagger_client.available()):
        why = dagger_client.available()
        err.print(f"engine: dagger ({why or 'not available here'})")
        options = BuildOptions(ca_bundle=_ca(ca_bundle), wheelhouse=wheelhouse).with_oci_labels()
        with _progress() as on_event:
            results = dagger_client.run(catalog, names or None, plat.check(platform or plat.host()),
                                        options, on_event)
        console.print(report.table(results))
        report.write(results, report_dir)
        if any(r.status == "failed" for r in results):
            raise typer.Exit(1)
        return
    cat, eng, platform = _setup(catalog, engine, root, platform)  # catalog: a Catalog here
    options = BuildOptions(ca_bundle=_ca(ca_bundle), wheelhouse=wheelhouse).with_oci_labels()
    for n in names:
        cat.entry(n)
    with _progress() as on_event:
        pipe = Pipeline(cat, eng, platform, options, jobs=jobs, probe=probe,
                        force_probe=force_probe, no_cache=no_cache, on_event=on_event)
        results = anyio.run(pipe.run, names or None)
    console.print(report.table(results))
    js, md = report.write(results, report_dir)
    for r in results:
        if not r.ok and r.message:
            err.print(Text.assemble((r.name, "bold"), f": {r.message}"))
            if r.log:
                err.print(r.log, highlight=False, markup=False)
    err.print(f"reports: {js} {md}")
    if any(r.status in ("failed", "blocked") for r in results):
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
          parent: str = ParentOpt, catalog: Optional[str] = CatalogOpt) -> None:
    """Build images (parents first, already-built digests skipped) and probe each one."""
    cat = _catalog(catalog, file, from_repo, parent)
    _run_pipeline(_targets(names, file, from_repo), catalog=cat, engine=engine, root=root, platform=platform,
                  ca_bundle=ca_bundle, wheelhouse=wheelhouse, jobs=jobs, report_dir=report_dir,
                  probe=not no_probe, force_probe=False, no_cache=no_cache)


@app.command()
def test(names: list[str] = typer.Argument(None, help="images to probe (built first if needed)"),
         engine: str = EngineOpt, root: str = RootOpt, platform: Optional[str] = PlatformOpt,
         ca_bundle: str = CaOpt, wheelhouse: Optional[Path] = WheelOpt,
         jobs: int = JobsOpt, report_dir: Path = ReportOpt,
         file: Optional[list[Path]] = FileOpt, from_repo: Optional[Path] = RepoOpt,
         parent: str = ParentOpt, catalog: Optional[str] = CatalogOpt) -> None:
    """Run the notebook-server contract probes against images (fresh, never from cache)."""
    targets = _targets(names, file, from_repo)
    if not targets:
        raise NbpipeError("name the images to test (or give -f SPEC / --from-repo DIR)")
    _run_pipeline(targets, catalog=_catalog(catalog, file, from_repo, parent), engine=engine, root=root, platform=platform,
                  ca_bundle=ca_bundle, wheelhouse=wheelhouse, jobs=jobs, report_dir=report_dir,
                  probe=True, force_probe=True)


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
            catalog: Optional[str] = CatalogOpt) -> None:
    """Build every platform, push, then one manifest list per tag (all or nothing)."""
    from .options import BuildOptions
    from .publish import publish as do_publish
    from .registry import Registry

    reg = Registry.parse(registry)
    targets = _targets(names, file, from_repo)
    if not targets:
        raise NbpipeError("name the images to publish")
    for p in platform or []:
        plat.check(p)
    cat, eng, native = _setup(_catalog(catalog, file, from_repo, parent), engine, root, None)
    if platform:
        for p in platform:
            if p != native:
                _require_local_root(eng, p, root)
    options = BuildOptions(ca_bundle=_ca(ca_bundle), wheelhouse=wheelhouse).with_oci_labels()
    with _progress() as on_event:
        results = do_publish(cat, targets, eng, reg,
                             platforms=tuple(platform) if platform else None, options=options,
                             state_dir=Path(".nbpipe"), extra_tags=tuple(tag or ()),
                             latest=latest, native=native, on_event=on_event)
    table = Table("image", "platforms", "digest", "tags", "result")
    for r in results:
        table.add_row(r.name, ",".join(p.split("/")[1] for p in r.platforms), short(r.digest),
                      escape(" ".join(r.tags)), escape(r.message))
    console.print(table)
    for r in results:
        print(r.ref)


def _require_local_root(eng, platform: str, root: str) -> None:
    """With a local root, every platform asked for needs one (or none may be local)."""
    from . import rootfs

    if root == "registry":
        return
    local = rootfs.local_root(eng)
    if local is not None and platform not in local.platforms:
        raise NbpipeError(f"no local root for {platform}: run `nbpipe base bootstrap "
                          f"--platform {platform}` (needs qemu for a foreign platform)")


@app.command("verify-reproducible")
def verify_reproducible(name: str, engine: str = EngineOpt, root: str = RootOpt,
                        platform: Optional[str] = PlatformOpt, ca_bundle: str = CaOpt,
                        catalog: Optional[str] = CatalogOpt) -> None:
    """Build IMAGE twice from scratch and compare the digests (and the files, if they differ)."""
    from .options import BuildOptions
    from .reproducible import verify

    cat, eng, platform = _setup(_catalog(catalog), engine, root, platform)
    v = verify(cat, name, eng, platform, BuildOptions(ca_bundle=_ca(ca_bundle)).with_oci_labels(),
               Path(".nbpipe"))
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
             ca_bundle: str = CaOpt, catalog: Optional[str] = CatalogOpt) -> None:
    """Resolve every apt and pip step as it builds today and pin it (pip: with hashes)."""
    import anyio

    from . import lock as locks
    from . import naming
    from .options import BuildOptions
    from .pipeline import Pipeline
    from .steps import Pip

    if lock_file is None:
        from nbpipe import family as images

        lock_file = images.LOCK_FILE
    cat = _catalog(catalog)
    current = locks.load(lock_file)
    if check:
        missing = locks.check(cat, current)
        for m in missing:
            print(f"not locked: {m}")
        print(f"{len(missing)} step(s) not locked" if missing else "every apt and pip step is locked")
        if missing:
            raise typer.Exit(1)
        return
    plain, eng, platform = _setup(locks.unlocked(cat), engine, root, platform)
    wanted = [n for n in plain.order(names or None) if platform in plain.resolve(n).platforms
              and any(isinstance(s, locks.LOCKABLE) for s in plain.resolve(n).steps)]
    options = BuildOptions(ca_bundle=_ca(ca_bundle))
    with _progress() as on_event:
        pipe = Pipeline(plain, eng, platform, options, probe=False, on_event=on_event)
        built = {r.name: r for r in anyio.run(pipe.run, wanted or None)}
        for name in wanted:
            if not built[name].ok:
                on_event(name, f"not locked: {built[name].status}")
                continue
            img = plain.resolve(name)
            ref = naming.local_ref(img, platform)
            for i, st in enumerate(img.steps):
                if not isinstance(st, locks.LOCKABLE) or not st.applies_to(platform):
                    continue
                on_event(name, f"resolving step {i}: {st.describe()[:60]}")
                if isinstance(st, Pip):
                    lines = locks.resolve(eng, ref, st, options.ca_bundle)
                else:  # what apt installs on the parent, as it is built
                    lines = locks.resolve_apt(eng, naming.parent_ref(img, platform), st)
                current.setdefault(locks.key(name, i, st), {})[platform] = lines
            locks.save(lock_file, current)
    print(f"wrote {lock_file}: {sum(len(v) for v in current.values())} locked step(s)")


kubeflow_app = typer.Typer(help="Kubeflow integration.", no_args_is_help=True)
app.add_typer(kubeflow_app, name="kubeflow")


@kubeflow_app.command("spawner-options")
def spawner_options(registry: str = RegistryOpt, engine: str = EngineOpt, root: str = RootOpt,
                    catalog: Optional[str] = CatalogOpt) -> None:
    """The spawner_ui_config.yaml fragment listing the published images, pinned by digest."""
    from .publish import spawner_options as render
    from .registry import Registry

    cat, _, _ = _setup(_catalog(catalog), engine, root, None)
    sys.stdout.write(render(cat, Registry.parse(registry)))


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
        print(f"{f}: ok: {sp.name} on {cat.parent_name(sp.name) or sp.parent}, "
              f"{len(img.steps)} step(s), digest {short(img.digest())}")


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
        print(f"wrote {path}")


def _fail(message: str) -> None:
    """One line on stderr, printed as plain text (a '[...]' in it is not rich markup),
    with any control character shown escaped so the message stays one line."""
    line = "".join(c if c.isprintable() else c.encode("unicode_escape").decode()
                   for c in message)
    err.print(Text.assemble(("nbpipe: error: ", "red"), line), soft_wrap=True)


def main() -> None:
    """The one error path: an NbpipeError or a usage error is one clear message and a
    non-zero exit; anything else too (never a traceback, unless NBPIPE_DEBUG=1)."""
    import os
    import signal

    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:  # let `finally` blocks run
        signal.signal(signal.SIGTERM, _terminated)
    try:
        rc = app(standalone_mode=False)  # returns typer.Exit's code instead of exiting
        sys.exit(rc if isinstance(rc, int) else 0)
    except NbpipeError as exc:
        _fail(str(exc))
        sys.exit(1)
    except typer.TyperException as exc:  # usage errors (typer's own click; never `import click`)
        show = getattr(exc, "show", None)
        if show is not None:
            show()
        else:
            _fail(exc.format_message())
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        err.print("nbpipe: interrupted", markup=False)
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except RecursionError:
        _fail("input nested too deeply to read")
        sys.exit(1)
    except Exception as exc:  # a bug: still one line, and how to see the details
        if os.environ.get("NBPIPE_DEBUG"):
            raise
        _fail(f"internal error: {type(exc).__name__}: {exc} (a bug in nbpipe; run again "
              "with NBPIPE_DEBUG=1 for the traceback)")
        sys.exit(70)


def _terminated(signum: int, frame: object) -> None:
    """SIGTERM ends the run like Ctrl-C does: temporary files (the registry auth file)
    are removed on the way out."""
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    main()
