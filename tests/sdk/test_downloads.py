"""locks/downloads.py against a real HTTP server on loopback: files are fetched over kept
connections and kept only when their sha256 is the lock's."""

from __future__ import annotations

import hashlib
import http.server
import socketserver
import threading

import pytest

from nbpipe.errors import NbpipeError
from nbpipe.locks import downloads
from nbpipe.locks.downloads import LockedFile

BYTES = {name: f"the bytes of {name}".encode() for name in "abcd"}
SHA = {name: hashlib.sha256(data).hexdigest() for name, data in BYTES.items()}


def test_downloads_keep_their_connections_open(tmp_path, monkeypatch) -> None:
    """A host's name is looked up once per connection: this machine's resolver drops about
    one look-up in forty (5 s each), so 30 files must not open 30 connections."""
    connections: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive

        def setup(self) -> None:
            super().setup()
            connections.append(self.client_address[1])

        def do_GET(self) -> None:
            body = BYTES[self.path.strip("/")]
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        for i in range(30):
            name = "abcd"[i % 4]
            f = LockedFile(f"{name}==1.0", SHA[name], "whl", f"{url}/{name}", filename=name)
            assert downloads.download(f, tmp_path / str(i) / name) == len(BYTES[name])
        bad = LockedFile("a==1.0", SHA["b"], "whl", f"{url}/a", filename="a")
        with pytest.raises(NbpipeError, match="sha256"):
            downloads.download(bad, tmp_path / "bad" / "a")
    finally:
        server.shutdown()
        server.server_close()
    assert len(connections) <= 2, f"{len(connections)} connections for 31 files"
    assert not (tmp_path / "bad" / "a").exists()
