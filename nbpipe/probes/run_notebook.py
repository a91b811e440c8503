"""Execute one notebook top to bottom with nbclient, inside the image (not imported by
nbpipe: its source is sent to the image's python3). Prints one RESULT line of JSON.

    python3 run_notebook.py PATH TIMEOUT [PID]

PATH is relative to $HOME unless absolute; it runs in its own folder, as Binder users
expect. TIMEOUT bounds the whole notebook once its kernel is up (each cell gets what is
left). PID: run with
that process's environment (the server's, so the kernel sees what a repository's
`start` exported, as the server's own kernels do). Exit 0: ran; 1: a cell failed or
time ran out; 2: it could not be run at all.
"""

import json
import os
import sys
import time

MARK = "NBPIPE-NOTEBOOK-RESULT "


def report(code: int, **fields) -> None:
    print(MARK + json.dumps(fields), flush=True)
    sys.exit(code)


def main() -> None:
    path, timeout = sys.argv[1], float(sys.argv[2])
    full = path if os.path.isabs(path) else os.path.join(os.environ.get("HOME", "."), path)
    if len(sys.argv) > 3:
        with open(f"/proc/{int(sys.argv[3])}/environ", "rb") as f:
            entries = [e.decode(errors="replace") for e in f.read().split(b"\0") if b"=" in e]
        os.environ.clear()
        os.environ.update(e.partition("=")[::2] for e in entries)
    try:
        import nbformat
        from jupyter_client.kernelspec import KernelSpecManager
        from nbclient import NotebookClient
        from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
    except ImportError as exc:
        report(2, error=f"nbclient is not in the image ({exc}); pip install nbclient")
    try:
        nb = nbformat.read(full, as_version=4)
    except Exception as exc:  # missing, unreadable or not a notebook
        report(2, error=f"cannot read it: {type(exc).__name__}: {exc}")
    spec = nb.metadata.get("kernelspec", {})
    kernel = spec.get("name") or "python3"
    if kernel not in KernelSpecManager().find_kernel_specs():
        language = (
            spec.get("language") or nb.metadata.get("language_info", {}).get("name") or "python"
        )
        if language != "python":
            report(2, error=f"its kernel {kernel!r} ({language}) is not installed in the image")
        kernel = "python3"  # e.g. a conda env's kernel name: the image's Python kernel
    client = NotebookClient(
        nb,
        timeout=int(timeout),
        kernel_name=kernel,
        resources={"metadata": {"path": os.path.dirname(full)}},
    )
    started = time.monotonic()
    deadline = started + timeout
    cell = 0
    try:
        with client.setup_kernel():  # (bounded by nbclient's own startup_timeout)
            started = time.monotonic()  # the notebook's time starts once its kernel is up
            deadline = started + timeout
            client.reset_execution_trackers()
            for index, c in enumerate(nb.cells):
                cell = index + 1
                if c.cell_type != "code":
                    continue
                left = deadline - time.monotonic()
                if left <= 0:
                    raise CellTimeoutError("time ran out")
                client.timeout = max(1, int(left))
                client.execute_cell(c, index)
    except CellExecutionError as exc:
        report(1, cell=cell, error=f"{exc.ename}: {exc.evalue}".strip().rstrip(":"))
    except (CellTimeoutError, TimeoutError):
        report(1, cell=cell, error=f"the notebook did not finish within {timeout:.0f}s")
    except DeadKernelError as exc:
        report(1, cell=cell, error=f"the kernel died: {exc}")
    except Exception as exc:
        report(2, cell=cell, error=f"{type(exc).__name__}: {exc}")
    report(0, cells=len(nb.cells), seconds=round(time.monotonic() - started, 2))


if __name__ == "__main__":
    main()
