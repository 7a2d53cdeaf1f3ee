"""The landing zone on disk: feeds, day partitions, files and their formats (contract §1)."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path

_PARTITION = re.compile(r"^dt=(\d{4}-\d{2}-\d{2})$")
FORMATS = {".parquet": "parquet", ".csv": "csv", ".jsonl": "jsonl"}


@dataclass(frozen=True)
class LandingFile:
    path: Path
    format: str | None   # None: an extension mlwatch does not read
    compressed: bool
    size: int
    mtime_ns: int

    @property
    def key(self) -> str:
        """feed/dt=YYYY-MM-DD/name: how the warehouse refers to the file, wherever the landing zone is."""
        return "/".join(self.path.parts[-3:])

    @property
    def fingerprint(self) -> str:
        return f"{self.path.name}:{self.size}:{self.mtime_ns}"


@dataclass(frozen=True)
class Partition:
    feed: str
    day: dt.date
    path: Path
    files: tuple[LandingFile, ...]

    @property
    def fingerprint(self) -> str:
        return "|".join(f.fingerprint for f in self.files)


def file_format(path: Path) -> tuple[str | None, bool]:
    """(format, gzip-compressed) from the file name; (None, False) if unsupported."""
    suffixes = [s.lower() for s in path.suffixes]
    compressed = bool(suffixes) and suffixes[-1] == ".gz"
    if compressed:
        suffixes = suffixes[:-1]
    if not suffixes:
        return None, False
    return FORMATS.get(suffixes[-1]), compressed


def _landing_file(path: Path) -> LandingFile:
    stat = path.stat()
    fmt, compressed = file_format(path)
    return LandingFile(path=path, format=fmt, compressed=compressed, size=stat.st_size, mtime_ns=stat.st_mtime_ns)


def list_partitions(landing: Path, feed: str, *, until: dt.date | None = None) -> list[Partition]:
    """Day partitions of a feed, oldest first."""
    folder = Path(landing) / feed
    if not folder.is_dir():
        return []
    days = sorted(
        dt.date.fromisoformat(match.group(1))
        for child in folder.iterdir()
        if child.is_dir() and (match := _PARTITION.match(child.name))
    )
    return [partition(landing, feed, day) for day in days if until is None or day <= until]


def partition(landing: Path, feed: str, day: dt.date) -> Partition:
    """One day partition; hidden and marker files (names starting with . or _) are skipped."""
    path = Path(landing) / feed / f"dt={day.isoformat()}"
    files = tuple(
        _landing_file(p) for p in sorted(path.iterdir())
        if p.is_file() and not p.name.startswith((".", "_"))
    ) if path.is_dir() else ()
    return Partition(feed=feed, day=day, path=path, files=files)
