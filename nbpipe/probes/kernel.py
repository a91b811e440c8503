"""Start a Jupyter kernel and run code in it through the REST and websocket APIs, as
JupyterLab does. A minimal RFC 6455 client: text frames, masking, ping/close."""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import time
import uuid
from urllib.parse import urlsplit

from nbpipe.probes.http import Client
from nbpipe.probes.result import ProbeFailure


class WebSocket:
    def __init__(self, url: str, headers: dict[str, str], timeout: float = 30):
        parts = urlsplit(url)
        self.sock = socket.create_connection((parts.hostname, parts.port or 80), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        headers = {"Host": parts.netloc, **headers}
        lines = [
            f"GET {path} HTTP/1.1",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
            *[f"{k}: {v}" for k, v in headers.items()],
            "",
            "",
        ]
        self.sock.sendall("\r\n".join(lines).encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ProbeFailure(f"websocket {path}: connection closed during the handshake")
            head += chunk
        head, self.buffer = head.split(b"\r\n\r\n", 1)
        status = head.split(b"\r\n", 1)[0].decode(errors="replace")
        if " 101 " not in status + " ":
            raise ProbeFailure(
                f"websocket {path}: expected '101 Switching Protocols', got {status!r}"
            )

    def _read(self, n: int) -> bytes:
        while len(self.buffer) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ProbeFailure("websocket closed by the server")
            self.buffer += chunk
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def send_text(self, text: str) -> None:
        payload = text.encode()
        header = bytearray([0x81])
        n = len(payload)
        if n < 126:
            header.append(0x80 | n)
        elif n < 1 << 16:
            header += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            header += bytes([0x80 | 127]) + struct.pack(">Q", n)
        mask = os.urandom(4)
        header += mask
        self.sock.sendall(bytes(header) + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def recv_text(self) -> str:
        message = b""
        while True:
            b0, b1 = self._read(2)
            opcode, n = b0 & 0x0F, b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._read(8))[0]
            mask = self._read(4) if b1 & 0x80 else None
            data = self._read(n)
            if mask:
                data = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
            if opcode == 0x8:
                raise ProbeFailure("websocket closed by the server")
            if opcode in (0x9, 0xA):  # ping/pong: nothing to do for a short probe
                continue
            message += data
            if b0 & 0x80:
                return message.decode()

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def api_headers(client: Client, prefix: str) -> dict[str, str]:
    """JSON + Jupyter's XSRF header, as JupyterLab sends on every API write."""
    if client.xsrf() is None:
        client.get(prefix + "lab")  # the page sets Jupyter's _xsrf cookie, as for a browser
    return {"Content-Type": "application/json", "X-XSRFToken": client.xsrf() or ""}


def start_kernel(client: Client, prefix: str) -> str:
    r = client.request(
        "POST",
        prefix + "api/kernels",
        body=json.dumps({"name": "python3"}).encode(),
        headers=api_headers(client, prefix),
        timeout=30,
    )
    if r.status not in (200, 201):
        raise ProbeFailure(f"POST {prefix}api/kernels answered {r.status}: {r.body[:200]!r}")
    return r.json()["id"]


def execute(client: Client, prefix: str, kernel_id: str, code: str, timeout: float = 60) -> str:
    """Run ``code`` in a running kernel over its websocket; return its stdout."""
    base = client.base_url.replace("http://", "ws://")
    cookie = "; ".join(f"{c.name}={c.value}" for c in client.cookies)
    ws = WebSocket(
        f"{base}{prefix}api/kernels/{kernel_id}/channels",
        {**client.headers, **({"Cookie": cookie} if cookie else {})},
        timeout=timeout,
    )
    try:
        return _execute(ws, code, timeout)
    finally:
        ws.close()


def run_code(client: Client, prefix: str, code: str, timeout: float = 60) -> str:
    """Start a python3 kernel, execute ``code``, return its stdout; always shut it down."""
    kernel_id = start_kernel(client, prefix)
    try:
        return execute(client, prefix, kernel_id, code, timeout)
    finally:
        client.request(
            "DELETE", f"{prefix}api/kernels/{kernel_id}", headers=api_headers(client, prefix)
        )


def _execute(ws: WebSocket, code: str, timeout: float) -> str:
    msg_id = uuid.uuid4().hex
    ws.send_text(
        json.dumps(
            {
                "header": {
                    "msg_id": msg_id,
                    "username": "nbpipe",
                    "session": uuid.uuid4().hex,
                    "msg_type": "execute_request",
                    "version": "5.3",
                },
                "parent_header": {},
                "metadata": {},
                "channel": "shell",
                "buffers": [],
                "content": {
                    "code": code,
                    "silent": False,
                    "store_history": False,
                    "user_expressions": {},
                    "allow_stdin": False,
                    "stop_on_error": True,
                },
            }
        )
    )
    out: list[str] = []
    replied = idle = False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not (replied and idle):
        msg = json.loads(ws.recv_text())
        if msg.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            out.append(content["text"])
        elif kind == "error":
            raise ProbeFailure(f"kernel raised {content['ename']}: {content['evalue']}")
        elif kind == "execute_reply":
            if content.get("status") != "ok":
                raise ProbeFailure(f"kernel execute_reply status {content.get('status')}")
            replied = True
        elif kind == "status" and content.get("execution_state") == "idle":
            idle = True
    if not (replied and idle):
        raise ProbeFailure(f"kernel did not finish within {timeout:.0f}s")
    return "".join(out)
