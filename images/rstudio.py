"""rstudio and rstudio-tidyverse: R and its packages from Debian, RStudio Server from
Posit's .deb (checked by sha256)."""

from __future__ import annotations

from nbpipe.recipe import contract
from nbpipe.recipe.catalog import Catalog
from nbpipe.recipe.image import Image

from . import pins
from .base import FILES

DATABASE_CONF = "provider=sqlite\ndirectory=/tmp/rstudio-db\n"
FILE_LOCKS = "lock-type=advisory\n"


def rstudio(image: Image) -> Image:
    """R and RStudio Server on 8888 (no login, frameable), supervised by s6."""
    img = image.with_apt(*pins.R_APT)
    for platform, (url, sha256) in pins.RSTUDIO.items():
        img = img.with_deb(url, sha256, platforms=(platform,))
    return (
        img.with_file("/etc/rstudio/database.conf", DATABASE_CONF)
        .with_file("/etc/rstudio/file-locks", FILE_LOCKS)
        .with_env("RS_LOGGER_TYPE", "stderr")
        .with_service("rstudio", (FILES / "rstudio.run").read_text())
        .with_label(contract.LABEL_SERVER, "rstudio")
        .with_label(contract.LABEL_SERVICE, "rstudio")
        .with_probes(r_libraries=("png", "reticulate", "shiny"))
    )


def rstudio_tidyverse(image: Image) -> Image:
    """The tidyverse, from Debian's packages."""
    return image.with_apt(*pins.TIDYVERSE_APT).with_probes(r_libraries=("tidyverse",))


def register(catalog: Catalog) -> None:
    catalog.add("rstudio", "base", rstudio)
    catalog.add("rstudio-tidyverse", "rstudio", rstudio_tidyverse)
