"""Stand-ins for a running notebook container, so the contract checks run offline.

``FakeNotebook`` is a real HTTP server on 127.0.0.1 (a Jupyter-like server: pages under
NB_PREFIX, the kernels API, a kernel over a real websocket) plus a fake ``exec`` that
answers the commands the checks run inside a container, and a fake /init that copies the
home skeleton into a host folder and runs the probe's cont-init.d scripts. Every contract
rule has a knob (``Behaviour``) that breaks exactly that rule.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import struct
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from nbpipe.probes import checks, run_notebook
from nbpipe.recipe import contract

RUN_NOTEBOOK = Path(run_notebook.__file__).read_text()

SKELETON = {".bashrc": "# the image's bashrc\n", ".jupyter/lab/user-settings/x.json": "{}\n"}


@dataclass
class Behaviour:
    """A good notebook server; change one field to break one rule of the contract."""

    prefix: str = "/notebook/ns/probe"
    server: str = "jupyter"
    ignore_prefix: bool = False  # serves /lab outside NB_PREFIX too
    kernels_status: int = 200
    kernels_body: bytes = b"[]"
    cors: str | None = "*"  # Access-Control-Allow-Origin; None: header absent
    cors_on_lab: bool = True
    csp: str | None = "frame-ancestors 'self' *"
    xfo: str | None = None  # X-Frame-Options
    uid: int = contract.NB_UID
    gid: int = contract.NB_GID
    groups: tuple[int, ...] = (contract.NB_GID, contract.USERS_GID)
    user_name: str = contract.NB_USER
    home: str = contract.HOME
    service: str | None = "jupyterlab"
    service_up: bool = True
    restarts: bool = True  # s6 starts the service again after kill -9
    skeleton: dict[str, str] = field(default_factory=lambda: dict(SKELETON))
    copy_skeleton: bool = True
    overwrite: bool = False  # the skeleton copy replaces files already in the volume
    init_order: str = "sorted"  # sorted | reversed | none
    kernel_output: str | None = None  # None: the truth (42, uid, cwd)
    modules: frozenset[str] = frozenset({"numpy", "jupyterlab"})
    r_libraries: frozenset[str] = frozenset({"tidyverse"})
    failing_commands: frozenset[str] = frozenset()
    python: str = "3.11"  # what `python3` on PATH is
    # notebooks that fail when run: path -> (cell number, error); the others run through
    failing_notebooks: dict[str, tuple[int, str]] = field(default_factory=dict)


def _frame(text: str) -> bytes:
    """One unmasked text frame, as a server sends it."""
    data = text.encode()
    n = len(data)
    if n < 126:
        head = bytes([0x81, n])
    elif n < 1 << 16:
        head = bytes([0x81, 126]) + struct.pack(">H", n)
    else:
        head = bytes([0x81, 127]) + struct.pack(">Q", n)
    return head + data


def _read_frame(rfile) -> str:
    b0, b1 = rfile.read(2)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack(">H", rfile.read(2))[0]
    elif n == 127:
        n = struct.unpack(">Q", rfile.read(8))[0]
    mask = rfile.read(4) if b1 & 0x80 else b"\0\0\0\0"
    data = rfile.read(n)
    return bytes(b ^ mask[i % 4] for i, b in enumerate(data)).decode()


class FakeNotebook:
    """One fake container: its server (started by ``start``) and its exec."""

    def __init__(self, behaviour: Behaviour, home: Path | None = None):
        self.b = behaviour
        self.home = home
        self.pid = 4242
        self.killed: list[int] = []
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.kernels: dict[str, bool] = {}
        self.notebook_runs: list[list[str]] = []  # the runner's arguments, each time
        self.timeouts: list[float] = []  # the exec timeout of each command
        self.httpd: ThreadingHTTPServer | None = None

    # -- the server -------------------------------------------------------------------
    def start(self, port: int = 0, init_scripts: list[Path] = ()) -> str:
        """Run /init (skeleton, cont-init.d) then serve; returns http://127.0.0.1:PORT."""
        self.init(init_scripts)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True).start()
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def stop(self) -> None:
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()

    def init(self, init_scripts: list[Path] = ()) -> None:
        """What /init does before services start, broken where the behaviour says."""
        if self.home is None:
            return
        if self.b.copy_skeleton:
            for rel, text in self.b.skeleton.items():
                dst = self.home / rel
                if dst.exists() and not self.b.overwrite:
                    continue
                dst.parent.mkdir(parents=True, exist_ok=True)
                dst.write_text(text)
        scripts = sorted(init_scripts, key=lambda p: p.name)
        if self.b.init_order == "reversed":
            scripts.reverse()
        elif self.b.init_order == "none":
            scripts = []
        for script in scripts:  # the real scripts the prober wrote, run with $HOME here
            subprocess.run(["/bin/sh", str(script)], env={"HOME": str(self.home)}, check=True)

    def _handler(self):
        fake = self
        b = self.b
        prefix = b.prefix.rstrip("/") + "/"

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def _send(
                self, status: int, body: bytes, ctype: str = "text/html", cors: bool = True
            ) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                if cors and b.cors is not None:
                    self.send_header("Access-Control-Allow-Origin", b.cors)
                if b.csp is not None:
                    self.send_header("Content-Security-Policy", b.csp)
                if b.xfo is not None:
                    self.send_header("X-Frame-Options", b.xfo)
                self.end_headers()
                self.wfile.write(body)

            def _path(self) -> str:
                fake.requests.append((self.command, self.path, dict(self.headers)))
                path = self.path.split("?")[0]
                if path.startswith(prefix):
                    return "/" + path[len(prefix) :]
                if b.ignore_prefix or b.server != "jupyter":  # others serve at /
                    return path
                return ""

            def do_GET(self) -> None:
                path = self._path()
                if re.fullmatch(r"/api/kernels/[\w-]+/channels", path):
                    return self._websocket(path.split("/")[3])
                if path in ("/", "/lab"):
                    return self._send(200, b"<html><body>lab</body></html>", cors=b.cors_on_lab)
                if path == "/api/kernels":
                    return self._send(b.kernels_status, b.kernels_body, "application/json")
                self._send(404, b"not found")

            def do_POST(self) -> None:
                path = self._path()
                if path == "/api/kernels":
                    kid = f"k{len(fake.kernels) + 1}"
                    fake.kernels[kid] = True
                    return self._send(201, json.dumps({"id": kid}).encode(), "application/json")
                self._send(404, b"not found")

            def do_DELETE(self) -> None:
                path = self._path()
                kid = path.rsplit("/", 1)[-1]
                if path.startswith("/api/kernels/") and kid in fake.kernels:
                    fake.kernels[kid] = False
                    return self._send(204, b"")
                self._send(404, b"not found")

            def _websocket(self, kid: str) -> None:
                key = self.headers["Sec-WebSocket-Key"]
                accept = base64.b64encode(
                    hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()
                ).decode()
                self.send_response(101, "Switching Protocols")
                self.send_header("Upgrade", "websocket")
                self.send_header("Connection", "Upgrade")
                self.send_header("Sec-WebSocket-Accept", accept)
                self.end_headers()
                self.wfile.flush()
                msg = json.loads(_read_frame(self.rfile))
                parent = {"msg_id": msg["header"]["msg_id"]}
                out = b.kernel_output
                if out is None:
                    out = f"42 {b.uid} {b.home}\n"
                replies = [
                    {
                        "msg_type": "status",
                        "parent_header": {"msg_id": "other"},
                        "content": {"execution_state": "busy"},
                    },
                    {
                        "msg_type": "stream",
                        "parent_header": parent,
                        "content": {"name": "stdout", "text": out},
                    },
                    {
                        "msg_type": "execute_reply",
                        "parent_header": parent,
                        "content": {"status": "ok"},
                    },
                    {
                        "msg_type": "status",
                        "parent_header": parent,
                        "content": {"execution_state": "idle"},
                    },
                ]
                for r in replies:
                    self.wfile.write(_frame(json.dumps(r)))
                self.wfile.flush()
                self.close_connection = True

        return Handler

    # -- exec inside the container -------------------------------------------------------
    def exec(self, argv: list[str], timeout: float = 60) -> tuple[int, str]:
        """Answer the commands the checks run, as the container would."""
        b = self.b
        self.timeouts.append(timeout)
        if argv[:2] == ["/bin/sh", "-c"]:
            return self._sh(argv[2])
        if argv[0] == "s6-svstat":
            return self._svstat()
        if argv[:3] == ["python3", "-c", checks.DISTRIBUTIONS_CODE]:
            # the real mapping code, run against this test environment's distributions
            r = subprocess.run(
                [sys.executable, "-c", *argv[2:]], capture_output=True, text=True, timeout=timeout
            )
            return r.returncode, r.stdout + r.stderr
        if argv[:2] == ["python3", "-c"] and argv[2] == RUN_NOTEBOOK:
            self.notebook_runs.append(argv[3:])
            if argv[3] in b.failing_notebooks:
                cell, error = b.failing_notebooks[argv[3]]
                return 1, "kernel log line\n" + run_notebook.MARK + json.dumps(
                    {"cell": cell, "error": error}
                ) + "\n"
            return 0, run_notebook.MARK + json.dumps({"cells": 4, "seconds": 0.5}) + "\n"
        if argv[0] == "python3":
            bad = [m for m in argv[3:] if m not in b.modules]
            return (
                (
                    1,
                    "; ".join(f"{m} (ModuleNotFoundError: No module named '{m}')" for m in bad)
                    + "\n",
                )
                if bad
                else (0, "\n")
            )
        if argv[0] == "Rscript":
            libs = re.findall(r"library\(([\w.]+)\)", argv[2])
            bad = [lib for lib in libs if lib not in b.r_libraries]
            return (1, f"Error: there is no package called '{bad[0]}'\n") if bad else (0, "")
        return 127, f"fake container: no such command {argv[0]}\n"

    def _svstat(self) -> tuple[int, str]:
        if not self.b.service_up:
            return 0, "false -1\n"
        if self.pid in self.killed:
            if not self.b.restarts:
                return 0, "false -1\n"
            self.pid += 1
        return 0, f"true {self.pid}\n"

    def _sh(self, script: str) -> tuple[int, str]:
        b = self.b
        ids = {
            "id -u": f"{b.uid}\n",
            "id -g": f"{b.gid}\n",
            "id -G": " ".join(map(str, b.groups)) + "\n",
        }
        if script in ids:
            return 0, ids[script]
        if m := re.fullmatch(r"getent passwd (\d+) \| cut -d: -f1", script):
            return 0, (b.user_name + "\n") if int(m.group(1)) == b.uid else "\n"
        if script.startswith("s6-svstat "):
            return self._svstat()
        if m := re.fullmatch(r"cat /proc/(\d+)/status", script):
            if int(m.group(1)) != self.pid:
                return 1, f"cat: /proc/{m.group(1)}/status: No such file or directory\n"
            return 0, (
                f"Name:\tjupyter-lab\nPid:\t{self.pid}\n"
                f"Uid:\t{b.uid}\t{b.uid}\t{b.uid}\t{b.uid}\n"
                f"Gid:\t{b.gid}\t{b.gid}\t{b.gid}\t{b.gid}\n"
                f"Groups:\t{' '.join(map(str, b.groups))}\n"
            )
        if re.search(r"/proc/\d+/environ", script) or script == "env":
            return 0, (
                f"PATH=/usr/bin\nHOME={b.home}\nNB_PREFIX={b.prefix}\nEMPTY=\n"
                "JUPYTER_ARGS=--ServerApp.base_url=/x\n"
            )  # '=' inside a value
        if script == f"cd {contract.SKEL} && find . -mindepth 1 -type f":
            return 0, "".join(f"./{rel}\n" for rel in b.skeleton)
        if m := re.fullmatch(r"kill -9 (\d+)", script):
            self.killed.append(int(m.group(1)))
            return 0, ""
        if script.startswith("python3 -c ") and "sys.version_info[:2]" in script:
            return 0, b.python + "\n"
        if script in b.failing_commands:
            return 1, f"sh: {script}: failed\n"
        if script.startswith("echo ") or script.endswith("--version"):
            return 0, "ok\n"
        return 127, f"sh: fake container: unknown command {script!r}\n"


def labels(b: Behaviour, **extra: str) -> dict[str, str]:
    """The labels a built image of that server carries."""
    out = {contract.LABEL_SERVER: b.server}
    if b.service:
        out[contract.LABEL_SERVICE] = b.service
    out.update(extra)
    return out
