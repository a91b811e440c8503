"""The supply-chain commands: `keygen`, `verify`, `audit` (registered on the main app by
cli.py; kept here so the CLI file stays one screen per concern)."""

from __future__ import annotations

import getpass
import json
import time
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from nbpipe.errors import NbpipeError

SignKeyOpt = typer.Option(
    None,
    "--sign-key",
    metavar="FILE|env:NAME",
    help="sign images, SBOMs and provenance with "
    "this cosign-format private key: a file path or env:NAME (a CI "
    "secret); passphrase from $NBPIPE_SIGN_PASSPHRASE or $COSIGN_PASSWORD",
)
FAIL_ON = ("none", "low", "medium", "high", "critical")


def load_sign_key(spec: str | None):
    """The decrypted signing key, or None without --sign-key (read before any build, so a
    wrong passphrase stops the run before anything is pushed)."""
    if not spec:
        return None
    from nbpipe.supply.signing import load_signing_key

    return load_signing_key(spec)


def register(app: typer.Typer, console, err, machine, catalog_of, opts: dict) -> None:
    """Add the commands to ``app``; ``machine``/``catalog_of`` are cli.py's helpers."""

    @app.command()
    def keygen(
        prefix: Path = typer.Argument(
            ..., help="writes PREFIX.key (encrypted, 0600) and PREFIX.pub"
        ),
    ) -> None:
        """A cosign-format key pair for `publish --sign-key` (cosign generate-key-pair's format)."""
        import os

        from nbpipe.supply.signing import PASSPHRASE_ENV, generate

        if PASSPHRASE_ENV in os.environ:
            password = os.environ[PASSPHRASE_ENV].encode()
        else:
            password = getpass.getpass("passphrase for the private key: ").encode()
            if getpass.getpass("again: ").encode() != password:
                raise NbpipeError("the passphrases differ")
        priv, pub = generate(prefix, password)
        print(f"private key {priv} (keep it secret: a CI secret, never in the repository)")
        print(f"public key {pub} (give it to verifiers and admission policies)")

    @app.command()
    def verify(
        ref: str = typer.Argument(..., help="REGISTRY/NAME@sha256:DIGEST"),
        key: Path = typer.Option(..., "--key", metavar="PUB", help="the signer's public key (PEM)"),
        json_out: bool = typer.Option(False, "--json", help="print findings as JSON"),
    ) -> None:
        """Check a published image: signatures of the list and of every platform image,
        and each platform's signed SBOM and provenance. Exit 1 naming what failed."""
        from nbpipe.engines.registry import Registry
        from nbpipe.supply.signing import load_public_key
        from nbpipe.supply.sigstore import verify as do_verify

        pub = load_public_key(key)
        registry = Registry.parse(ref.split("/", 1)[0])
        with registry.authfile() as auth:
            v = do_verify(ref, pub, registry=registry, auth=auth)
        if json_out:
            print(
                json.dumps(
                    {
                        "ref": v.ref,
                        "ok": v.ok,
                        "findings": [
                            {"subject": f.subject, "what": f.what, "ok": f.ok, "line": f.line}
                            for f in v.findings
                        ],
                    },
                    indent=1,
                )
            )
        else:
            for f in v.findings:
                console.print(("ok     " if f.ok else "FAILED ") + escape(f.line), soft_wrap=True)
            for s in v.provenance:
                for line in s.lines():
                    console.print(escape(line), soft_wrap=True)
            for doc in v.sboms:
                comps = doc.get("components") or []
                n = {
                    k: sum(str(c.get("purl", "")).startswith(f"pkg:{k}/") for c in comps)
                    for k in ("deb", "pypi")
                }
                console.print(
                    f"sbom: CycloneDX {escape(str(doc.get('specVersion', '?')))}, "
                    f"{n['deb']} Debian and {n['pypi']} Python packages"
                )
        if not v.ok:
            err.print(f"nbpipe: verify failed: {v.first_failure}", soft_wrap=True)
            raise typer.Exit(1)

    @app.command()
    def audit(
        name: Optional[str] = typer.Argument(None, help="a built image of the catalog"),
        sbom: Optional[Path] = typer.Option(
            None,
            "--sbom",
            metavar="FILE",
            help="audit this CycloneDX file instead (e.g. .nbpipe/sbom/*.cdx.json)",
        ),
        fail_on: str = typer.Option(
            "none",
            "--fail-on",
            metavar="SEVERITY",
            help="exit 1 when a finding is "
            "at or above: none | low | medium | high | critical "
            "(PyPI gives no severity: such a finding counts at "
            "every level)",
        ),
        json_out: bool = typer.Option(False, "--json", help="print the report as JSON"),
        engine: str = opts["engine"],
        root: str = opts["root"],
        platform: Optional[str] = opts["platform"],
        catalog: Optional[str] = opts["catalog"],
    ) -> None:
        """Known vulnerabilities of an image's Python packages (PyPI's advisory data), from
        its SBOM; Debian packages: not reachable from here, said in the report."""
        from nbpipe.inputs import safe_io
        from nbpipe.recipe.naming import local_ref
        from nbpipe.supply import audit as audits
        from nbpipe.supply import sbom as sboms

        if fail_on not in FAIL_ON:
            raise NbpipeError(f"--fail-on {fail_on}: use one of {', '.join(FAIL_ON)}")
        if (name is None) == (sbom is None):
            raise NbpipeError("name an image or give --sbom FILE (one of them)")
        start = time.monotonic()
        if sbom is not None:
            doc = safe_io.load_json(sbom, f"SBOM {sbom}")
            if not isinstance(doc, dict) or doc.get("bomFormat") != "CycloneDX":
                raise NbpipeError(f"{sbom}: not a CycloneDX JSON document (bomFormat)")
            label = str(sbom)
        else:
            m = machine(catalog_of(catalog), engine, root, platform)
            img = m.catalog.resolve(name)
            ref = local_ref(img, m.platform)
            eng = m.need_engine()
            if not eng.exists(ref):
                raise NbpipeError(
                    f"{name} is not built here for {m.platform} "
                    f"(nbpipe build {name}), or give --sbom FILE"
                )
            doc = {"components": sboms.components(eng, ref)}
            label = f"{name} ({m.platform})"
        report = audits.audit(label, doc)
        seconds = time.monotonic() - start
        if json_out:
            print(json.dumps({**report.to_dict(), "seconds": round(seconds, 2)}, indent=1))
        else:
            print_report(console, report)
            console.print(f"{escape(label)}: {report.summary()} ({seconds:.1f} s)")
        if report.fails(fail_on):
            err.print(f"nbpipe: audit: {report.summary()} (--fail-on {fail_on})")
            raise typer.Exit(1)


def print_report(console, report) -> None:
    from rich.table import Table

    table = Table("package", "version", "advisory", "aliases", "fixed in", "source")
    for f in report.findings:
        table.add_row(
            escape(f.package.name),
            escape(f.package.version),
            escape(f.advisory.id),
            escape(" ".join(f.advisory.aliases)),
            escape(" ".join(f.advisory.fixed_in) or "no fix"),
            f.source,
        )
    if report.findings:
        console.print(table)
    for r in report.results:
        if r.note:
            console.print(f"note: {escape(r.note)}", soft_wrap=True)
