"""Where ldmpick keeps its files, and how it writes them: atomically, under a lock."""

from __future__ import annotations

import json
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ldmpick.files.errors import RuntimeFailure, UsageError

APP_NAME = "ldmpick"


def data_dir() -> Path:
    """User data folder (profiles, quality tables). ``LDMPICK_HOME`` overrides it (tests use a tmpdir)."""
    home = os.environ.get("LDMPICK_HOME")
    if home:
        return Path(home) / "data"
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def config_dir() -> Path:
    """User config folder (model registry). ``LDMPICK_HOME`` overrides it."""
    home = os.environ.get("LDMPICK_HOME")
    if home:
        return Path(home) / "config"
    import platformdirs

    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))


def profiles_dir() -> Path:
    return data_dir() / "profiles"


def check_output_target(path: Path) -> None:
    """Refuse to replace anything but a plain regular file: the atomic rename would turn a symlink, device or FIFO
    (``-o /dev/stdout``) into a regular file and split a hard link. Raises a one-line ``UsageError``."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise RuntimeFailure(f"cannot write '{path}': {exc.strerror}") from None
    if stat.S_ISLNK(st.st_mode):
        raise UsageError(f"'{path}' is a symbolic link; ldmpick does not write through links (name the real file)")
    if stat.S_ISDIR(st.st_mode):
        raise UsageError(f"'{path}' is a folder; name a file to write")
    if not stat.S_ISREG(st.st_mode):
        raise UsageError(f"'{path}' is not a regular file (a device, FIFO or socket); ldmpick writes only regular files")
    if st.st_nlink > 1:
        raise UsageError(f"'{path}' has {st.st_nlink} hard links; replacing it would split them (name another file)")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see either the old file or the complete new one.

    Temp file in the same folder, fsync, rename over the target, fsync the folder.
    """
    path = Path(path)
    folder = path.parent
    if not folder.is_dir():
        raise RuntimeFailure(f"output folder '{folder}' does not exist")
    check_output_target(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise RuntimeFailure(f"cannot write to '{folder}': {exc.strerror}") from None
    try:
        # mkstemp creates 0600; give the file the mode a plain open() would (or keep the old file's mode)
        try:
            mode = path.stat().st_mode & 0o777
        except OSError:
            mode = new_file_mode()
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    fsync_folder(folder)


def fsync_folder(folder: Path) -> None:
    """Make a rename or link in ``folder`` durable (best effort: some file systems cannot fsync a folder)."""
    try:
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


def new_file_mode() -> int:
    """The mode a plain ``open(path, "w")`` would give a new file (mkstemp's temporary files are 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, allow_nan=False) + "\n")


@contextmanager
def file_lock(path: Path, timeout_s: float = 60.0) -> Iterator[None]:
    """Hold an exclusive inter-process lock on ``path``.

    The lock file lives in the user data folder (``locks/``, named by a hash of ``path``'s absolute location), not
    beside ``path``: nothing is left next to the files a user asked for. Lock files are not deleted on release
    (deleting one while another process waits on it would let two processes hold "the" lock)."""
    from filelock import FileLock, Timeout

    lock = FileLock(str(lock_file_for(path)))
    try:
        lock.acquire(timeout=timeout_s)
    except Timeout:
        raise RuntimeFailure(f"'{path}' is locked by another ldmpick process; try again later") from None
    try:
        yield
    finally:
        lock.release()


def lock_file_for(path: Path) -> Path:
    """Where the lock of ``path`` is kept: ``<data folder>/locks/<sha256 of its absolute path>.lock``."""
    import hashlib

    key = hashlib.sha256(os.fsencode(os.path.realpath(Path(path).expanduser()))).hexdigest()[:32]
    folder = data_dir() / "locks"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        import errno

        message = f"cannot create the lock folder '{folder}': {exc.strerror}"
        if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):  # the user's folder, the user's to fix: exit 2
            raise UsageError(f"{message} (ldmpick's data folder must be writable; LDMPICK_HOME moves it)") from None
        raise RuntimeFailure(message) from None
    return folder / f"{key}.lock"


FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """A value as a CSV cell that spreadsheets show rather than run: text starting with ``= + - @``, a tab or a
    carriage return gets a leading ``'`` (OWASP's advice for CSV injection); numbers, and text that is a number
    (``-1.5``), are left as they are."""
    if not isinstance(value, str) or not value.startswith(FORMULA_TRIGGERS):
        return value
    try:
        float(value)
        return value
    except ValueError:
        return "'" + value
