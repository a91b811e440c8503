"""`nbpipe new`: a team's starting point, as a spec (and optionally a Python module)."""

from __future__ import annotations

from pathlib import Path

from .errors import NbpipeError
from .spec import NAME

SPEC = """\
# {name}: our {parent} image plus this team's packages.
# Check: nbpipe spec validate {name}.yaml   Build + probe: nbpipe build -f {name}.yaml
name: {name}
parent: {parent}
apt: []                  # Debian packages, e.g. [libcfitsio10]
pip:                     # pinned requirements (or: pip: {{requirements: requirements.txt}})
  - astropy==7.1.0
env:
  {env}: /home/jovyan/data
probes:
  imports: [astropy]     # must import in the built image, checked with the contract
"""

MODULE = '''\
"""{name}: our {parent} image plus this team's packages (the Python API).

    nbpipe build {name} --catalog {module}:catalog
"""

from nbpipe.family import family
from nbpipe import Catalog, Image


def {func}(parent: Image) -> Image:
    return (parent.with_pip("astropy==7.1.0")
                  .with_env("{env}", "/home/jovyan/data")
                  .with_probes(imports=("astropy",)))


def catalog() -> Catalog:
    cat = family()
    cat.add("{name}", "{parent}", {func})
    return cat
'''


def write(name: str, parent: str, out: Path, *, python: bool = False) -> list[Path]:
    if not NAME.match(name):
        raise NbpipeError(f"{name!r} is not an image name (lowercase letters, digits, '-', '_', '.')")
    out.mkdir(parents=True, exist_ok=True)
    env = name.upper().replace("-", "_").replace(".", "_") + "_DATA"
    written = []
    files = {out / f"{name}.yaml": SPEC.format(name=name, parent=parent, env=env)}
    if python:
        module = name.replace("-", "_").replace(".", "_")
        files[out / f"{module}.py"] = MODULE.format(name=name, parent=parent, env=env,
                                                    module=module, func=module)
    for path, text in files.items():
        if path.exists():
            raise NbpipeError(f"{path} exists; not overwriting it")
    for path, text in files.items():
        path.write_text(text)
        written.append(path)
    return written
