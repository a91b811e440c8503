# nbpipe: the notebook-server contract for Jupyter Server (Kubeflow's notebook controller
# proxies to port 8888 under NB_PREFIX and polls $NB_PREFIX/api/kernels for culling).
import os

c = get_config()  # noqa: F821  (provided by Jupyter's config loader)

c.ServerApp.ip = "0.0.0.0"
c.ServerApp.port = 8888
c.ServerApp.open_browser = False
c.ServerApp.base_url = os.environ.get("NB_PREFIX") or "/"
c.ServerApp.root_dir = os.environ.get("HOME", "/home/jovyan")
# Authentication is Kubeflow's job (Istio + its auth proxy): no token, no password.
c.IdentityProvider.token = ""
c.PasswordIdentityProvider.hashed_password = ""
c.ServerApp.allow_remote_access = True
c.ServerApp.allow_origin = "*"
c.ServerApp.quit_button = False
# The central dashboard frames the server: allow any ancestor.
c.ServerApp.tornado_settings = {
    "headers": {"Content-Security-Policy": "frame-ancestors 'self' *"},
}
c.ServerApp.terminado_settings = {"shell_command": ["/bin/bash"]}
