"""Results directories: who may write where, one writer at a time, and atomic commits.

Every command writes into one directory: ``run`` and ``calibrate`` into
``results/<name>/``, ``psa``, ``dsa`` and ``sweep`` into its ``psa/``, ``dsa/`` and
``sweep/`` (or wherever ``--out`` says). The rules, checked before any work starts:

- simseq writes only into a new or empty directory or one that already holds simseq
  results (a ``manifest.json`` or ``calibration.json`` that simseq wrote); anything
  else (a thesis folder, the scenarios folder, ``.``) is refused;
- results of a different scenario file (neither the same path nor the same content
  as recorded in the manifests) are not overwritten without ``--force``;
- one writer per directory: a lock (``.simseq.lock``, released by the kernel if the
  process dies) makes a second writer fail at once with a clear error;
- outputs are written to a staging folder inside the directory and moved into place
  only when complete, the manifest last; a command replaces only the files it writes
  and removes only files its own previous manifest listed, so ``run`` never touches
  ``psa/`` and nothing of the user's is ever deleted;
- staging folders left by a killed process are removed by the next writer.
"""

import contextlib
import datetime as dt
import errno
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

MANIFEST = "manifest.json"
LOCK = ".simseq.lock"
STAGING_PREFIX = ".simseq-staging-"
CHECKPOINTS = ".checkpoints"
SUBDIRS = ("psa", "dsa", "sweep", "structural")
"""Directories other commands write inside a scenario's results directory."""
_SELF_DESCRIBING = (MANIFEST, "calibration.json", "calibration_summary.json")
"""Files whose content says simseq wrote them (a ``simseq_version`` key)."""


class ResultsError(Exception):
    """A results directory that cannot or must not be written: a one-line message."""


@dataclass(frozen=True)
class ScenarioIdentity:
    """Which scenario file results belong to: the path as given, absolute, and its sha256."""

    file: str
    path: str
    sha256: str

    @classmethod
    def of(cls, file: str | Path) -> "ScenarioIdentity":
        path = Path(file)
        return cls(str(file), str(path.resolve()), hashlib.sha256(path.read_bytes()).hexdigest())

    def matches(self, manifest: dict) -> bool:
        """True when ``manifest`` records this scenario: the same file (it may have been
        edited since) or the same content (the project may have moved)."""
        sha = manifest.get("scenario_sha256")
        path = manifest.get("scenario_path")
        if sha is None and path is None:
            return True  # written without a scenario (nothing to protect)
        if sha == self.sha256 or path == self.path:
            return True
        # manifests before scenario_path: the file as given, relative to where it ran
        given = manifest.get("scenario_file")
        return path is None and given is not None and Path(given).resolve() == Path(self.path)


def simseq_json(path: Path) -> dict | None:
    """The content of a JSON file simseq wrote (one with a ``simseq_version``), else None."""
    try:
        if path.stat().st_size > 50_000_000:
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and "simseq_version" in data else None


def _manifests(directory: Path) -> dict[str, dict]:
    """simseq's self-describing files in ``directory`` and its SUBDIRS, by relative path;
    for a SUBDIR itself, also its parent's manifest (the scenario it belongs to)."""
    found = {}
    places = [("", directory)] + [(f"{s}/", directory / s) for s in SUBDIRS]
    if directory.name in SUBDIRS:
        places.append(("../", directory.parent))
    for prefix, place in places:
        for name in _SELF_DESCRIBING:
            data = simseq_json(place / name)
            if data is not None:
                found[prefix + name] = data
    return found


def _internal(name: str) -> bool:
    return name in (LOCK, CHECKPOINTS) or name.startswith(STAGING_PREFIX)


def out_directory(out: str | Path | None, default: Path) -> Path:
    """The directory ``--out`` names (``default`` without one); an empty one is refused
    (``Path("")`` would silently mean the current directory)."""
    if out is None:
        return Path(default)
    if not str(out).strip():
        raise ResultsError("--out is empty: give a directory")
    return Path(out)


def check_target(directory: Path, scenario: ScenarioIdentity | None, force: bool) -> None:
    """Refuse, before any work, a directory simseq must not write: not a directory,
    someone else's files, another scenario's results (without ``force``)."""
    if directory.exists() and not directory.is_dir():
        raise ResultsError(f"{directory} is not a directory")
    if not directory.exists():
        return
    try:
        entries = sorted(p.name for p in directory.iterdir() if not _internal(p.name))
    except OSError as err:
        raise ResultsError(f"cannot read {directory}: {err.strerror}") from None
    manifests = _manifests(directory)
    own = {k.split("/")[0] for k in manifests if not k.startswith("../")}
    if entries and not own:
        shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
        raise ResultsError(
            f"{directory} holds files simseq did not write ({shown}): simseq writes only "
            "into a new or empty directory or one holding simseq results; choose another --out"
        )
    if scenario is None or force:
        return
    for where, data in manifests.items():
        if not scenario.matches(data):
            other = data.get("scenario_path") or data.get("scenario_file")
            raise ResultsError(
                f"{directory} holds results of another scenario file ({other}, per "
                f"{directory / where}), not of {scenario.file}: refusing to overwrite them; "
                "write elsewhere with --out, or replace them with --force"
            )


class _Lock:
    """An exclusive, non-blocking lock on ``directory/.simseq.lock`` (flock: the kernel
    releases it when the process dies, so a killed writer never blocks the next)."""

    def __init__(self, directory: Path, command: str):
        self.path = directory / LOCK
        try:
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise ResultsError(f"cannot write to {directory}: {err.strerror}") from None
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            holder = os.pread(self.fd, 200, 0).decode(errors="replace").strip() or "unknown"
            os.close(self.fd)
            if err.errno not in (errno.EAGAIN, errno.EACCES):
                raise ResultsError(f"cannot lock {self.path}: {err.strerror}") from None
            raise ResultsError(
                f"{directory} is being written by another simseq process ({holder}); wait "
                "for it to finish, or write elsewhere with --out"
            ) from None
        started = dt.datetime.now().isoformat(timespec="seconds")
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"pid {os.getpid()}, simseq {command}, since {started}\n".encode(), 0)

    def release(self) -> None:
        os.ftruncate(self.fd, 0)
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Staging:
    """Where a command writes its outputs before they are moved into ``directory``."""

    def __init__(self, directory: Path, path: Path, command: str, manifest: str | None):
        self.directory = directory
        self.path = path
        self.command = command
        self.manifest = manifest
        self.checkpoints = directory / CHECKPOINTS
        """Where distributed tasks of this command checkpoint (see ``simseq.backend``)."""

    def write_manifest(self, data: dict) -> None:
        """Write the manifest (last): ``data`` plus the command and a sha256 per output."""
        from simseq.report import write_json

        files = {
            p.name: sha256_file(p) for p in sorted(self.path.iterdir()) if p.name != self.manifest
        }
        write_json(self.path / self.manifest, {**data, "command": self.command, "files": files})

    def _commit(self) -> None:
        produced = sorted(p.name for p in self.path.iterdir())
        if any((self.path / name).is_dir() for name in produced):
            raise RuntimeError("outputs must be files")  # a bug, not an input problem
        previous = simseq_json(self.directory / self.manifest) if self.manifest else None
        stale = set()
        if previous is not None and previous.get("command") == self.command:
            listed = previous.get("files")
            stale = {n for n in listed if isinstance(n, str)} if isinstance(listed, dict) else set()
        last = [self.manifest] if self.manifest in produced else []
        for name in [n for n in produced if n not in last] + last:
            os.replace(self.path / name, self.directory / name)
        for name in sorted(stale - set(produced)):
            if "/" not in name and not _internal(name) and name not in SUBDIRS:
                (self.directory / name).unlink(missing_ok=True)
        self.path.rmdir()


def _clean_stale(directory: Path) -> list[str]:
    """Remove what killed writers left (we hold the lock, so no writer is using them):
    staging folders here, and the ``.<name>.partial-*``/``.old-*`` folders of older
    versions beside the directory."""
    removed = []
    stale = list(directory.glob(STAGING_PREFIX + "*"))
    stale += list(directory.parent.glob(f".{directory.name}.partial-*"))
    stale += list(directory.parent.glob(f".{directory.name}.old-*"))
    for path in stale:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path.name)
    return removed


def _remove_if_unused(directory: Path) -> None:
    """Remove a directory this writer created if nothing but its lock is in it."""
    with contextlib.suppress(OSError):
        if {p.name for p in directory.iterdir()} <= {LOCK}:
            (directory / LOCK).unlink(missing_ok=True)
            directory.rmdir()


@contextlib.contextmanager
def results_writer(
    directory: str | Path,
    command: str,
    *,
    scenario: ScenarioIdentity | None,
    force: bool = False,
    manifest: str | None = MANIFEST,
    say: Callable[[str], None] | None = None,
) -> Iterator[Staging]:
    """Check, lock and stage ``directory`` for ``command``; commit the staged outputs
    if the block completes, else leave the directory as it was.

    Raises ``ResultsError`` (before any work) when the directory must not be written.
    """
    directory = Path(directory)
    check_target(directory, scenario, force)
    created = not directory.exists()
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ResultsError(f"cannot create {directory}: {err.strerror}") from None
    try:
        lock = _Lock(directory, command)
    except ResultsError:
        if created:
            _remove_if_unused(directory)
        raise
    try:
        check_target(directory, scenario, force)  # again, now that no one else can write
        removed = _clean_stale(directory)
        if removed and say is not None:
            say(f"removed {len(removed)} unfinished output folder(s) a killed run left")
        try:
            staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=directory))
        except OSError as err:
            raise ResultsError(f"cannot write to {directory}: {err.strerror}") from None
        staging.chmod(0o755)  # mkdtemp makes it private; results are meant to be shared
        try:
            stage = Staging(directory, staging, command, manifest)
            yield stage
            stage._commit()
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    except BaseException:
        if created:
            _remove_if_unused(directory)
        raise
    finally:
        lock.release()
