"""rstudio and rstudio-tidyverse: R from Debian, RStudio Server from Posit's .deb."""

from __future__ import annotations

from nbpipe.catalog import Catalog
from nbpipe.image import Image


def rstudio(image: Image) -> Image:
    """R and RStudio Server on 8888, supervised by s6."""
    return image


def rstudio_tidyverse(image: Image) -> Image:
    """The tidyverse, from Debian's packages."""
    return image


def register(catalog: Catalog) -> None:
    catalog.add("rstudio", "base", rstudio)
    catalog.add("rstudio-tidyverse", "rstudio", rstudio_tidyverse)
