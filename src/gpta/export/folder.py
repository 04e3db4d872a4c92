"""The output folder of an export: written only where nothing of the user's is lost.

``--output`` may be a path that does not exist, an empty folder, or a folder an earlier
``gpta export`` wrote: it holds the marker ``.gpta-export.json``, whose ``files`` list every
file that export wrote, and nothing else. Anything else is refused (exit 2): gpta never
replaces or deletes a file it did not write.

The export is built in a staging folder beside ``--output`` and moved into place when it is
complete, so a failed export leaves the folder as it was (an earlier export intact).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from gpta.errors import GptaUserError
from gpta.fileio import check_dir_creatable, read_json_record

MARKER = ".gpta-export.json"
WRITTEN_BY = "gpta export"


def _listed(marker: dict[str, Any]) -> list[str] | None:
    """The files a marker lists, or None when it is not one gpta export writes."""
    files = marker.get("files")
    if marker.get("written_by") != WRITTEN_BY or not isinstance(files, list):
        return None
    for entry in files:
        if not isinstance(entry, str) or not entry:
            return None
        parts = PurePosixPath(entry).parts
        if PurePosixPath(entry).is_absolute() or ".." in parts or entry == MARKER:
            return None
    return files


def read_marker(folder: Path) -> list[str] | None:
    """The files an earlier export into ``folder`` wrote, or None (no valid marker)."""
    data = read_json_record(folder / MARKER)
    return None if data is None else _listed(data)


def _files_in(folder: Path) -> list[str]:
    """Every entry below ``folder`` that is not a folder (links included), and every empty
    folder (as ``name/``): relative, POSIX."""
    found = []
    for root, dirs, files in os.walk(folder):
        here = Path(root)
        for name in files + [d for d in dirs if (here / d).is_symlink()]:
            found.append((here / name).relative_to(folder).as_posix())
        if here != folder and not files and not dirs:
            found.append(here.relative_to(folder).as_posix() + "/")
    return sorted(found)


class ExportFolder:
    """``--output`` of one export: checked, then filled from a staging folder."""

    def __init__(self, path: Path, fmt: str) -> None:
        self.path = path
        self.fmt = fmt

    def check(self) -> list[str]:
        """Fail unless the folder may be written; returns the files of an earlier export there
        (to be replaced), [] for a new or empty folder."""
        path = self.path
        hint = "give a new or empty folder as --output (or one an earlier gpta export wrote)"
        if path.is_symlink():
            raise GptaUserError(f"--output {path} is a link", hint=hint)
        check_dir_creatable(path, "--output", fix=hint)
        if not path.exists():
            return []
        present = _files_in(path)
        if not present:
            return []
        listed = read_marker(path)
        if listed is None:
            shown = ", ".join(present[:5]) + (" ..." if len(present) > 5 else "")
            raise GptaUserError(
                f"--output {path} is not empty and was not written by gpta export "
                f"(it holds {shown})",
                hint=f"{hint}; gpta does not replace files it did not write",
            )
        foreign = [p for p in present if p != MARKER and p not in set(listed)]
        if foreign:
            shown = ", ".join(foreign[:5]) + (" ..." if len(foreign) > 5 else "")
            raise GptaUserError(
                f"--output {path} holds files an earlier gpta export did not write ({shown})",
                hint=f"move them away, or {hint[0].lower()}{hint[1:]}",
            )
        return listed

    @contextlib.contextmanager
    def staging(self) -> Iterator[Path]:
        """A new folder beside ``--output`` to write the export into; on success it replaces
        the earlier export (if any) and becomes ``--output``, with the marker. On failure it
        is removed and ``--output`` is left as it was."""
        parent = self.path.parent
        parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.gpta-export-", dir=parent))
        umask = os.umask(0)
        os.umask(umask)
        staging.chmod(0o777 & ~umask)  # a folder as mkdir makes it (mkdtemp's is private)
        try:
            yield staging
            files = _files_in(staging)
            marker = {"written_by": WRITTEN_BY, "format": self.fmt, "files": files}
            (staging / MARKER).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
            self._replace_with(staging)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)

    def _replace_with(self, staging: Path) -> None:
        earlier = self.check()  # again: the folder may have changed while the model was written
        path = self.path
        folders: set[Path] = set()
        for entry in earlier:
            target = path / entry
            if target.is_symlink() or target.is_file():
                target.unlink()
            folders.update(p for p in target.parents if path in p.parents)
        for folder in sorted(folders, key=lambda p: -len(p.parts)):  # the deepest first
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        if path.is_dir():
            (path / MARKER).unlink(missing_ok=True)
            path.rmdir()  # empty now: check() allowed nothing else
        os.replace(staging, path)
