"""Checks for a server running as Kubeflow's notebook pod (standard library only).

What Kubeflow itself does with the server, done the same way:
  - the culler (culling_controller.go) GETs http://<svc>/notebook/<ns>/<name>/api/kernels
    with no credentials and Go-decodes it into []KernelStatus, then parses every
    last_activity with time.RFC3339; a body it cannot decode means "never culled";
  - users come through the Istio gateway: Host and Origin are the dashboard's, the path
    keeps /notebook/<ns>/<name>/; JupyterLab saves notebooks through the contents API and
    runs cells in a session's kernel over its websocket.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Callable

from nbpipe.probes import kernel
from nbpipe.probes.checks import Target, _need_jupyter, _need_server
from nbpipe.probes.http import Client, wait_ready
from nbpipe.probes.result import ProbeFailure, ProbeSkip

GATEWAY_HOST = "kubeflow.example.org"
GATEWAY_HEADERS = {
    "Host": GATEWAY_HOST,
    "Origin": f"https://{GATEWAY_HOST}",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-For": "10.0.0.7",
    "kubeflow-userid": "user@example.com",
}
NOTEBOOK = "nbpipe-probe.ipynb"
CELL = "import os\nprint(6 * 7, os.getuid(), os.getcwd())"

# Go's encoding/json and time.RFC3339 ("2006-01-02T15:04:05Z07:00", fraction optional)
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?"
    r"(Z|[+-]\d{2}:\d{2})"
)
_FIELDS = {"id": str, "name": str, "last_activity": str, "execution_state": str, "connections": int}
INT64 = (-(2**63), 2**63 - 1)


class _Float(str):
    """A JSON number literal with a fraction or an exponent (Go will not put it in an int)."""


def rfc3339(value: str) -> datetime:
    """time.Parse(time.RFC3339, value), or ValueError."""
    m = _RFC3339.fullmatch(value)
    if not m:
        raise ValueError(f"{value!r} is not RFC 3339 (2006-01-02T15:04:05Z07:00)")
    y, mo, d, h, mi, s = (int(g) for g in m.groups()[:6])
    zone, offset = m.group(8), timedelta(0)
    if zone != "Z":
        hours, minutes = int(zone[1:3]), int(zone[4:6])
        if hours > 23 or minutes > 59:
            raise ValueError(f"{value!r}: time zone offset out of range")
        offset = (1 if zone[0] == "+" else -1) * timedelta(hours=hours, minutes=minutes)
    frac = int((m.group(7) or ".0")[1:7].ljust(6, "0"))
    return datetime(
        y, mo, d, h, mi, s, frac, tzinfo=timezone(offset)
    )  # ValueError on a day/hour out of range


def decode_kernels(body: bytes) -> list[dict]:
    """The body of /api/kernels as the culler reads it: a JSON array of objects whose id,
    name, last_activity (RFC 3339), execution_state are strings and connections an
    integer. Stricter than Go only where Go would silently read a zero value (a missing
    field or null), which the culler then treats as never idle or unparsable."""
    try:
        data = json.loads(body.decode(), parse_float=_Float, parse_constant=_Float)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProbeFailure(f"not JSON: {exc}") from None
    if not isinstance(data, list):
        raise ProbeFailure(
            f"a JSON {type(data).__name__}, not an array: Go cannot decode it into []KernelStatus"
        )
    out = []
    for i, item in enumerate(data):
        if not isinstance(item, dict):
            raise ProbeFailure(f"kernel [{i}] is {json.dumps(item)[:60]}, not an object")
        lower = {k.lower(): k for k in item}  # Go matches field names case-insensitively
        got = {}
        for field, kind in _FIELDS.items():
            key = field if field in item else lower.get(field)
            value = item.get(key) if key is not None else None
            if value is None:
                raise ProbeFailure(
                    f"kernel [{i}] has no {field!r}: the culler would read "
                    f"{'0' if kind is int else 'an empty string'}"
                )
            if kind is str and (not isinstance(value, str) or isinstance(value, _Float)):
                raise ProbeFailure(
                    f"kernel [{i}] {field} is {json.dumps(value)}: Go cannot "
                    "unmarshal it into a string"
                )
            if kind is int and (
                isinstance(value, (_Float, bool))
                or not isinstance(value, int)
                or not INT64[0] <= value <= INT64[1]
            ):
                shown = value if isinstance(value, _Float) else json.dumps(value)
                raise ProbeFailure(
                    f"kernel [{i}] connections is {shown}: Go cannot unmarshal it into an int"
                )
            got[field] = value
        try:
            rfc3339(got["last_activity"])
        except ValueError as exc:
            raise ProbeFailure(
                f"kernel [{i}] last_activity: {exc}: the culler cannot parse "
                "it and never updates the notebook's last activity"
            ) from None
        out.append(got)
    return out


@dataclass(frozen=True)
class PodFacts:
    """What the pod-mode checks need to know about the pod they run against."""

    service_host: str  # <name>.<ns>.svc.cluster.local: the Host the culler sends
    ready_cpu_bound: float  # cpu-seconds the container may use before its first 200
    ready_wall_bound: float  # seconds from `kube play` to the first 200 (hangs, sleeps)
    cpu_limit: str | None
    started: float  # time.monotonic() just before the pod was played
    uid: int | None = None  # the arbitrary uid an OpenShift pod must run as


def culler_client(t: Target, facts: PodFacts) -> Client:
    """No cookies, no token: what the culler's http.Client sends to the notebook Service."""
    return Client(
        t.base_url, headers={"Host": facts.service_host, "User-Agent": "Go-http-client/1.1"}
    )


def cpu_seconds(t: Target) -> float | None:
    """CPU time the container has used (its cgroup: v1 cpuacct, or v2 cpu.stat)."""
    rc, out = t.run(
        [
            "/bin/sh",
            "-c",
            "f=/sys/fs/cgroup/cpuacct/cpuacct.usage; "
            "if [ -r $f ]; then echo ns $(cat $f); "
            "else echo us $(sed -n 's/^usage_usec //p' /sys/fs/cgroup/cpu.stat); fi",
        ]
    )
    unit, _, value = out.strip().partition(" ")
    if rc != 0 or not value.isdigit():
        return None
    return int(value) / (1e9 if unit == "ns" else 1e6)


def kernels_path(t: Target) -> str:
    return t.prefix + "api/kernels"  # prefix keeps its trailing slash: /notebook/ns/nm/


def pod_checks(facts: PodFacts) -> tuple[Callable[[Target], str], ...]:
    """ready, culler-decode and gateway-notebook, bound to one pod (a check's name is its
    function's: pod-ready, openshift-identity, culler-decode, gateway-notebook)."""

    def pod_ready(t: Target) -> str:
        return _pod_ready(t, facts)

    def openshift_identity(t: Target) -> str:
        return _openshift_identity(t, facts)

    def culler_decode(t: Target) -> str:
        return _culler_decode(t, facts)

    def gateway_notebook(t: Target) -> str:
        return _gateway_notebook(t)

    return pod_ready, openshift_identity, culler_decode, gateway_notebook


def _pod_ready(t: Target, facts: PodFacts) -> str:
    """Bounded twice: by cpu-seconds used until the first 200 (what the start costs, the
    same on a busy CI machine as on an idle node: at the cpu limit it takes cpu-seconds /
    limit of wall time), and by wall time (sleeps and hangs)."""
    _need_server(t)
    path = kernels_path(t) if t.server == "jupyter" else t.ready_path()
    seconds, last = wait_ready(culler_client(t, facts), path, t.ready_timeout)
    total = time.monotonic() - facts.started
    if isinstance(last, str) or last.status != 200:
        got = last if isinstance(last, str) else f"HTTP {last.status}"
        raise ProbeFailure(
            f"GET {path} (the culler's request) gave no 200 "
            f"within {t.ready_timeout:.0f}s (last: {got})"
        )
    t.startup_seconds = total
    cpu = cpu_seconds(t)
    seen = _startup_seen(total, cpu, facts.cpu_limit)
    if cpu is not None and cpu > facts.ready_cpu_bound:
        raise ProbeFailure(
            f"first 200 on {path} {seen}: start-up used more than "
            f"{facts.ready_cpu_bound:.1f} cpu-s; it does too much before the "
            "server listens"
        )
    if total > facts.ready_wall_bound:
        raise ProbeFailure(
            f"first 200 on {path} {seen}: more than "
            f"{facts.ready_wall_bound:.0f}s; start-up waits on something"
        )
    return (
        f"200 on {path} {seen}; bounds {facts.ready_cpu_bound:.1f} cpu-s, "
        f"{facts.ready_wall_bound:.0f}s"
    )


def _startup_seen(total: float, cpu: float | None, cpu_limit: str | None) -> str:
    """What the start cost: wall time after play, and cpu-seconds where they are known."""
    limit = float(cpu_limit) if cpu_limit else None
    if cpu is None:
        return f"{total:.2f}s after play"
    idle = f", {cpu / limit:.1f}s on an idle node" if limit else ""
    return f"{total:.2f}s after play ({cpu:.2f} cpu-s at cpu limit {cpu_limit}{idle})"


def _culler_decode(t: Target, facts: PodFacts) -> str:
    _need_jupyter(t)
    user = Client(t.base_url, headers=dict(GATEWAY_HEADERS))
    kid = kernel.start_kernel(user, t.prefix)  # a kernel, so last_activity is there to parse
    try:
        kernel.execute(user, t.prefix, kid, "pass")
        r = culler_client(t, facts).get(kernels_path(t))
        if r.status != 200:
            raise ProbeFailure(
                f"GET {kernels_path(t)} without credentials answered "
                f"{r.status}: the culler gets nothing and never culls"
            )
        try:
            kernels = decode_kernels(r.body)
        except ProbeFailure as exc:
            raise ProbeFailure(f"the culler cannot decode {kernels_path(t)}: {exc}") from None
        if kid not in [k["id"] for k in kernels]:
            raise ProbeFailure(f"{kernels_path(t)} does not list the running kernel {kid}")
    finally:
        user.request(
            "DELETE", f"{t.prefix}api/kernels/{kid}", headers=kernel.api_headers(user, t.prefix)
        )
    states = ", ".join(sorted({k["execution_state"] for k in kernels}))
    return (
        f"{len(kernels)} kernel(s) decode as []KernelStatus (states: {states}; "
        "last_activity RFC 3339)"
    )


def _gateway_notebook(t: Target) -> str:
    """Save a notebook, open it in a session and run its cell, all through the gateway
    (as JupyterLab does), then read it back."""
    _need_jupyter(t)
    user = Client(t.base_url, headers=dict(GATEWAY_HEADERS))
    headers = kernel.api_headers(user, t.prefix)
    _save_notebook(t, user, headers)
    out = _run_notebook(t, user, headers)
    answer = (out.split() + [""])[0]
    if answer != "42":
        raise ProbeFailure(f"the notebook's cell printed {out!r}, want '42 ...'")
    back = user.get(f"{t.prefix}api/contents/{NOTEBOOK}?content=1")
    if back.status != 200 or back.json()["content"]["cells"][0]["source"] != CELL:
        raise ProbeFailure(f"{NOTEBOOK} did not read back as saved ({back.status})")
    return f"saved {NOTEBOOK} and ran its cell through {GATEWAY_HOST}: {out.strip()}"


def _save_notebook(t: Target, user: Client, headers: dict[str, str]) -> None:
    """PUT api/contents: NOTEBOOK with its one cell, CELL."""
    cell: dict[str, object] = {
        "cell_type": "code",
        "id": "nbpipe-probe",
        "metadata": {},
        "execution_count": None,
        "outputs": [],
        "source": CELL,
    }
    content = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [cell]}
    model = {"type": "notebook", "format": "json", "content": content}
    r = user.request(
        "PUT",
        f"{t.prefix}api/contents/{NOTEBOOK}",
        headers=headers,
        body=json.dumps(model).encode(),
    )
    if r.status not in (200, 201):
        raise ProbeFailure(
            f"saving {NOTEBOOK} through the gateway (PUT api/contents) "
            f"answered {r.status}: {r.body[:200]!r}"
        )


def _run_notebook(t: Target, user: Client, headers: dict[str, str]) -> str:
    """Open NOTEBOOK in a session (POST api/sessions), run CELL in its kernel and close
    the session; returns what the cell printed."""
    session_model = {
        "path": NOTEBOOK,
        "name": NOTEBOOK,
        "type": "notebook",
        "kernel": {"name": "python3"},
    }
    r = user.request(
        "POST", f"{t.prefix}api/sessions", headers=headers, body=json.dumps(session_model).encode()
    )
    if r.status not in (200, 201):
        raise ProbeFailure(
            f"opening {NOTEBOOK} (POST api/sessions) answered {r.status}: {r.body[:200]!r}"
        )
    session = r.json()
    try:
        return kernel.execute(user, t.prefix, session["kernel"]["id"], CELL)
    finally:
        user.request("DELETE", f"{t.prefix}api/sessions/{session['id']}", headers=headers)


def _openshift_identity(t: Target, facts: PodFacts) -> str:
    if facts.uid is None:
        raise ProbeSkip("not an OpenShift pod")
    status = dict(
        line.split(":", 1) for line in t.sh("cat /proc/1/status").splitlines() if ":" in line
    )
    uid, gid = status["Uid"].split()[0], status["Gid"].split()[0]
    if uid != str(facts.uid) or gid != "0":
        raise ProbeFailure(
            f"pid 1 runs as uid {uid} gid {gid}; restricted-v2 gives uid {facts.uid} gid 0"
        )
    if status.get("NoNewPrivs", "").strip() != "1":
        raise ProbeFailure("privilege escalation is allowed (NoNewPrivs 0)")
    if int(status["CapEff"], 16) or int(status["CapBnd"], 16):
        raise ProbeFailure(
            f"capabilities left: CapEff {status['CapEff'].strip()}, "
            f"CapBnd {status['CapBnd'].strip()}"
        )
    return f"uid {uid} gid 0 groups {status['Groups'].strip()}, no new privileges, no capabilities"
