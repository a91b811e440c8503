"""A CycloneDX 1.5 SBOM of a built image: its Debian and Python packages, read from the
image itself (dpkg's database and pip's metadata), stored beside the image."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from nbpipe.engines.oci import OciEngine
from nbpipe.inputs import safe_io

LIST = r"""
dpkg-query -W -f '${Package}\t${Version}\t${Architecture}\n' 2>/dev/null | sed 's/^/deb\t/'
for py in /opt/venv/bin/python /usr/bin/python3; do
  [ -x "$py" ] || continue
  "$py" -c 'import importlib.metadata as m
for d in m.distributions(): print("pypi\t%s\t%s\t" % (d.metadata["Name"], d.version))' 2>/dev/null
  break
done
"""


def components(engine: OciEngine, ref: str) -> list[dict]:
    r = engine.run_once(ref, ["/bin/sh", "-c", LIST], timeout=600)
    out = []
    for line in r.stdout.splitlines():
        parts = line.split("\t")
        if len(parts) < 3:
            continue
        kind, name, version = parts[0], parts[1], parts[2]
        if kind == "deb":
            arch = parts[3] if len(parts) > 3 else ""
            purl = f"pkg:deb/debian/{name}@{version}?arch={arch}"
        else:
            purl = f"pkg:pypi/{name.lower().replace('_', '-')}@{version}"
        out.append(
            {"type": "library", "name": name, "version": version, "purl": purl, "bom-ref": purl}
        )
    return sorted(out, key=lambda c: c["purl"])


def write(engine: OciEngine, ref: str, name: str, platform: str, folder: Path) -> Path:
    info = engine.inspect(ref)
    doc = {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "version": 1,
        "serialNumber": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, info.id)}",
        "metadata": {
            "component": {
                "type": "container",
                "name": name,
                "version": info.id,
                "properties": [
                    {"name": "platform", "value": platform},
                    {"name": "ref", "value": ref},
                ],
            },
            "tools": {"components": [{"type": "application", "name": "nbpipe"}]},
        },
        "components": components(engine, ref),
    }
    path = folder / f"{name}-{platform.split('/')[1]}.cdx.json"
    return safe_io.atomic_write(path, json.dumps(doc, indent=1) + "\n")  # whole or not at all
