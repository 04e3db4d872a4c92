"""Bad input: one clear message naming what and where, exit status 2, no traceback.
These fail during validation, before any model is loaded."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

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


def test_real_process_exits_2_without_traceback(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "gpta.cli",
            "train",
            "--train",
            str(tmp_path / "missing.jsonl"),
            *DESC,
            "--output-dir",
            str(tmp_path / "run"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "missing.jsonl" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()  # nothing was written for a rejected run


def test_eval_names_a_missing_user_column(capsys, tmp_path):
    from gpta.cli import _rename
    from gpta.errors import GptaUserError

    rows = [{"text": "ok", "label": "positive"}]
    with pytest.raises(GptaUserError) as err:
        _rename(rows, {"label": "stars"})
    assert "'stars'" in err.value.message and "label" in err.value.message
    assert _rename(rows, {"text": "label"})[0]["text"] == "positive"
