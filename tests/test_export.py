"""`gpta export`: each format loads with its own library on CPU and reproduces `gpta predict`'s
probabilities on real tweets; the hub card holds the run's own numbers; the push uploads the
folder; bad input exits 2 with a message and changes nothing (docs/export.md)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from conftest import TWEETS_DESCRIPTION as DESCRIPTION
from conftest import balanced as _balanced
from conftest import shared_rows, write_jsonl

from gpta.cli import main

PREFIX = "Is the tweet negative, neutral or positive?"
MAX_LENGTH = 48  # short enough that some tweets are cut after the prefix
TOLERANCE = 1e-4
FAKE_TOKEN = "hf_gptaExportTestTokenNeverWritten0123456789"


# --- a trained run (one short round, a fixed prefix: no TA is loaded) ------------------------
@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    from gpta import train
    from gpta.config import build_config

    base = tmp_path_factory.mktemp("export")
    held_out = _balanced(shared_rows("twitter", "test"), 8)
    config = {
        "output_dir": str(base / "run"),
        "data": {
            "train": str(
                write_jsonl(base / "train.jsonl", _balanced(shared_rows("twitter", "train"), 8))
            ),
            "dev": str(write_jsonl(base / "dev.jsonl", held_out[:12])),
            "test": str(write_jsonl(base / "test.jsonl", held_out[12:])),
            "description": DESCRIPTION,
        },
        "model": {"max_length": MAX_LENGTH},
        "training": {"rounds": 1, "steps_per_round": 3, "batch_size": 8, "learning_rate": 1e-4},
        "assistant": {
            "initial": "static",
            "static_prefix": PREFIX,
            "fixed_prefix": True,
            "max_prefix_tokens": 16,
            "library": False,
            "cache": False,
        },
    }
    result = train(build_config(config), quiet=True)
    manifest = json.loads((result.run_dir / "model" / "gpta.json").read_text(encoding="utf-8"))
    assert manifest["prefix"] == PREFIX  # the prefix handling below is really exercised
    return result.run_dir


@pytest.fixture(scope="module")
def texts() -> list[str]:
    """50 real tweets not used by the run, some cut at MAX_LENGTH tokens after the prefix."""
    return [r["text"] for r in shared_rows("twitter", "test")[-50:]]


@pytest.fixture(scope="module")
def expected(run, texts) -> np.ndarray:
    """`gpta predict`'s probabilities (the Python API behind it), in label order."""
    from gpta.downstream.pipeline import load_pipeline

    pipeline = load_pipeline(run, device="cpu")
    names = [str(label) for label in pipeline.manifest.labels]
    return np.array([[p["probabilities"][n] for n in names] for p in pipeline(texts)])


def _export(run: Path, fmt: str, output: Path, *extra: str) -> Path:
    main(["export", str(run), "--format", fmt, "--output", str(output), *extra])
    return output


def _compare(got: np.ndarray, want: np.ndarray, what: str) -> float:
    worst = float(np.abs(got - want).max())
    print(f"\n{what}: max abs probability difference {worst:.2e} on {len(want)} rows")
    assert got.shape == want.shape
    assert worst <= TOLERANCE
    assert got.argmax(-1).tolist() == want.argmax(-1).tolist()
    return worst


def _st_probabilities(folder: Path, texts: list[str]) -> np.ndarray:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(folder), device="cpu")
    logits = model.encode(texts, convert_to_tensor=True, batch_size=16)
    return logits.float().softmax(dim=-1).numpy()


def _no_pickle(folder: Path) -> None:
    names = [p.name for p in folder.rglob("*") if p.is_file()]
    assert not [n for n in names if n.endswith((".bin", ".pkl", ".pt", ".pth", ".pickle"))]
    assert "model.safetensors" in names


# --- sentence-transformers --------------------------------------------------------------------
@pytest.mark.slow
def test_sentence_transformers_folder_reproduces_predict(run, texts, expected, tmp_path):
    from transformers import AutoTokenizer

    folder = _export(run, "sentence-transformers", tmp_path / "st")
    _compare(_st_probabilities(folder, texts), expected, "sentence-transformers")
    modules = [
        m["type"].rsplit(".", 1)[-1] for m in json.loads((folder / "modules.json").read_text())
    ]
    assert modules == ["Transformer", "Pooling", "Normalize", "Dense"]
    config = json.loads((folder / "config_sentence_transformers.json").read_text())
    assert config["prompts"]["classification"] == PREFIX + " "
    assert config["default_prompt_name"] == "classification"
    labels = json.loads((folder / "labels.json").read_text())["labels"]
    assert labels == ["negative", "neutral", "positive"]
    _no_pickle(folder)
    assert f"{PREFIX}" in (folder / "README.md").read_text(encoding="utf-8")
    # the comparison reached past truncation: some rows are cut at max_length after the prefix
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    lengths = [len(tokenizer(f"{PREFIX} {t}")["input_ids"]) for t in texts]
    assert max(lengths) > MAX_LENGTH


@pytest.mark.slow
def test_a_run_without_prefix_exports_without_prompt(run, texts, tmp_path):
    from gpta.downstream.pipeline import load_pipeline

    plain = tmp_path / "plain-run"
    shutil.copytree(run, plain)
    manifest_path = plain / "model" / "gpta.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest["prefix"] = ""  # the same model, served with no prefix
    manifest_path.write_text(json.dumps(manifest), encoding="utf-8")
    pipeline = load_pipeline(plain, device="cpu")
    names = [str(label) for label in pipeline.manifest.labels]
    want = np.array([[p["probabilities"][n] for n in names] for p in pipeline(texts)])
    folder = _export(plain, "sentence-transformers", tmp_path / "st")
    config = json.loads((folder / "config_sentence_transformers.json").read_text())
    assert config.get("default_prompt_name") is None
    assert not any(config.get("prompts", {}).values())
    _compare(_st_probabilities(folder, texts), want, "sentence-transformers, no prefix")


# --- onnx -------------------------------------------------------------------------------------
@pytest.mark.slow
def test_onnx_graph_reproduces_predict(run, texts, expected, tmp_path):
    import onnxruntime
    from transformers import AutoTokenizer

    folder = _export(run, "onnx", tmp_path / "onnx")
    config = json.loads((folder / "gpta_onnx.json").read_text(encoding="utf-8"))
    assert config["prefix"] == PREFIX and config["max_length"] == MAX_LENGTH
    assert config["labels"] == ["negative", "neutral", "positive"]
    session = onnxruntime.InferenceSession(
        str(folder / config["model"]), providers=["CPUExecutionProvider"]
    )
    for graph_input in session.get_inputs():  # batch and sequence axes are not fixed
        assert all(isinstance(d, str) for d in graph_input.shape), graph_input.shape
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    rows = []
    for start in range(0, len(texts), 7):  # batches of 7 and 1: other shapes than the tracing
        part = [
            config["prefix"] + config["separator"] + t if config["prefix"] else t
            for t in texts[start : start + 7]
        ]
        batch = tokenizer(
            part,
            truncation=True,
            max_length=config["max_length"],
            padding=True,
            return_tensors="np",
        )
        feed = {name: batch[name].astype(np.int64) for name in config["inputs"]}
        logits, probabilities = session.run(["logits", "probabilities"], feed)
        np.testing.assert_allclose(
            probabilities, np.exp(logits) / np.exp(logits).sum(-1, keepdims=True), atol=1e-6
        )
        rows.append(probabilities)
    _compare(np.concatenate(rows), expected, "onnx")
    assert PREFIX in (folder / "README.md").read_text(encoding="utf-8")


# --- hub --------------------------------------------------------------------------------------
@pytest.mark.slow
def test_hub_folder_card_and_no_token(run, texts, expected, tmp_path, monkeypatch):
    from huggingface_hub import ModelCard

    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    folder = _export(run, "hub", tmp_path / "hub")
    _compare(_st_probabilities(folder, texts), expected, "hub")
    card = ModelCard.load(folder / "README.md")
    data = card.data.to_dict()
    assert data["library_name"] == "sentence-transformers"
    assert data["pipeline_tag"] == "text-classification"
    assert data["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert "gpta" in data["tags"]
    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    recorded = {
        (r["dataset"]["split"], m["type"]): m["value"]
        for r in data["model-index"][0]["results"]
        for m in r["metrics"]
    }
    for split in ("dev", "test"):
        assert recorded[(split, "accuracy")] == metrics[split]["accuracy"]
        assert recorded[(split, "f1")] == metrics[split]["macro_f1"]
    assert PREFIX in card.text
    assert "Requests sent to the teaching assistant: 0" in card.text
    assert metrics["ledger_sha256"] in card.text  # the ledger's head hash
    for path in folder.rglob("*"):
        if path.is_file():
            assert FAKE_TOKEN.encode() not in path.read_bytes(), path


class _Recorder:
    """Stands in for huggingface_hub.HfApi: records what would be created and uploaded."""

    calls: ClassVar[list[tuple[str, dict]]] = []

    def __init__(self, *args, **kwargs) -> None:
        assert not args and not kwargs  # no token handed over: huggingface_hub finds its own

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", {"repo_id": repo_id, **kwargs}))

    def upload_folder(self, *, folder_path, **kwargs):
        root = Path(folder_path)
        files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
        self.calls.append(("upload_folder", {"folder_path": folder_path, "files": files, **kwargs}))
        return "https://huggingface.co/user/tweets/commit/0"


@pytest.mark.slow
def test_push_to_hub_uploads_the_hub_folder(run, tmp_path, monkeypatch, capsys):
    import huggingface_hub

    _Recorder.calls = []
    monkeypatch.setattr(huggingface_hub, "HfApi", _Recorder)
    output = tmp_path / "pushed"
    main(["export", str(run), "--output", str(output), "--push-to-hub", "user/tweets"])
    (create, create_args), (upload, upload_args) = _Recorder.calls
    assert (create, upload) == ("create_repo", "upload_folder")
    assert create_args["repo_id"] == "user/tweets" and create_args["exist_ok"] is True
    assert upload_args["repo_id"] == "user/tweets"
    assert Path(upload_args["folder_path"]) == output
    assert {"README.md", "modules.json", "model.safetensors", "labels.json"} <= set(
        upload_args["files"]
    )
    assert ".gpta-export.json" in upload_args["ignore_patterns"]  # the local marker stays
    assert "library_name: sentence-transformers" in (output / "README.md").read_text()
    assert capsys.readouterr().out.strip() == str(output)


def _no_network() -> Exception:
    """The error huggingface_hub's HTTP client raises when the Hub cannot be reached (its
    ConnectError, an OSError neither in httpx nor httpx2)."""
    import importlib

    from huggingface_hub.errors import HfHubHTTPError

    client = importlib.import_module(HfHubHTTPError.__mro__[1].__module__.split(".")[0])
    return client.ConnectError("[Errno -2] Name or service not known")


@pytest.mark.slow
@pytest.mark.parametrize("failure", ["no token", "no network"])
def test_a_failed_push_exits_2_and_keeps_the_folder(run, tmp_path, monkeypatch, capsys, failure):
    import huggingface_hub

    class Offline(_Recorder):
        def create_repo(self, repo_id, **kwargs):
            if failure == "no network":
                raise _no_network()
            raise huggingface_hub.errors.LocalTokenNotFoundError("Token is required")

    monkeypatch.setattr(huggingface_hub, "HfApi", Offline)
    output = tmp_path / "kept"
    err = _fails(capsys, "export", str(run), "--output", str(output), "--push-to-hub", "user/x")
    assert "upload failed" in err and "hf auth login" in err and str(output) in err
    assert (output / "README.md").is_file()


@pytest.mark.slow
def test_export_again_replaces_its_own_folder_only(run, tmp_path, capsys):
    folder = _export(run, "sentence-transformers", tmp_path / "out")
    first = sorted(p.name for p in folder.iterdir())
    _export(run, "onnx", folder)  # its own earlier export: replaced
    assert (folder / "model.onnx").is_file() and not (folder / "modules.json").exists()
    (folder / "notes.txt").write_text("mine", encoding="utf-8")
    err = _fails(capsys, "export", str(run), "--format", "sentence-transformers",
                 "--output", str(folder))  # fmt: skip
    assert "notes.txt" in err and "--output" in err
    assert (folder / "notes.txt").read_text(encoding="utf-8") == "mine"
    assert (folder / "model.onnx").is_file()  # the earlier export is left as it was
    assert "modules.json" in first


# --- bad input: exit 2, one message, nothing written ------------------------------------------
def _fails(capsys, *args: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.splitlines()[-2].startswith("error:") and err.splitlines()[-1].startswith("  fix:")
    return err[err.index("error:") :]


def _model_dir(run: Path, manifest: dict, *, pooled: bool = True) -> Path:
    """A hand-made run directory holding a gpta.json (no weights: refused before loading)."""
    model = run / "model"
    model.mkdir(parents=True)
    body = {"format_version": 1, "prefix": "", "max_length": 64, **manifest}
    (model / "gpta.json").write_text(json.dumps(body), encoding="utf-8")
    if pooled:
        head = {"pooling": "mean", "normalize": True, "labels": body.get("labels", [])}
        (model / "pooled_head.json").write_text(json.dumps(head), encoding="utf-8")
    return run


CLASSIFIER = {
    "task": "classification",
    "text_column": "text",
    "label_column": "label",
    "labels": ["a", "b"],
}


def test_a_missing_run_is_named(capsys, tmp_path):
    err = _fails(capsys, "export", str(tmp_path / "nope"), "--format", "onnx",
                 "--output", str(tmp_path / "out"))  # fmt: skip
    assert "nope" in err and "does not exist" in err
    assert not (tmp_path / "out").exists()


def test_a_folder_without_model_is_not_a_run(capsys, tmp_path):
    (tmp_path / "run").mkdir()
    err = _fails(capsys, "export", str(tmp_path / "run"), "--format", "hub",
                 "--output", str(tmp_path / "out"))  # fmt: skip
    assert "holds no trained model" in err and "gpta train" in err
    assert not (tmp_path / "out").exists()


def test_unknown_format_and_missing_format(capsys, tmp_path):
    err = _fails(capsys, "export", str(tmp_path), "--format", "tflite", "--output", "x")
    assert "--format" in err and "tflite" in err
    err = _fails(capsys, "export", str(tmp_path), "--output", str(tmp_path / "out"))
    assert "--format is missing" in err and "sentence-transformers" in err


def test_push_needs_the_hub_format_and_a_repo_id(capsys, tmp_path):
    err = _fails(capsys, "export", str(tmp_path), "--format", "onnx", "--output",
                 str(tmp_path / "o"), "--push-to-hub", "user/x")  # fmt: skip
    assert "--push-to-hub" in err and "hub" in err
    err = _fails(capsys, "export", str(tmp_path), "--output", str(tmp_path / "o"),
                 "--push-to-hub", "not a repo")  # fmt: skip
    assert "not a Hub repo id" in err
    assert not (tmp_path / "o").exists()


def test_an_output_with_other_files_is_refused_and_kept(capsys, tmp_path):
    run = _model_dir(tmp_path / "run", CLASSIFIER)
    output = tmp_path / "out"
    output.mkdir()
    (output / "mine.txt").write_text("keep", encoding="utf-8")
    err = _fails(capsys, "export", str(run), "--format", "sentence-transformers",
                 "--output", str(output))  # fmt: skip
    assert str(output) in err and "not empty" in err and "mine.txt" in err
    assert [p.name for p in output.iterdir()] == ["mine.txt"]
    file = tmp_path / "file"
    file.write_text("x", encoding="utf-8")
    err = _fails(capsys, "export", str(run), "--format", "onnx", "--output", str(file))
    assert "is a file" in err and file.read_text(encoding="utf-8") == "x"


@pytest.mark.parametrize(
    ("manifest", "pooled", "reason"),
    [
        ({"task": "qa", "text_column": "context"}, False, "qa model"),
        ({**CLASSIFIER, "head": "cloze", "label_words": {"a": "yes", "b": "no"}}, True, "cloze"),
        ({**CLASSIFIER, "head": "lm-verbalizer"}, True, "lm-verbalizer"),
        (CLASSIFIER, False, "not a sentence-transformers model"),
        ({**CLASSIFIER, "predict_prefixes": ["x", "y"]}, True, "averaging"),
    ],
)
def test_other_models_are_refused_naming_the_supported_case(
    capsys, tmp_path, manifest, pooled, reason
):
    run = _model_dir(tmp_path / "run", manifest, pooled=pooled)
    err = _fails(capsys, "export", str(run), "--format", "sentence-transformers",
                 "--output", str(tmp_path / "out"))  # fmt: skip
    assert reason in err and "pooled sequence head" in err
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if "gpta-export" in p.name]  # no staging left


def test_the_card_tells_what_the_ledger_holds(tmp_path):
    from gpta.export.card import exposure_text
    from gpta.privacy.ledger import ExposureLedger

    ledger = ExposureLedger(tmp_path / "exposure.jsonl")
    ledger.record_policy(exposure="none", exemplar_ids=[], guard_ngram=8)
    for text in ("Describe the task.", "Scores: 0.61"):
        messages = [{"role": "user", "content": text}]
        sent = ledger.record_request(
            backend="local", model="bundled:smollm2", messages=messages, row_ids=[], params={}
        )
        ledger.record_response(sent, texts=["Is it positive?"], usage={}, seconds=0.1)
    (tmp_path / "metrics.json").write_text(json.dumps(ledger.seal()), encoding="utf-8")
    text = exposure_text(tmp_path)
    assert "Requests sent to the teaching assistant: 2 (local:bundled:smollm2)" in text
    assert "Training rows sent: none" in text
    assert f"`{ledger.seal()['ledger_sha256']}` (matches the seal" in text
    assert "WITHIN POLICY" in text
    (tmp_path / "metrics.json").write_text("{}", encoding="utf-8")  # no seal: said so
    assert "does not match a seal" in exposure_text(tmp_path)
    (tmp_path / "exposure.jsonl").unlink()
    assert "could not be read" in exposure_text(tmp_path)
