"""`nbpipe export`: the Dockerfile performs exactly the image's ops, in order.

The Dockerfile is parsed back into (instruction, meaning) pairs and compared with what
the recipe's ops say, so any drift in the lowering shows up here.
"""

from __future__ import annotations

import json
import re

import pytest

from nbpipe.recipe import platforms as plat
from nbpipe.recipe.catalog import Catalog
from nbpipe.recipe import naming
from nbpipe.engines import dockerfile
from nbpipe.recipe.image import Image
from nbpipe.recipe.ops import Exec, Expose, SetCmd, SetEntrypoint, SetEnv, SetLabel, SetUser
from nbpipe.recipe.ops import SetWorkdir, WriteFile
from nbpipe.recipe.options import BuildOptions


def _unquote(word: str) -> str:
    assert word.startswith('"') and word.endswith('"'), word
    return re.sub(r"\\(.)", r"\1", word[1:-1])


def expected(image: Image, platform: str, options: BuildOptions) -> list[tuple]:
    parent = image.parent
    user = parent.config(platform).user if isinstance(parent, Image) else "root"
    out: list[tuple] = []
    for op in (*image.ops(platform), *naming.stamp(image, platform, options)):
        match op:
            case Exec():
                run = options.prepare(op)
                out.append(("RUN", run.user or user, run.argv()))
            case SetUser(user=u):
                user = u
            case SetEnv(name=n, value=v):
                out.append(("ENV", n, v))
            case SetWorkdir(path=p):
                out.append(("WORKDIR", p))
            case WriteFile(path=p, content=c, mode=m, owner=o):
                out.append(("COPY", p, c, m, o))
            case SetLabel(key=k, value=v):
                out.append(("LABEL", k, v))
            case Expose(port=p):
                out.append(("EXPOSE", p))
            case SetEntrypoint(argv=a):
                out.append(("ENTRYPOINT", list(a)))
            case SetCmd(argv=a):
                out.append(("CMD", list(a)))
    return out


def parsed(rendered: dockerfile.Rendered, start_user: str) -> tuple[list[tuple], str]:
    user = start_user
    out: list[tuple] = []
    for line in rendered.text.splitlines():
        if not line or line.startswith("#"):
            continue
        instr, _, rest = line.partition(" ")
        if instr == "FROM":
            continue
        if instr == "USER":
            user = rest
        elif instr == "RUN":
            argv_text = rest[rest.index("["):]
            out.append(("RUN", user, json.loads(argv_text)))
        elif instr == "ENV":
            name, _, value = rest.partition("=")
            out.append(("ENV", name, _unquote(value)))
        elif instr == "WORKDIR":
            out.append(("WORKDIR", rest))
        elif instr == "COPY":
            m = re.match(r"--chown=(\S+) --chmod=(\d+) (\[.*\])$", rest)
            assert m, line
            src, dest = json.loads(m.group(3))
            out.append(("COPY", dest, rendered.files[src], int(m.group(2), 8), m.group(1)))
        elif instr == "LABEL":
            k, v = re.match(r'("(?:[^"\\]|\\.)*")=("(?:[^"\\]|\\.)*")$', rest).groups()
            out.append(("LABEL", _unquote(k), _unquote(v)))
        elif instr == "EXPOSE":
            out.append(("EXPOSE", int(rest)))
        elif instr in ("ENTRYPOINT", "CMD"):
            out.append((instr, json.loads(rest)))
        else:
            pytest.fail(f"unexpected instruction {line!r}")
    return out, user


@pytest.mark.parametrize("name", ["base", "jupyter", "jupyter-scipy", "jupyter-pytorch-gaudi",
                                  "codeserver", "rstudio-tidyverse"])
@pytest.mark.parametrize("platform", plat.ALL)
def test_export_performs_the_recipe_in_order(family: Catalog, name: str, platform: str,
                                             tmp_path) -> None:
    image = family.resolve(name)
    if platform not in image.platforms:
        pytest.skip(f"{name} is not built for {platform}")
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    for options in (BuildOptions(), BuildOptions(ca_bundle=ca, wheelhouse=tmp_path)):
        rendered = dockerfile.render(image, platform, options)
        parent = image.parent
        start = parent.config(platform).user if isinstance(parent, Image) else "root"
        got, final_user = parsed(rendered, start)
        assert got == expected(image, platform, options)
        assert final_user == image.config(platform).user


def test_export_starts_from_the_parent_content_tag(family: Catalog) -> None:
    scipy = family.resolve("jupyter-scipy")
    text = dockerfile.render(scipy, plat.AMD64).text
    assert f"FROM {naming.local_ref(family.resolve('jupyter'), plat.AMD64)}\n" in text
    base = dockerfile.render(family.resolve("base"), plat.ARM64).text
    assert "FROM docker.io/library/debian:bookworm-slim@sha256:" in base


def test_env_values_stay_literal() -> None:
    from tests.sdk.test_digest import ROOT

    img = Image.from_base(ROOT).with_env("X", 'a"$HOME\\b')
    text = dockerfile.render(img, plat.AMD64).text
    assert 'ENV X="a\\"\\$HOME\\\\b"' in text


def test_ca_bundle_is_a_build_secret_never_a_layer(family: Catalog, tmp_path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    rendered = dockerfile.render(family.resolve("jupyter"), plat.AMD64, BuildOptions(ca_bundle=ca))
    assert "type=secret,id=nbpipe-ca" in rendered.text
    assert not any(b"BEGIN CERTIFICATE" in data for data in rendered.files.values())
    assert "MIIB" not in rendered.text


def test_one_content_tag_names_the_label_and_the_registry_tag(family: Catalog) -> None:
    img = family.resolve("jupyter")
    labels = {op.key: op.value for op in naming.stamp(img, plat.AMD64)}
    assert labels["org.opencontainers.image.version"] == naming.content_tag(img)
    assert naming.content_tag(img) == "sha-" + img.digest().split(":")[1][:16]
    assert naming.parent_ref(img, plat.AMD64) == naming.local_ref(family.resolve("base"), plat.AMD64)


TINY_DOCKERFILE = r'''# nbpipe: tiny for linux/amd64
# digest: sha256:48f888a44690eaf102aa47b5639266e1560388784b059122651994f7b3b5df03
FROM example.org/root@sha256:1111111111111111111111111111111111111111111111111111111111111111
ENV GREETING="a \"b\" \$c"
USER root
RUN ["/bin/sh", "-c", "export SOURCE_DATE_EPOCH=0\nexport PYTHONHASHSEED=0\nexport FORCE_SOURCE_DATE=1\nset -eu\necho hi"]
USER 1000:0
RUN ["/bin/sh", "-c", "export SOURCE_DATE_EPOCH=0\nexport PYTHONHASHSEED=0\nexport FORCE_SOURCE_DATE=1\nset -eu\nid"]
COPY --chown=1000:0 --chmod=0600 ["files/73cb3858a687a8494ca3323053016282f3dad39d42cf62ca4e79dda2aac7d9ac", "/etc/x"]
COPY --chown=1000:0 --chmod=0644 ["files/7581e0d493f6ab3fc525c4dce2a5f835c0399ebb3207d49e609cbccb2d902a42", "/etc/nbpipe/skel/.rc"]
LABEL "team"="astro"
EXPOSE 8888
WORKDIR /home/jovyan
ENTRYPOINT ["/init"]
CMD ["lab"]
LABEL "io.nbpipe.image"="tiny"
LABEL "io.nbpipe.digest"="sha256:48f888a44690eaf102aa47b5639266e1560388784b059122651994f7b3b5df03"
LABEL "org.opencontainers.image.version"="sha-b648af9d1622d232"
'''


def test_export_format_exactly() -> None:
    """Written by hand, not computed by the lowering: the instruction format, USER switched
    around a root step and back (merged with the USER before it), literal ENV, COPY with
    owner and mode, the stamp last; and the digest encoding itself (a change to it must
    bump image.DIGEST_VERSION)."""
    import hashlib

    from tests.sdk.test_digest import ROOT

    img = (Image.from_base(ROOT, "tiny").with_env("GREETING", 'a "b" $c').with_user("1000:0")
           .with_run("echo hi", user="root").with_run("id")
           .with_file("/etc/x", b"x\n", mode=0o600, owner="1000:0")
           .with_home_file(".rc", b"rc").with_label("team", "astro").with_port(8888)
           .with_workdir("/home/jovyan").with_entrypoint("/init", cmd=("lab",)))
    rendered = dockerfile.render(img, plat.AMD64)
    assert rendered.text == TINY_DOCKERFILE
    assert rendered.files == {f"files/{hashlib.sha256(c).hexdigest()}": c for c in (b"x\n", b"rc")}
    assert rendered.from_ref == "example.org/root@sha256:" + "1" * 64
    assert [rendered.origin(i) for i in (1, 2, 3, 4, 5, 6, 7, 8)] == [
        "FROM (the parent image)", "env GREETING=a \"b\" $c", "run echo hi", "run echo hi",
        "run echo hi", "run id", "file /etc/x (2 bytes, 600)", "home-file ~/.rc"]
    assert rendered.origin(99) == "FROM (the parent image)"


def test_rendered_writes_its_context_into_a_new_folder(tmp_path) -> None:
    from tests.sdk.test_digest import ROOT

    img = Image.from_base(ROOT, "w").with_file("/etc/x", b"x\n").with_home_file(".a/b", b"b")
    rendered = dockerfile.render(img, plat.AMD64)
    out = rendered.write(tmp_path / "new" / "ctx")
    assert out == tmp_path / "new" / "ctx" / "Dockerfile" and out.read_text() == rendered.text
    assert {str(p.relative_to(out.parent)) for p in out.parent.rglob("*") if p.is_file()} == {
        "Dockerfile", *rendered.files}
    assert all((out.parent / rel).read_bytes() == data for rel, data in rendered.files.items())


def test_the_lowering_refuses_a_value_that_would_end_its_line() -> None:
    """Steps refuse control characters; the lowering refuses them again, so an op made
    any other way still cannot start an instruction of its own."""
    from dataclasses import dataclass

    from nbpipe.recipe import steps as s
    from nbpipe.errors import NbpipeError
    from tests.sdk.test_digest import ROOT

    for op, bad in ((SetEnv("X", "a\nRUN evil"), "'a\\nRUN evil'"),
                    (SetLabel("k\r", "v"), "'k\\r'"),
                    (SetUser("1000\nRUN x"), "'1000\\nRUN x'")):
        @dataclass(frozen=True, kw_only=True)
        class Sneaky(s.Step):
            def lower(self, op=op):
                return (op,)

        with pytest.raises(NbpipeError) as exc:
            dockerfile.render(Image.from_base(ROOT).with_step(Sneaky()), plat.AMD64)
        assert str(exc.value).startswith(bad + " cannot be written into a Dockerfile line")
