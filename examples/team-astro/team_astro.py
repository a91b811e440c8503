"""The same team image through the Python API (what the YAML spec says, as code).

PYTHONPATH=examples/team-astro nbpipe build team-astro --catalog team_astro:catalog
"""

from __future__ import annotations

from pathlib import Path

from nbpipe import Catalog, Image
from nbpipe.family import family

HERE = Path(__file__).parent
INIT = '#!/bin/sh\nmkdir -p "$ASTRO_DATA"\n'


def team_astro(parent: Image) -> Image:
    return (
        parent.with_pip("astropy==8.0.2")
        .with_env("ASTRO_DATA", "/home/jovyan/data")
        .with_file("/etc/team-astro/README", HERE / "motd.txt")
        .with_init_script("50-astro-data", INIT)
        .with_label("org.example.team", "astro")
        .with_probes(
            imports=("astropy", "astropy.units"),
            commands=(
                'python3 -c "import astropy.units as u; assert (1 * u.km).to(u.m).value == 1000"',
                'test -d "$ASTRO_DATA"',
            ),
        )
    )


def catalog() -> Catalog:
    cat = family()
    cat.add("team-astro", "jupyter", team_astro, "JupyterLab with astropy for the astronomy team")
    return cat
