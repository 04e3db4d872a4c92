"""The exposure ledger's hash chain and seal, and ``gpta audit`` failing closed.

A small ledger is written by the real channel (a scripted chat model stands in for the
server: these are fault tests); metrics.json holds its seal as a finished run's does.
Hypothesis then edits copies of it the ways a careless or hostile person could, and every
edit must be caught: the audit raises a user error (exit 2) or its verdict is not WITHIN
POLICY (``--strict`` exits 1).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import subprocess
import tempfile
from pathlib import Path

import pytest
from conftest import gpta_cli
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from gpta.chat.base import ChatResult, Sampling, Usage
from gpta.errors import GptaUserError
from gpta.privacy import ExposureChannel, ExposureLedger, LeakGuard, RequestBlocked
from gpta.privacy.audit import audit_run
from gpta.privacy.ledger import GENESIS, messages_hash, record_hash

SRC = str(Path(__file__).resolve().parents[1] / "src")
ROWS = [("train.jsonl:line 1", ["my flight to Denver was cancelled twice and nobody called"])]


class ScriptedChat:
    backend, model_name = "scripted", "fixed"

    def __init__(self):
        self.fail_next = False

    def chat(self, messages, sampling, **params):
        n = sampling.n
        if self.fail_next:
            self.fail_next = False
            raise ConnectionError("the server went away")
        return ChatResult(["Say how the traveller feels."] * n, Usage(30, 6 * n), 0.01)


def _send(channel: ExposureChannel, text: str, seed: int = 0):
    return channel.send(
        [{"role": "system", "content": "be brief"}, {"role": "user", "content": text}],
        Sampling(n=2, temperature=1.0, top_p=1.0, max_new_tokens=16, seed=seed),
    )


def _write_run(run_dir: Path) -> None:
    """A finished run's ledger and metrics.json: answered, failed and blocked requests."""
    run_dir.mkdir(parents=True, exist_ok=True)
    ledger = ExposureLedger(run_dir / "exposure.jsonl")
    ledger.record_policy(exposure="none", exemplar_ids=[], guard_ngram=8)
    chat = ScriptedChat()
    channel = ExposureChannel(chat, ledger, guard=LeakGuard(ROWS, n=8))
    _send(channel, "Airline tweets, labelled negative or positive. Write one instruction.")
    _send(channel, "Write to ops@airline.example or call 415 555 0199 for the labels.", seed=1)
    chat.fail_next = True
    with pytest.raises(ConnectionError):
        _send(channel, "Try again.", seed=2)
    with pytest.raises(RequestBlocked):
        _send(channel, "e.g. my flight to Denver was cancelled twice and nobody called")
    (run_dir / "metrics.json").write_text(json.dumps({"task": "classification", **ledger.seal()}))


@pytest.fixture(scope="module")
def run_files(tmp_path_factory) -> dict[str, bytes]:
    run_dir = tmp_path_factory.mktemp("sealed")
    _write_run(run_dir)
    return {name: (run_dir / name).read_bytes() for name in ("exposure.jsonl", "metrics.json")}


def _materialise(files: dict[str, bytes], run_dir: Path) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (run_dir / name).write_bytes(content)
    return run_dir


def _caught(run_dir: Path) -> bool:
    try:
        report = audit_run(run_dir)
    except GptaUserError:
        return True  # not audited at all: exit 2
    return not report.ok and "WITHIN POLICY" not in report.verdict


def test_the_untouched_ledger_verifies(run_files, tmp_path):
    run_dir = _materialise(run_files, tmp_path / "run")
    report = audit_run(run_dir)
    assert report.ok and report.sealed, report.integrity
    assert report.requests == 3 and report.responses == 2 and report.errors == 1
    assert report.blocked == 1 and report.records == 8
    records = [json.loads(x) for x in run_files["exposure.jsonl"].splitlines()]
    assert records[0]["prev"] == GENESIS
    assert all(b["prev"] == a["hash"] for a, b in itertools.pairwise(records))
    assert all(r["hash"] == record_hash(r) for r in records)
    assert "WITHIN POLICY" in report.verdict


# --- the edits, generated ----------------------------------------------------------------
_JSON_LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 10**6),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
)


def _leaves(value, path=()):
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, (*path, key))
    elif isinstance(value, list) and value:
        for index, item in enumerate(value):
            yield from _leaves(item, (*path, index))
    else:
        yield path


def _set(value, path, new):
    for key in path[:-1]:
        value = value[key]
    value[path[-1]] = new


@st.composite
def _edited(draw, files: dict[str, bytes]) -> tuple[str, dict[str, bytes]]:
    lines = files["exposure.jsonl"].decode("utf-8").splitlines(keepends=True)
    metrics = json.loads(files["metrics.json"])
    n = len(lines)
    kind = draw(
        st.sampled_from(
            [
                "empty",
                "delete",
                "truncate",
                "duplicate",
                "swap",
                "edit",
                "edit_rehash",
                "add_key",
                "drop_key",
                "scrubbed_request",
                "append_chained",
                "garble",
                "bad_bytes",
                "seal_count",
                "seal_hash",
                "seal_removed",
                "metrics_removed",
            ]
        )
    )
    out = list(lines)
    new_metrics: dict | None = dict(metrics)
    raw_edit: bytes | None = None
    if kind == "empty":
        out = []
    elif kind == "delete":
        del out[draw(st.integers(0, n - 1))]
    elif kind == "truncate":
        out = out[: draw(st.integers(0, n - 1))]
    elif kind == "duplicate":
        out.insert(draw(st.integers(0, n)), out[draw(st.integers(0, n - 1))])
    elif kind == "swap":
        i, j = draw(st.integers(0, n - 1)), draw(st.integers(0, n - 1))
        assume(out[i] != out[j])
        out[i], out[j] = out[j], out[i]
    elif kind in ("edit", "edit_rehash", "add_key", "drop_key"):
        i = draw(st.integers(0, n - 1))
        record = json.loads(out[i])
        before = json.dumps(record, sort_keys=True)
        if kind == "add_key":
            record[draw(st.text(min_size=1, max_size=8))] = draw(_JSON_LEAF)
        elif kind == "drop_key":
            del record[draw(st.sampled_from(sorted(record)))]
        else:
            path = draw(st.sampled_from(list(_leaves(record))))
            _set(record, path, draw(_JSON_LEAF))
        if kind == "edit_rehash":  # the editor also fixes the hashes they can see
            if record.get("event") == "request" and isinstance(record.get("messages"), list):
                with contextlib.suppress(TypeError):
                    record["sha256"] = messages_hash(record["messages"])
            record["hash"] = record_hash(record)
        assume(json.dumps(record, sort_keys=True) != before)
        out[i] = json.dumps(record, ensure_ascii=False) + "\n"
    elif kind == "scrubbed_request":  # a request rewritten and marked scrubbed (old loophole)
        indices = [i for i, x in enumerate(out) if '"event": "request"' in x]
        i = draw(st.sampled_from(indices))
        record = json.loads(out[i])
        new_text = draw(st.text(min_size=1, max_size=40))
        assume(new_text != record["messages"][-1]["content"])
        record["messages"][-1]["content"] = new_text
        record["scrubbed"] = True
        record["sha256"] = messages_hash(record["messages"])
        if draw(st.booleans()):
            record["hash"] = record_hash(record)
        out[i] = json.dumps(record, ensure_ascii=False) + "\n"
    elif kind == "append_chained":  # a record added after the run, chained correctly
        last = json.loads(out[-1])
        record = {"event": "error", "id": 99, "time": 1.0, "error": "x", "prev": last["hash"]}
        record["hash"] = record_hash(record)
        out.append(json.dumps(record) + "\n")
    elif kind == "garble":
        i = draw(st.integers(0, n - 1))
        cut = draw(st.integers(1, len(out[i]) - 2))
        out[i] = out[i][:cut] + ("\n" if i < n - 1 or draw(st.booleans()) else "")
    elif kind == "bad_bytes":
        i = draw(st.integers(0, n - 1))
        encoded = [x.encode("utf-8") for x in out]
        at = draw(st.integers(0, len(encoded[i]) - 1))
        encoded[i] = (
            encoded[i][:at]
            + draw(st.sampled_from([b"\xff", b"\xc3", b"\x80\x80"]))
            + (encoded[i][at:])
        )
        raw_edit = b"".join(encoded)
    elif kind == "seal_count":
        new_metrics["ledger_records"] = draw(st.integers(0, 50).filter(lambda k: k != n))
    elif kind == "seal_hash":
        new_metrics["ledger_sha256"] = draw(st.text("0123456789abcdef", min_size=64, max_size=64))
        assume(new_metrics["ledger_sha256"] != metrics["ledger_sha256"])
    elif kind == "seal_removed":
        del new_metrics[draw(st.sampled_from(["ledger_sha256", "ledger_records"]))]
    elif kind == "metrics_removed":
        new_metrics = None
    edited = {"exposure.jsonl": raw_edit or "".join(out).encode("utf-8")}
    if new_metrics is not None:
        edited["metrics.json"] = json.dumps(new_metrics).encode("utf-8")
    assume(edited != files)
    return kind, edited


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_every_generated_edit_of_a_sealed_ledger_is_caught(run_files, data):
    kind, edited = data.draw(_edited(run_files))
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = _materialise(edited, Path(tmp) / "run")
        assert _caught(run_dir), (kind, edited)


# --- the cases named in the issue, through the CLI -----------------------------------------
def _cli(*args: str) -> subprocess.CompletedProcess:
    return gpta_cli("audit", *args, env={"PYTHONPATH": SRC}, timeout=120)


def _edit_lines(run_dir: Path, edit) -> None:
    path = run_dir / "exposure.jsonl"
    path.write_text("".join(edit(path.read_text("utf-8").splitlines(keepends=True))), "utf-8")


def test_strict_audit_fails_on_an_emptied_ledger_a_deleted_request_and_a_marked_edit(
    run_files, tmp_path
):
    good = _materialise(run_files, tmp_path / "good")
    assert _cli(str(good), "--strict").returncode == 0

    emptied = _materialise(run_files, tmp_path / "emptied")
    (emptied / "exposure.jsonl").write_text("")
    deleted = _materialise(run_files, tmp_path / "deleted")
    _edit_lines(deleted, lambda lines: [x for x in lines if '"id": 2' not in x])
    marked = _materialise(run_files, tmp_path / "marked")

    def mark(lines):
        record = json.loads(lines[1])
        record["messages"][-1]["content"] = "Airline tweets. Write one instruction."
        record["sha256"] = messages_hash(record["messages"])
        record["scrubbed"] = True
        return [lines[0], json.dumps(record) + "\n", *lines[2:]]

    _edit_lines(marked, mark)
    for run_dir, reason in [
        (emptied, "the ledger holds no record"),
        (deleted, "the hash chain is broken at line 4"),
        (marked, "the hash chain is broken at line 2"),
    ]:
        plain = _cli(str(run_dir))
        assert plain.returncode == 0 and "VERDICT: UNVERIFIABLE" in plain.stdout, plain.stdout
        assert reason in plain.stdout
        strict = _cli(str(run_dir), "--strict")
        assert strict.returncode == 1 and reason in strict.stdout


def test_a_count_mismatch_and_an_unsealed_run_are_unverifiable(run_files, tmp_path):
    counted = _materialise(run_files, tmp_path / "count")
    metrics = json.loads(run_files["metrics.json"])
    (counted / "metrics.json").write_text(json.dumps({**metrics, "ledger_records": 9}))
    report = audit_run(counted)
    assert not report.ok and "holds 8 record(s) but the run sealed 9" in report.verdict

    # records removed from the end, the seal left as it was
    cut = _materialise(run_files, tmp_path / "cut")
    _edit_lines(cut, lambda lines: lines[:-2])
    assert "holds 6 record(s) but the run sealed 8" in audit_run(cut).verdict

    unsealed = _materialise(run_files, tmp_path / "unsealed")
    (unsealed / "metrics.json").unlink()
    report = audit_run(unsealed)
    assert "UNVERIFIABLE: the ledger is not sealed" in report.verdict
    assert report.requests == 3  # the facts are still reported


def test_a_ledger_of_an_older_gpta_is_said_to_be_unverifiable(run_files, tmp_path):
    old = _materialise(run_files, tmp_path / "old")

    def strip(lines):
        out = []
        for line in lines:
            record = json.loads(line)
            record.pop("prev"), record.pop("hash")
            out.append(json.dumps(record) + "\n")
        return out

    _edit_lines(old, strip)
    report = audit_run(old)
    assert not report.ok and "no hash chain (written by a gpta older" in report.verdict
    assert _cli(str(old), "--strict").returncode == 1


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            b'{"event": "policy", "exposure": "none"}\n{"event": "request", "id": 1, "mes\xff"}\n',
            "line 2: not UTF-8",
        ),
        (
            b'{"event": "policy", "exposure": "none"}\n[1, 2, 3]\n',
            "line 2: a ledger record must be a JSON object",
        ),
        (
            b'{"event": "request", "id": 1, "messages": "hello", "sha256": "x"}\n',
            "line 1: not a ledger record of the expected shape (messages",
        ),
        (b'{"event": "request", "id": "one", "messages": [], "sha256": "x"}\n', "(id:"),
        (b'{"event": "teleport", "id": 1}\n', "(event:"),
        (b'{"event": "response", "id": 1, "texts": "ok", "usage": {}}\n', "(texts:"),
    ],
)
def test_a_damaged_ledger_is_a_clear_error_not_a_traceback(tmp_path, content, expected):
    (tmp_path / "exposure.jsonl").write_bytes(content)
    result = _cli(str(tmp_path))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error:") and "\n  fix: " in result.stderr
    assert expected in result.stderr


def test_the_report_reads_the_same_damaged_ledger_without_failing(tmp_path):
    from gpta.report import load_run

    (tmp_path / "metrics.json").write_text("{}", encoding="utf-8")
    (tmp_path / "exposure.jsonl").write_bytes(
        b'{"event": "policy", "exposure": "none"}\n'
        b'{"event": "request", "id": 1, "chars": 5, "backend": "b\xff"}\n'
        b"[1, 2, 3]\nnot json\n"
        b'{"event": "response", "id": 1, "usage": {"prompt_tokens": 7}}\n{"event": "req'
    )
    exposure = load_run(tmp_path).exposure
    assert (exposure.requests, exposure.responses, exposure.characters) == (1, 1, 5)
    assert exposure.backends == ["b\ufffd"] and exposure.policy == {"exposure": "none"}
    assert exposure.per_request[0]["prompt_tokens"] == 7


def test_a_resumed_ledger_continues_the_chain_and_drops_a_cut_line(tmp_path):
    ledger = ExposureLedger(tmp_path / "exposure.jsonl")
    ledger.record_policy(exposure="none", exemplar_ids=[])
    ledger.record_request(
        backend="b", model="m", messages=[{"role": "user", "content": "a"}], row_ids=[], params={}
    )
    with (tmp_path / "exposure.jsonl").open("a", encoding="utf-8") as handle:
        handle.write('{"event": "request", "id": 2, "messa')  # the process died mid-write
    again = ExposureLedger(tmp_path / "exposure.jsonl")  # the resumed run
    assert (
        again.record_request(
            backend="b",
            model="m",
            messages=[{"role": "user", "content": "b"}],
            row_ids=[],
            params={},
        )
        == 2
    )
    (tmp_path / "metrics.json").write_text(json.dumps(again.seal()))
    report = audit_run(tmp_path)
    assert report.ok and report.records == 3 and report.unreadable_lines == 0, report.integrity
