"""Reading what others wrote and writing our own state, safely.

Specs, Binder repos, plans, locks and probe records come from people and runs we do not
control, and CI runs nbpipe unattended on a machine with secrets. So every read here is
bounded (bytes, nesting depth, YAML alias expansion), decodes UTF-8 with an error that
names the file and line, and can be kept inside a folder (symlinks resolved); every
state write is atomic (temp file + rename), and a folder of state can be locked so two
runs never interleave. Errors are ``NbpipeError`` (or the class the caller passes) with
one line that names the file and never quotes a file's contents.
"""

from __future__ import annotations

import atexit
import errno
import fcntl
import json
import os
import shutil
import signal
import stat
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Callable, Iterator

import yaml

from nbpipe.errors import NbpipeError
from nbpipe.inputs import yamldata

MAX_BYTES = 1 << 20  # a spec, a requirements file, a postBuild: 1 MiB is generous
MAX_JSON_BYTES = 64 << 20  # lock files and plans of a large family
MAX_DEPTH = 64  # nesting of YAML/JSON collections
MAX_NODES = 100_000  # YAML nodes after alias expansion (what a consumer would walk)
MAX_EXPANDED = 8 << 20  # bytes of YAML text after alias expansion (8x the biggest file)

Error = type[NbpipeError]
# libyaml's parser when PyYAML has it (Debian's and PyPI's wheels do): a 1 MiB YAML file
# parses in about a second instead of fifteen. Same events, nodes, marks and errors.
Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_bytes(
    path: Path, what: str | None = None, *, limit: int = MAX_BYTES, error: Error = NbpipeError
) -> bytes:
    """The bytes of a regular file, refusing anything larger than ``limit`` (and FIFOs,
    devices and folders, which have no end or no content)."""
    label = what or str(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise error(f"{label}: cannot read: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = "a folder" if stat.S_ISDIR(st.st_mode) else "not a regular file"
            raise error(f"{label}: {kind}; give a file")
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        data = b"".join(chunks)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise error(f"{label}: larger than {limit:,} bytes; nbpipe refuses bigger files")
    return data


def read_text(
    path: Path, what: str | None = None, *, limit: int = MAX_BYTES, error: Error = NbpipeError
) -> str:
    """A file's text, which must be UTF-8 (the error says at which line it is not)."""
    data = read_bytes(path, what, limit=limit, error=error)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise error(f"{what or path}:{line}: not UTF-8 text; save the file as UTF-8") from None


class Budget:
    """Bytes one input may make nbpipe read in all: a spec and every file it names (a
    file named twice counts twice), so 60 entries copying one 60 MiB file are refused
    instead of filling memory."""

    def __init__(self, limit: int, what: str, *, error: Error = NbpipeError) -> None:
        self.limit, self.what, self.error, self.used = limit, what, error, 0

    def take(self, size: int, where: str) -> None:
        self.used += size
        if self.used > self.limit:
            raise self.error(
                f"{where}: {self.what} names more than {self.limit >> 20} MiB of "
                "files in all (a file named twice counts twice); nbpipe refuses "
                "more"
            )


def inside(root: Path, rel: str, what: str, *, error: Error = NbpipeError) -> Path:
    """``root/rel`` with symlinks resolved, refused unless it stays inside ``root``.

    ``rel`` must be relative: an absolute path, a ``..`` or a symlink that leads out
    of ``root`` would let someone else's spec or repo copy this machine's files."""
    if not rel or "\x00" in rel:
        raise error(f"{what}: give a path relative to {root}")
    if os.path.isabs(rel):
        raise error(f"{what}: {rel!r} is absolute; give a path relative to {root}")
    base = Path(root).resolve()
    try:
        target = (base / rel).resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop
        raise error(f"{what}: {rel!r} cannot be resolved ({exc})") from None
    if not target.is_relative_to(base):
        raise error(
            f"{what}: {rel!r} leads outside {root} (symlinks are followed); "
            "only files inside it may be used"
        )
    return target


# -- YAML and JSON --------------------------------------------------------------------


def compose_yaml(text: str, where: str, *, error: Error = NbpipeError) -> yaml.Node | None:
    """The YAML node tree (never constructed objects, so aliases are not expanded),
    refused if nested deeper than MAX_DEPTH or if expanding its aliases would visit
    more than MAX_NODES nodes (an alias bomb)."""
    try:
        depth = 0
        for event in yaml.parse(text, Loader=Loader):  # streaming: no recursion
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    line = event.start_mark.line + 1 if event.start_mark else "?"
                    raise error(f"{where}:{line}: nested too deeply (more than {MAX_DEPTH} levels)")
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
        root = yaml.compose(text, Loader=Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "context_mark", None) or getattr(exc, "problem_mark", None)
        at = f"{where}:{mark.line + 1}" if mark else where
        context = getattr(exc, "context", None)
        context = f"{context}, " if context else ""
        problem = getattr(exc, "problem", None) or "cannot parse"
        if "nesting depth" in problem:  # libyaml's own cap, met before ours in flow style
            raise error(f"{at}: nested too deeply (more than {MAX_DEPTH} levels)") from None
        raise error(f"{at}: not valid YAML: {context}{problem}") from None
    except RecursionError:
        raise error(f"{where}: nested too deeply (more than {MAX_DEPTH} levels)") from None
    if root is not None:
        check_yaml(root, where, error=error)
    return root


def check_yaml(root: yaml.Node, where: str, *, error: Error = NbpipeError) -> None:
    """Depth and expanded size of a composed tree (shared nodes counted once per use):
    at most MAX_NODES nodes and MAX_EXPANDED bytes of text once every alias is written
    out, so a few hundred kB anchor used thousands of times is refused, not copied."""
    sizes: dict[int, tuple[int, int]] = {}
    over = (MAX_NODES + 1, MAX_EXPANDED + 1)

    def size(node: yaml.Node, depth: int) -> tuple[int, int]:
        if depth > MAX_DEPTH:
            line = node.start_mark.line + 1
            raise error(f"{where}:{line}: nested too deeply (more than {MAX_DEPTH} levels)")
        if id(node) in sizes:
            return sizes[id(node)]
        sizes[id(node)] = over  # a node inside itself (a recursive alias)
        n, b = 1, 0
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [c for kv in node.value for c in kv]
        else:
            children, b = [], len(node.value)
        for child in children:
            cn, cb = size(child, depth + 1)
            n, b = min(n + cn, over[0]), min(b + cb, over[1])
        sizes[id(node)] = (n, b)
        return n, b

    nodes, text = size(root, 0)
    if nodes > MAX_NODES:
        raise error(
            f"{where}: too large once its aliases (*name) are expanded "
            f"(more than {MAX_NODES:,} nodes); write the values out"
        )
    if text > MAX_EXPANDED:
        raise error(
            f"{where}: too large once its aliases (*name) are expanded (more than "
            f"{MAX_EXPANDED >> 20} MiB of text); write the values out once"
        )


def load_yaml(
    path: Path, what: str | None = None, *, limit: int = MAX_BYTES, error: Error = NbpipeError
) -> Any:
    """Plain data (dicts, lists, strings, numbers) from a YAML file, bounded as above."""
    where = what or str(path)
    return load_yaml_text(read_text(path, where, limit=limit, error=error), where, error=error)


def load_yaml_text(text: str, where: str, *, error: Error = NbpipeError) -> Any:
    """Plain data from YAML text, bounded as above; every conversion guarded and merge
    keys merged (nbpipe.inputs.yamldata)."""
    root = compose_yaml(text, where, error=error)
    return None if root is None else yamldata.plain(root, where, error=error)


def load_json(
    path: Path, what: str | None = None, *, limit: int = MAX_JSON_BYTES, error: Error = NbpipeError
) -> Any:
    """Data from a JSON file, bounded in size and depth. Check its shape before use."""
    where = what or str(path)
    text = read_text(path, where, limit=limit, error=error)
    try:
        data = json.loads(text)
    except RecursionError:
        raise error(f"{where}: nested too deeply") from None
    except ValueError as exc:
        raise error(f"{where}: not valid JSON ({exc})") from None
    _json_depth(data, where, error)
    return data


def _json_depth(data: Any, where: str, error: Error) -> None:
    stack: list[tuple[Any, int]] = [(data, 0)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise error(f"{where}: nested too deeply (more than {MAX_DEPTH} levels)")
        if isinstance(value, dict):
            stack += [(v, depth + 1) for v in value.values()]
        elif isinstance(value, list):
            stack += [(v, depth + 1) for v in value]


# -- state we write ---------------------------------------------------------------------

_NOFOLLOW_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


def out_dir(folder: Path, what: str = "") -> Path:
    """A folder nbpipe writes into, made if missing. Refused in one line when it is a
    symbolic link (dangling or not: a link in an output path may have been planted by
    the input, e.g. a committed ``build`` link in a repository), not a folder, or
    cannot be made or written (a read-only parent)."""
    folder = Path(folder)
    label = f"{what} {folder}" if what else str(folder)
    if folder.is_symlink():
        where = os.readlink(folder)
        gone = "" if folder.exists() else ", which does not exist"
        raise NbpipeError(
            f"{label}: is a symbolic link (to {where!r}{gone}); nbpipe writes "
            "only into a real folder: remove the link or give another folder"
        )
    if folder.exists() and not folder.is_dir():
        raise NbpipeError(f"{label}: exists and is not a folder; give a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NbpipeError(
            f"{label}: cannot make this folder: {exc.strerror or exc}{_at(exc, folder)}"
        ) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise NbpipeError(f"{label}: cannot write into this folder (permission denied)")
    return folder


def _at(exc: OSError, folder: Path) -> str:
    name = exc.filename
    return f" ({name})" if name and str(name) != str(folder) else ""


class OutDir:
    """Writes under one output folder that never follow a symbolic link below it.

    Every folder on the way is opened with O_NOFOLLOW (a link where nbpipe puts a folder
    is refused, naming it); every file is written whole to a temporary name and renamed
    into place, so a link where a file goes is replaced, never written through. The
    folder itself is held open, so swapping it for a link midway changes nothing."""

    def __init__(self, folder: Path, what: str = "") -> None:
        self.folder = out_dir(folder, what)
        try:
            self.fd = os.open(self.folder, _NOFOLLOW_DIR)
        except OSError as exc:
            raise NbpipeError(
                f"{self.folder}: cannot open this folder: {exc.strerror or exc}"
            ) from None

    def __enter__(self) -> "OutDir":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def _parent(self, rel: str) -> tuple[int, str]:
        """An fd of rel's folder (made as needed, links refused) and rel's last name."""
        parts = rel.split("/")
        if not rel or rel.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise NbpipeError(f"{self.folder}: {rel!r} is not a plain relative path")
        fd = os.dup(self.fd)
        try:
            for i, part in enumerate(parts[:-1]):
                try:
                    os.mkdir(part, 0o755, dir_fd=fd)
                except FileExistsError:
                    pass
                try:
                    nfd = os.open(part, _NOFOLLOW_DIR, dir_fd=fd)
                except OSError as exc:
                    sub = self.folder.joinpath(*parts[: i + 1])
                    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                        kind = "a symbolic link" if sub.is_symlink() else "a file"
                        raise NbpipeError(
                            f"{sub}: is {kind} where nbpipe writes a folder, and "
                            "nbpipe did not make it: remove it or write "
                            "elsewhere"
                        ) from None
                    raise NbpipeError(f"{sub}: cannot open: {exc.strerror or exc}") from None
                os.close(fd)
                fd = nfd
        except BaseException:
            os.close(fd)
            raise
        return fd, parts[-1]

    def write(self, rel: str, data: str | bytes, mode: int = 0o644) -> Path:
        """``folder/rel`` written whole: old or new content, never part, never through a
        link."""
        blob = data.encode() if isinstance(data, str) else data
        fd, name = self._parent(rel)
        tmp = f".{name}.{os.urandom(6).hex()}.tmp"
        try:
            out = os.open(
                tmp,
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0),
                0o600,
                dir_fd=fd,
            )
            try:
                with os.fdopen(out, "wb") as f:
                    f.write(blob)
                    f.flush()
                    os.fsync(f.fileno())
                    os.fchmod(f.fileno(), mode)
                os.replace(tmp, name, src_dir_fd=fd, dst_dir_fd=fd)  # replaces a link
            except BaseException:
                try:
                    os.unlink(tmp, dir_fd=fd)
                except OSError:
                    pass
                raise
        except IsADirectoryError:
            raise NbpipeError(
                f"{self.folder / rel}: is a folder where nbpipe writes a file; "
                "remove it or write elsewhere"
            ) from None
        finally:
            os.close(fd)
        return self.folder / rel

    def open(self, rel: str) -> IO[str]:
        """A new text file at ``folder/rel`` for streaming (a log): whatever was there,
        a link included, is removed first, never opened."""
        fd, name = self._parent(rel)
        try:
            try:
                os.unlink(name, dir_fd=fd)
            except FileNotFoundError:
                pass
            out = os.open(
                name,
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0),
                0o644,
                dir_fd=fd,
            )
        except OSError as exc:
            raise NbpipeError(f"{self.folder / rel}: cannot write: {exc.strerror or exc}") from None
        finally:
            os.close(fd)
        return os.fdopen(out, "w")

    def link(self, src: Path, rel: str) -> Path:
        """A hard link at ``folder/rel`` to ``src`` (a file of nbpipe's own, on the same
        file system), made in a folder reached without following a link."""
        fd, name = self._parent(rel)
        try:
            os.link(src, name, dst_dir_fd=fd, follow_symlinks=False)
        except OSError as exc:
            raise NbpipeError(f"{self.folder / rel}: cannot link: {exc.strerror or exc}") from None
        finally:
            os.close(fd)
        return self.folder / rel

    def rename(self, rel: str, to: str) -> bool:
        """``rel`` renamed ``to``, both names right in this folder; False where ``to``
        exists already (a folder someone else put there first)."""
        for name in (rel, to):
            if "/" in name or name in ("", ".", ".."):
                raise NbpipeError(f"{self.folder}: {name!r} is not a plain name")
        try:
            os.rename(rel, to, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        except OSError as exc:
            if exc.errno in (errno.EEXIST, errno.ENOTEMPTY, errno.EISDIR, errno.ENOTDIR):
                return False
            raise NbpipeError(
                f"{self.folder / rel}: cannot rename: {exc.strerror or exc}"
            ) from None
        return True

    def is_dir(self, name: str) -> bool:
        """Whether ``name`` right in this folder is a real folder (a link is not)."""
        try:
            st = os.stat(name, dir_fd=self.fd, follow_symlinks=False)
        except OSError:
            return False
        return stat.S_ISDIR(st.st_mode)

    def chmod(self, rel: str, mode: int) -> None:
        """The mode of a file or folder this writer made (a link there is refused)."""
        fd, name = self._parent(rel)
        try:
            target = os.open(
                name,
                os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0),
                dir_fd=fd,
            )
        except OSError as exc:
            raise NbpipeError(
                f"{self.folder / rel}: cannot set its mode: {exc.strerror or exc}"
            ) from None
        finally:
            os.close(fd)
        try:
            os.fchmod(target, mode)
        finally:
            os.close(target)


def new_file(path: Path) -> IO[str]:
    """A fresh text file to stream into (a build log), in a real folder, never opened
    through a link (see OutDir.open)."""
    path = Path(path)
    with OutDir(path.parent) as out:
        return out.open(path.name)


def atomic_write(
    path: Path, data: str | bytes, mode: int = 0o644, *, root: Path | None = None
) -> Path:
    """Write ``path`` so that readers see the old file or the whole new one, never part
    (a temporary file in the same folder, flushed, then renamed over it), and never
    through a symbolic link: ``root`` (default: the file's folder) must be a real folder
    and nothing below it is followed (see OutDir)."""
    path = Path(path)
    base = Path(root) if root is not None else path.parent
    with OutDir(base) as out:
        out.write(path.relative_to(base).as_posix(), data, mode)
    return path


def read_record(
    path: Path, valid: Callable[[Any], bool], warn: Callable[[str], None]
) -> Any | None:
    """A state record we wrote before, or None if there is none. A damaged one (cut
    short, wrong shape) is not fatal: ``warn`` hears why, and the caller rebuilds it."""
    if not path.exists():
        return None
    try:
        data = load_json(path)
        if valid(data):
            return data
        why = "not the shape nbpipe writes"
    except NbpipeError as exc:
        why = str(exc)
    warn(f"ignoring the damaged record {path} ({why}); it will be written again")
    return None


_held: dict[Path, int] = {}  # lock file -> how many times this process holds it
_held_guard = threading.Lock()


@contextmanager
def locked(
    folder: Path, *, wait: float = 3600.0, on_wait: Callable[[str], None] = lambda message: None
) -> Iterator[Path]:
    """Hold the lock on a state folder (its file ``lock``) while a run writes there.

    A second run waits (``on_wait`` hears which process holds it) and gives up after
    ``wait`` seconds naming that process. Reentrant within one process."""
    folder = out_dir(Path(folder))  # a state folder that is a link is refused
    lock = folder.resolve() / "lock"
    with _held_guard:
        if _held.get(lock):
            _held[lock] += 1
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield lock
        finally:
            with _held_guard:
                _held[lock] -= 1
        return
    try:  # O_NOFOLLOW: a planted `lock` link must not make us truncate what it points at
        fd = os.open(
            lock,
            os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0),
            0o644,
        )
    except OSError as exc:
        raise NbpipeError(
            f"{lock}: cannot open the lock file: {exc.strerror or exc} (a "
            "symbolic link or a special file there? remove it)"
        ) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise NbpipeError(f"{lock}: not a regular file; remove it")
    try:
        deadline = time.monotonic() + wait
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
            holder = _holder(fd)
            if time.monotonic() >= deadline:
                raise NbpipeError(
                    f"{folder} is in use by {holder}; wait for it to finish or use another folder"
                )
            if not told:
                on_wait(f"waiting: {folder} is in use by {holder}")
                told = True
            time.sleep(0.2)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        with _held_guard:
            _held[lock] = 1
        try:
            yield lock
        finally:
            with _held_guard:
                _held.pop(lock, None)
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _holder(fd: int) -> str:
    try:
        pid = os.pread(fd, 32, 0).decode().strip()
    except (OSError, UnicodeDecodeError):
        pid = ""
    return f"process {pid}" if pid.isdigit() else "another nbpipe run"


# -- secrets on disk --------------------------------------------------------------------

_temporary: set[Path] = set()  # private folders that must not outlive this process


@contextmanager
def private_dir(prefix: str = "nbpipe-") -> Iterator[Path]:
    """A folder only this user can read, for a secret (a registry auth file), removed on
    every way out: normally, on an exception, on SIGTERM/SIGHUP/SIGINT (even while a
    worker thread is using it) and at interpreter exit."""
    exit_on_signals()
    path = Path(tempfile.mkdtemp(prefix=prefix))  # mode 0700
    _temporary.add(path)
    try:
        yield path
    finally:
        _remove(path)


def _remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    _temporary.discard(path)


def _remove_all() -> None:
    for path in list(_temporary):
        _remove(path)


atexit.register(_remove_all)


def exit_on_signals() -> None:
    """Make SIGTERM and SIGHUP end the process like an exception does (``finally``
    blocks run, private folders go) where nobody handles them yet. Only the main
    thread may set handlers; elsewhere this does nothing (atexit still cleans up)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) in (signal.SIG_DFL, None):
            signal.signal(sig, _exit)


def _exit(signum: int, frame: object) -> None:
    _remove_all()  # first: a worker thread may hold one and never reach its `finally`
    raise SystemExit(128 + signum)
