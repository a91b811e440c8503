"""Stand-ins the offline tests use where the real thing needs a machine, an engine or a
network; each module names what it replaces.

- ``dagger_engine``: the pinned Dagger engine's API. A GraphQL schema rebuilt from the
  installed dagger-io's generated client, and ``FakeSession``, a transport for dagger-io's
  connection that validates, records and answers every query (no engine, no ``dagger``).
- ``container_cli``: the container CLIs (podman, docker, buildah, skopeo). Executables put
  on PATH that log each call and answer by rules the test sets (``Fake``).
- ``registry``: a registry and an engine that pushes to it, built on ``container_cli``
  (a fake podman and skopeo) for the publishing tests.
- ``engine``: the engine the build-and-probe pipeline drives, in process: it builds
  nothing, keeps a store and records each build.
- ``notebook``: a running notebook container: a Jupyter-like HTTP and websocket server on
  127.0.0.1, a fake ``exec`` and a fake /init, with a knob per contract rule.

Shared fixtures (the module's registered functions, the built wheel and its venv, the CLI's
state folder outside the checkout) are in tests/conftest.py. tests/sdk/bounded.py is not a
fake: it runs the real nbpipe in a subprocess under memory and time limits.
"""
