"""base: Debian + the notebook-server contract (user, home skeleton, init, supervision).

Every other image inherits the contract from here; none of them re-implements it.
"""

from __future__ import annotations

from pathlib import Path

from nbpipe.recipe import contract
from nbpipe.recipe.catalog import Catalog
from nbpipe.recipe.image import Image

from . import pins

FILES = Path(__file__).parent / "files"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

CREATE_USER = f"""
useradd --no-create-home --no-user-group --uid {contract.NB_UID} --gid {contract.NB_GID} \\
  --groups {contract.USERS_GID} --home-dir {contract.HOME} --shell /bin/bash {contract.NB_USER}
install -d -o {contract.NB_UID} -g {contract.USERS_GID} -m 2775 {contract.HOME}
install -d -o {contract.NB_UID} -g {contract.NB_GID} -m 2775 {contract.SKEL}
cp -a /etc/skel/. {contract.SKEL}/
chown -R {contract.NB_UID}:{contract.NB_GID} {contract.SKEL}
install -d -m 0755 {contract.CONT_INIT_DIR} {contract.SERVICES_DIR}
"""


def base(image: Image) -> Image:
    """Debian bookworm with the notebook-server contract: jovyan, /init, s6 supervision."""
    return (
        image.with_env("LANG", "C.UTF-8")
        .with_env("LC_ALL", "C.UTF-8")
        .with_env("PATH", PATH)
        .with_env("SHELL", "/bin/bash")
        .with_file("/etc/dpkg/dpkg.cfg.d/nbpipe-slim", FILES / "dpkg-slim.cfg")
        # Docker's Debian images delete downloaded .debs after every install, which would
        # empty our apt cache mount; our builds keep .debs in the cache, never in layers.
        .with_run("rm -f /etc/apt/apt.conf.d/docker-clean", user="root")
        .with_apt("bash", "ca-certificates", "curl", "git", "procps", "s6", "tzdata")
        .with_run(CREATE_USER, user="root")
        .with_file(contract.INIT, FILES / "init", mode=0o755)
        .with_env("NB_USER", contract.NB_USER)
        .with_env("NB_UID", str(contract.NB_UID))
        .with_env("NB_PREFIX", contract.DEFAULT_NB_PREFIX)
        .with_env("HOME", contract.HOME)
        # Numeric (Kubernetes runAsNonRoot needs it) and without a group: the runtime then
        # takes gid 0 from /etc/passwd and adds supplementary "users" from /etc/group;
        # "1000:0" would drop the supplementary groups.
        .with_user(str(contract.NB_UID))
        .with_workdir(contract.HOME)
        .with_port(contract.PORT)
        .with_entrypoint(contract.INIT)
        .with_label("org.opencontainers.image.source", "https://github.com/nbpipe/nbpipe")
        .with_label("org.opencontainers.image.base.name", pins.DEBIAN_ROOT.ref)
    )


def register(catalog: Catalog) -> None:
    catalog.add("base", pins.DEBIAN_ROOT, base)
