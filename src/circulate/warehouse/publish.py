"""Build-then-swap publishing: readers only ever see a complete, checked snapshot.

A run copies the published file to a private build file, works on the copy and, once
every check has passed, renames it over the published path. ``os.replace`` is atomic on
one filesystem, so an analyst's reader sees either yesterday's file or today's, and a
crash at any point leaves yesterday's snapshot untouched.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

BUILD_SUFFIX = ".building"


def build_path_for(published: Path, run_id: str) -> Path:
    """Where a run builds the next snapshot: beside the published file, same filesystem."""
    return published.with_name(f"{published.name}.{run_id}{BUILD_SUFFIX}")


def start_build(published: Path, run_id: str, *, from_scratch: bool = False) -> Path:
    """Create the run's build file as a copy of the published snapshot (if there is one).

    With ``from_scratch`` the build starts empty (a backfill rebuilding history). Build
    files left behind by runs that crashed are removed first.
    """
    published.parent.mkdir(parents=True, exist_ok=True)
    for leftover in published.parent.glob(f"{published.name}.*{BUILD_SUFFIX}*"):
        leftover.unlink()
    build = build_path_for(published, run_id)
    if published.exists() and not from_scratch:
        shutil.copyfile(published, build)
    return build


def publish(build: Path, published: Path) -> None:
    """Atomically replace ``published`` with ``build`` and make the rename durable."""
    with open(build, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(build, published)
    directory = os.open(published.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def abandon(build: Path) -> None:
    """Remove a build that will not be published (and its write-ahead log)."""
    for path in (build, build.with_name(build.name + ".wal")):
        path.unlink(missing_ok=True)
