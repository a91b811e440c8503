# ruff: noqa: E501  (the fake tools below are shell scripts, lines as iptables prints them)
"""`.ci/setup-dagger.sh stop` against a fake podman and iptables: a failure to stop is an
exit status and a line saying what was tried, and the port rules netavark leaves for a
killed engine of ours are deleted (bench/dagger_live.md: they blocked the next start)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CID = "f" * 64
CHAIN = "NETAVARK-DN-0123456789ABC"

FAKE_PODMAN = r"""#!/bin/bash
echo "podman $*" >> "$FAKE/calls"
case "$*" in
  "container inspect -f {{.Id}} "*) echo "$CID" ;;
  "container inspect -f {{.State.Running}} "*) cat "$FAKE/running" ;;
  "stop "*) [[ -f $FAKE/stuck ]] && { echo "Error: can only stop running containers: $CID is in state created" >&2; exit 125; }
            echo false > "$FAKE/running" ;;
  "kill "*) [[ -f $FAKE/stuck ]] && { echo "Error: can only kill running containers" >&2; exit 125; } ;;
  *) exit 1 ;;
esac
"""

# iptables as netavark leaves it for a killed container: a jump per host port, commented with
# the id, into the network's chain, which another container's port (8888 -> 40913) shares
FAKE_IPTABLES = r"""#!/bin/bash
echo "iptables $*" >> "$FAKE/calls"
ours="-A $CHAIN -d 127.0.0.1/32 -p tcp -m tcp --dport 5112 -j DNAT --to-destination 10.88.1.134:5112"
theirs="-A $CHAIN -d 127.0.0.1/32 -p tcp -m tcp --dport 40913 -j DNAT --to-destination 10.88.0.59:8888"
case "$*" in
  "-w -t nat -S $CHAIN") [[ -f $FAKE/deleted-dnat ]] || echo "$ours"; echo "$theirs" ;;
  "-w -t nat -S")
    [[ -f $FAKE/deleted-dnat ]] || echo "$ours"; echo "$theirs"
    [[ -f $FAKE/deleted ]] && exit 0
    echo "-A NETAVARK-HOSTPORT-DNAT -p tcp -m tcp --dport 5112 -m comment --comment \"dnat name: podman id: $CID\" -j $CHAIN" ;;
  "-w -t nat -D NETAVARK-HOSTPORT-DNAT "*) touch "$FAKE/deleted" ;;
  "-w -t nat -D $CHAIN "*"--dport 5112 "*) touch "$FAKE/deleted-dnat" ;;
  *) exit 1 ;;
esac
"""


def stop(tmp_path: Path, *, stuck: bool) -> subprocess.CompletedProcess:
    fake = tmp_path / "fake"
    fake.mkdir(exist_ok=True)
    for name, text in {"podman": FAKE_PODMAN, "iptables": FAKE_IPTABLES,
                       "id": "#!/bin/sh\necho 0\n"}.items():
        (fake / name).write_text(text)
        (fake / name).chmod(0o755)
    (fake / "running").write_text("true\n")
    if stuck:
        (fake / "stuck").touch()
    env = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}", "FAKE": str(fake), "CID": CID,
           "CHAIN": CHAIN, "NBPIPE_DAGGER_PREFIX": str(tmp_path / "prefix")}
    return subprocess.run(["bash", str(REPO / ".ci" / "setup-dagger.sh"), "stop"], env=env,
                          capture_output=True, text=True, timeout=60)


def test_a_stop_that_stops_nothing_fails_and_says_what_it_tried(tmp_path) -> None:
    r = stop(tmp_path, stuck=True)
    assert r.returncode != 0, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("setup-dagger: stop: nbpipe-dagger-engine") and "not stopped" in last
    assert "podman says running=true" in last
    assert "podman stop -t 10 nbpipe-dagger-engine: Error: can only stop running" in last
    assert "podman kill: Error: can only kill running containers" in last


def test_stop_deletes_the_port_rules_netavark_left_for_our_engine(tmp_path) -> None:
    r = stop(tmp_path, stuck=False)
    assert r.returncode == 0, r.stderr
    calls = (tmp_path / "fake" / "calls").read_text()
    assert (f'iptables -w -t nat -D NETAVARK-HOSTPORT-DNAT -p tcp -m tcp --dport 5112 -m '
            f'comment --comment dnat name: podman id: {CID} -j {CHAIN}') in calls
    assert (f"iptables -w -t nat -D {CHAIN} -d 127.0.0.1/32 -p tcp -m tcp --dport 5112 -j DNAT "
            "--to-destination 10.88.1.134:5112") in calls, "our port's DNAT in the shared chain"
    assert "--dport 40913" not in calls.replace(f"-S {CHAIN}", ""), "another container's is kept"
    assert f"-F {CHAIN}" not in calls and f"-X {CHAIN}" not in calls, "the chain is shared"


def test_stop_of_an_engine_with_no_rules_left_succeeds(tmp_path) -> None:
    (tmp_path / "fake").mkdir()
    (tmp_path / "fake" / "deleted").touch()
    (tmp_path / "fake" / "deleted-dnat").touch()
    r = stop(tmp_path, stuck=False)
    assert r.returncode == 0, r.stderr
    assert "failed" not in r.stderr
    assert "stopped" in r.stderr.strip().splitlines()[-1]
