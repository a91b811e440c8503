"""The notebook-server contract as constants (stdlib only: probes import this too).

Kubeflow's notebook controller and its culler rely on these facts; images, probes and
docs all read them from here so they can never disagree.
"""

from __future__ import annotations

NB_USER = "jovyan"
NB_UID = 1000
NB_GID = 0  # primary group root: random-UID platforms (OpenShift) still get group access
USERS_GID = 100  # supplementary group "users"
HOME = "/home/jovyan"
PORT = 8888
DEFAULT_NB_PREFIX = "/"

# Where build steps put files that belong in $HOME: /init copies them into the (possibly
# empty, freshly mounted) home at start, never overwriting what is already there.
SKEL = "/etc/nbpipe/skel"
CONT_INIT_DIR = "/etc/cont-init.d"
SERVICES_DIR = "/etc/services.d"
INIT = "/init"

# The Python environment of Jupyter images: a venv of the distribution's Python, owned by
# jovyan so that users can `pip install` into it at run time, as in Kubeflow's conda.
VENV = "/opt/venv"
VENV_PYTHON = f"{VENV}/bin/python"

# Labels that make a built image self-describing, so `nbpipe test REF` needs no catalog.
LABEL_SERVER = "io.nbpipe.server"  # jupyter | codeserver | rstudio
LABEL_IMPORTS = "io.nbpipe.probe.imports"  # comma-separated Python modules
LABEL_R_LIBRARIES = "io.nbpipe.probe.r-libraries"  # comma-separated R packages
LABEL_COMMANDS = "io.nbpipe.probe.commands"  # JSON list of shell commands that must exit 0
LABEL_DISTRIBUTIONS = "io.nbpipe.probe.distributions"  # comma-separated pip distributions
LABEL_NOTEBOOKS = "io.nbpipe.probe.notebooks"  # JSON list: paths relative to $HOME or absolute
LABEL_NOTEBOOK_TIMEOUT = "io.nbpipe.probe.notebook-timeout"  # seconds for each notebook
NOTEBOOK_TIMEOUT = 600
LABEL_PYTHON = "io.nbpipe.python"  # X.Y of `python3` on PATH (checked by a probe)
LABEL_RUNNER_TAGS = "io.nbpipe.runner-tags"  # comma-separated: cuda, gaudi
LABEL_SERVICE = "io.nbpipe.service"  # the services.d name of the main server process
LABEL_NAME = "io.nbpipe.image"
LABEL_DIGEST = "io.nbpipe.digest"


def listed(labels: dict[str, str], key: str) -> list[str]:
    """The items of a comma-separated label (imports, R libraries, runner tags)."""
    return [x for x in labels.get(key, "").split(",") if x]
