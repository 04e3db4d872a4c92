"""Bad input: one clear message naming what and where, exit status 2, no traceback.
These fail during validation, before any model is loaded."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from conftest import gpta_cli, mark_gpta_run

from gpta.cli import main

DESC = ["--description", "Short reviews labelled positive or negative."]


def _csv(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _run(capsys, *args: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.startswith("error:") or "Error:" in err
    return err


@pytest.fixture
def good_csv(tmp_path: Path) -> Path:
    rows = "".join(f"review number {i},{'positive' if i % 2 else 'negative'}\n" for i in range(40))
    return _csv(tmp_path / "train.csv", "text,label\n" + rows)


def test_missing_file(capsys, tmp_path):
    err = _run(
        capsys,
        "train",
        "--train",
        str(tmp_path / "nope.csv"),
        *DESC,
        "--output-dir",
        str(tmp_path / "run"),
    )
    assert "nope.csv" in err and "not found" in err


def test_unknown_column(capsys, tmp_path, good_csv):
    err = _run(
        capsys,
        "train",
        "--train",
        str(good_csv),
        "--text-column",
        "body",
        *DESC,
        "--output-dir",
        str(tmp_path / "run"),
    )
    assert "'body'" in err and "text" in err and "data.text_column" in err


def test_empty_text(capsys, tmp_path):
    path = _csv(tmp_path / "t.csv", "text,label\nfine,positive\n   ,negative\nbad,negative\n")
    err = _run(capsys, "train", "--train", str(path), *DESC, "--output-dir", str(tmp_path / "r"))
    assert "t.csv" in err and "empty" in err and "text" in err


def test_unknown_label_in_dev(capsys, tmp_path, good_csv):
    dev = _csv(tmp_path / "dev.csv", "text,label\nok,positive\nhmm,mixed\n")
    err = _run(
        capsys,
        "train",
        "--train",
        str(good_csv),
        "--dev",
        str(dev),
        *DESC,
        "--output-dir",
        str(tmp_path / "run"),
    )
    assert "dev.csv" in err and "'mixed'" in err


def test_single_class(capsys, tmp_path):
    rows = "".join(f"text {i},positive\n" for i in range(20))
    path = _csv(tmp_path / "one.csv", "text,label\n" + rows)
    err = _run(capsys, "train", "--train", str(path), *DESC, "--output-dir", str(tmp_path / "r"))
    assert "single class" in err


def test_non_utf8_bytes(capsys, tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("text,label\nok,positive\ncaf\xe9,negative\n".encode("latin-1"))
    err = _run(capsys, "train", "--train", str(path), *DESC, "--output-dir", str(tmp_path / "r"))
    assert "latin.csv" in err and "line 3" in err and "UTF-8" in err


def test_malformed_jsonl_line(capsys, tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "a", "label": "x"}\n{"text": "b", "label": \n', encoding="utf-8")
    err = _run(capsys, "train", "--train", str(path), *DESC, "--output-dir", str(tmp_path / "r"))
    assert "bad.jsonl" in err and "line 2" in err


def test_unknown_config_key(capsys, tmp_path):
    config = _csv(tmp_path / "run.yaml", "training:\n  epochs: 3\n")
    err = _run(capsys, "train", "--config", str(config))
    assert "training.epochs" in err and "unknown option" in err


def test_unknown_set_key(capsys, tmp_path):
    err = _run(capsys, "train", "--set", "assistant.temprature=0.5")
    assert "assistant.temprature" in err


def test_missing_description(capsys, tmp_path, good_csv):
    err = _run(capsys, "train", "--train", str(good_csv), "--output-dir", str(tmp_path / "r"))
    assert "description" in err


def test_bad_flag_value(capsys):
    err = _run(capsys, "train", "--rounds", "many")
    assert "--rounds" in err


def test_predict_on_a_folder_without_model(capsys, tmp_path):
    err = _run(capsys, "predict", "--model", str(tmp_path), "--input", "-")
    assert "gpta.json" in err


@pytest.mark.slow
def test_real_process_exits_2_without_traceback(tmp_path):
    result = gpta_cli(
        "train",
        "--train",
        str(tmp_path / "missing.jsonl"),
        *DESC,
        "--output-dir",
        str(tmp_path / "run"),
        timeout=120,
    )
    assert result.returncode == 2
    assert "missing.jsonl" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()  # nothing was written for a rejected run


def test_eval_names_a_missing_user_column(capsys, tmp_path):
    from gpta.cli.inference import _rename
    from gpta.errors import GptaUserError

    rows = [{"text": "ok", "label": "positive"}]
    with pytest.raises(GptaUserError) as err:
        _rename(rows, {"label": "stars"})
    assert "'stars'" in err.value.message and "label" in err.value.message
    assert _rename(rows, {"text": "label"})[0]["text"] == "positive"


# --- issue 18: tracebacks that became messages, files that are never lost -----------------


def _tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its bytes (a folder's full state, for before/after)."""
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_malformed_yaml_in_set(capsys):
    err = _run(capsys, "train", "--set", "training.rounds=[1,")
    assert "--set training.rounds" in err and "not valid YAML" in err and "fix:" in err


def test_platform_overflowing_int_in_a_config_writes_nothing(capsys, tmp_path, good_csv):
    config = _csv(
        tmp_path / "run.yaml",
        f"output_dir: {tmp_path / 'run'}\ndata:\n  train: {good_csv}\n"
        "  description: Short reviews.\ntraining:\n  batch_size: 99999999999999999999999999\n",
    )
    err = _run(capsys, "train", "--config", str(config))
    assert "training.batch_size" in err and "4096" in err and "fix:" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("flag", "value", "option", "bound"),
    [
        ("--rounds", "100000000000000000000", "training.rounds", "1000"),
        ("--epochs-per-round", "5000", "training.epochs_per_round", "1000"),
        ("--steps-per-round", "10000000", "training.steps_per_round", "1000000"),
        ("--batch-size", "99999999999999999999999999", "training.batch_size", "4096"),
        ("--candidates", "1000", "assistant.candidates", "32"),
        ("--max-length", "100000", "model.max_length", "8192"),
        ("--train-size", "1000000000000", "data.train_size", "100,000,000"),
        ("--seed", "-1", "seed", "0"),
    ],
)
def test_counts_are_bounded_and_the_bound_is_said(capsys, flag, value, option, bound):
    err = _run(capsys, "train", flag, value)
    assert option in err and bound in err


def test_output_dir_that_is_a_file_or_cannot_be_created(capsys, tmp_path, good_csv):
    afile = _csv(tmp_path / "afile", "not a folder\n")
    for target in (afile, afile / "run"):
        err = _run(capsys, "train", "--train", str(good_csv), *DESC, "--output-dir", str(target))
        assert str(afile) in err and "not a folder" in err
    assert afile.read_text(encoding="utf-8") == "not a folder\n"


def test_overwrite_never_deletes_a_folder_gpta_did_not_write(capsys, tmp_path, good_csv):
    folder = tmp_path / "mine"
    (folder / "model").mkdir(parents=True)
    (folder / "model" / "weights.bin").write_bytes(b"\x00weights")
    (folder / "report").mkdir()
    (folder / "report" / "q3.pdf").write_bytes(b"%PDF")
    before = _tree(folder)
    args = ["train", "--train", str(good_csv), *DESC, "--output-dir", str(folder)]
    for extra in ([], ["--overwrite"]):
        err = _run(capsys, *args, *extra)
        assert "not a gpta run" in err and "model" in err
        assert _tree(folder) == before


def _old_run(run_dir: Path) -> Path:
    """A finished run as gpta writes it (no model weights: nothing here loads it)."""
    from gpta.config import build_config, dump_config

    (run_dir / "model").mkdir(parents=True)
    dump_config(build_config({"output_dir": str(run_dir)}), run_dir / "config.yaml")
    for name in ("metrics.json", "splits.json", "model/gpta.json"):
        (run_dir / name).write_text('{"old": true}\n', encoding="utf-8")
    (run_dir / "history.jsonl").write_text('{"event": "round"}\n', encoding="utf-8")
    return mark_gpta_run(run_dir)


def test_overwrite_with_a_bad_model_keeps_the_old_run(capsys, tmp_path, good_csv):
    run_dir = _old_run(tmp_path / "run")
    before = _tree(run_dir)
    err = _run(
        capsys,
        "train",
        "--train",
        str(good_csv),
        *DESC,
        "--model",
        str(tmp_path / "no" / "such"),
        "--overwrite",
        "--output-dir",
        str(run_dir),
    )
    assert "model.name_or_path" in err
    assert _tree(run_dir) == before


def test_predict_refuses_to_write_over_its_input(capsys, tmp_path, monkeypatch):
    rows = _csv(tmp_path / "x.jsonl", '{"text": "fine"}\n')
    (tmp_path / "link.jsonl").symlink_to(rows)
    monkeypatch.chdir(tmp_path)
    for output in ("x.jsonl", str(rows), "./sub/../x.jsonl", "link.jsonl"):
        err = _run(
            capsys, "predict", "--model", str(tmp_path), "--input", "x.jsonl", "--output", output
        )
        assert "is the --input file" in err
    assert rows.read_text(encoding="utf-8") == '{"text": "fine"}\n'


def test_predict_output_that_cannot_be_written(capsys, tmp_path):
    afile = _csv(tmp_path / "afile", "x\n")
    err = _run(
        capsys, "predict", "--model", str(tmp_path), "--input", "-", "--output", f"{afile}/o.jsonl"
    )
    assert "--output" in err and "not a folder" in err


def test_predict_writes_its_output_atomically(tmp_path):
    from gpta.fileio import write_text_atomic

    target = tmp_path / "out" / "p.jsonl"
    write_text_atomic(target, "a\n", "--output")
    write_text_atomic(target, "b\n", "--output")
    assert target.read_text(encoding="utf-8") == "b\n"
    assert [p.name for p in target.parent.iterdir()] == ["p.jsonl"]  # no temporary left


@pytest.mark.parametrize(
    ("manifest", "says"),
    [
        ({"task": "classification", "max_length": 64}, "'prefix'"),
        ({"task": "classification", "prefix": "p", "max_length": 64}, "'text_column'"),
        ({"task": "classification", "prefix": 3, "max_length": 64}, "'prefix'"),
        ([1, 2], "not a JSON object"),
        ({"task": "nonsense", "prefix": "", "max_length": 64}, "unknown task"),
    ],
)
def test_predict_and_eval_on_a_malformed_gpta_json(capsys, tmp_path, manifest, says):
    import json

    (tmp_path / "gpta.json").write_text(json.dumps(manifest), encoding="utf-8")
    rows = _csv(tmp_path / "x.jsonl", '{"text": "fine", "label": "positive"}\n')
    for args in (("predict", "--input", str(rows)), ("eval", "--data", str(rows))):
        err = _run(capsys, args[0], "--model", str(tmp_path), *args[1:])
        assert "gpta.json" in err and says in err


# A gpta.json as gpta wrote it before format_version existed (the fields of a real run).
VERSIONLESS = {
    "task": "classification",
    "text_column": "text",
    "label_column": "label",
    "input_columns": ["text"],
    "labels": ["negative", "positive"],
    "max_length": 32,
    "head": "sequence",
    "base_model": "bundled:minilm",
    "prefix": "",
    "best_round": 0,
    "metrics": {"dev": {"accuracy": 0.5, "recall_per_class": {"negative": 1.0}}},
    "versions": {"gpta": "0.1.0", "torch": "2", "transformers": "5", "python": "3.11"},
}


@pytest.mark.parametrize(
    ("change", "says", "fix"),
    [
        ({"served_by": "x"}, "a field gpta does not know: 'served_by'", "upgrade gpta"),
        ({"format_version": 2}, "format_version 2, written by a newer gpta", "upgrade gpta"),
        ({"format_version": 2, "renamed": 1}, "written by a newer gpta", "upgrade gpta"),
        ({"format_version": "1"}, "'format_version'", "restore the one it wrote"),
        ({"format_version": 0}, "format_version 0 is not one gpta writes", "restore"),
        ({"max_length": "64"}, "holds a str in 'max_length'", "restore the one it wrote"),
    ],
)
def test_predict_and_eval_refuse_a_gpta_json_they_do_not_understand(
    capsys, tmp_path, change, says, fix
):
    import json

    (tmp_path / "gpta.json").write_text(json.dumps({**VERSIONLESS, **change}), encoding="utf-8")
    rows = _csv(tmp_path / "x.jsonl", '{"text": "fine", "label": "positive"}\n')
    for args in (("predict", "--input", str(rows)), ("eval", "--data", str(rows))):
        err = _run(capsys, args[0], "--model", str(tmp_path), *args[1:])
        assert f"{tmp_path / 'gpta.json'}" in err and says in err and fix in err


def test_a_gpta_json_without_format_version_is_read_as_version_1(capsys, tmp_path):
    import json

    from gpta.downstream.artifact import read_manifest, save_model, write_manifest
    from gpta.manifest import FORMAT_VERSION
    from gpta.tasks import ClassificationTask

    task = ClassificationTask("text", "label", ["negative", "positive"], 32)
    save_model(*task.load_model("bundled:minilm"), tmp_path)
    (tmp_path / "gpta.json").write_text(json.dumps(VERSIONLESS), encoding="utf-8")
    old = read_manifest(tmp_path)
    assert old.format_version == 1 == FORMAT_VERSION
    assert {k: v for k, v in old.fields().items() if k != "format_version"} == VERSIONLESS
    rows = _csv(tmp_path / "x.jsonl", '{"text": "fine"}\n{"text": "awful"}\n')
    main(["predict", "--model", str(tmp_path), "--input", str(rows)])
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["row"] for line in lines] == ["line 1", "line 2"]
    # what gpta writes now says its version and reads back the same
    write_manifest(tmp_path, {k: v for k, v in VERSIONLESS.items() if k != "versions"})
    written = json.loads((tmp_path / "gpta.json").read_text(encoding="utf-8"))
    assert written["format_version"] == FORMAT_VERSION
    assert read_manifest(tmp_path).fields() == written


def test_gpta_never_writes_a_gpta_json_it_would_refuse(tmp_path):
    from pydantic import ValidationError

    from gpta.downstream.artifact import write_manifest

    with pytest.raises(ValidationError):
        write_manifest(tmp_path, {**VERSIONLESS, "served_by": "x"})
    assert not (tmp_path / "gpta.json").exists()


def test_predict_names_non_utf8_bytes_on_stdin(monkeypatch):
    import io

    from gpta.cli.inference import _read_rows
    from gpta.errors import GptaUserError

    stdin = io.TextIOWrapper(io.BytesIO("ok\ncaf\xe9\n".encode("latin-1")))
    monkeypatch.setattr(sys, "stdin", stdin)
    with pytest.raises(GptaUserError) as err:
        _read_rows("-", None, "text")
    assert err.value.message == "stdin, line 2: not valid UTF-8 (byte 0xe9)"


@pytest.mark.parametrize("content", [b"hello, not a database\n", b"", b"SQLite format 3\x00junk"])
def test_cache_info_and_clear_on_a_file_that_is_not_the_cache(capsys, tmp_path, content):
    path = tmp_path / "notes.sqlite"
    path.write_bytes(content)
    for command in ("info", "clear"):
        err = _run(capsys, "cache", command, "--path", str(path))
        assert "not a gpta response cache" in err
    assert path.read_bytes() == content


def test_a_damaged_wal_mode_file_gets_no_wal_files_beside_it(capsys, tmp_path):
    """A header that says WAL (bytes 18 and 19 are 2) made SQLite's read-only open create
    -wal and -shm files beside the user's file (found by GPTA_HOSTILE_SCALE=10)."""
    header = bytearray(b"SQLite format 3\x00" + bytes(84))
    header[16:20] = bytes([16, 0, 2, 2])  # page size 4096, WAL
    path = tmp_path / "notes.sqlite"
    path.write_bytes(bytes(header) + bytes(3996))
    for command in ("info", "clear"):
        assert "not a gpta response cache" in _run(capsys, "cache", command, "--path", str(path))
    assert [p.name for p in tmp_path.iterdir()] == ["notes.sqlite"]


def test_cache_clear_leaves_another_sqlite_database_alone(capsys, tmp_path):
    import sqlite3

    path = tmp_path / "other.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE responses (id INTEGER)")
        db.execute("INSERT INTO responses VALUES (1)")
    db.close()
    err = _run(capsys, "cache", "clear", "--path", str(path))
    assert "not a gpta response cache" in err
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT COUNT(*) FROM responses").fetchone() == (1,)
    db.close()


def test_report_output_dir_that_is_a_file(capsys, tmp_path):
    run_dir = _old_run(tmp_path / "run")
    (run_dir / "report").write_text("mine\n", encoding="utf-8")
    err = _run(capsys, "report", str(run_dir))
    assert "report" in err and "not a folder" in err
    afile = _csv(tmp_path / "afile", "x\n")
    err = _run(capsys, "report", str(run_dir), "--output-dir", str(afile / "sub"))
    assert "not a folder" in err
    assert (run_dir / "report").read_text(encoding="utf-8") == "mine\n"


def test_usage_errors_have_error_and_fix_lines(capsys):
    err = _run(capsys, "train", "--rounds", "1e20")
    assert err.startswith("error:") and "--rounds" in err and "fix: see `gpta train --help`" in err
