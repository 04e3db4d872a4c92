"""Every input has a size bound, checked before it is read whole (issue 28, class 2).

Files that would be too big are sparse (``truncate``) or ``/dev/zero`` and FIFOs, never a
real allocation; a bound is lowered through its environment variable where a small input
shows the rule as well. Each refusal must be a :class:`GptaUserError` (exit 2 from the CLI,
no traceback) that names the input and the ``GPTA_MAX_*`` variable that raises the bound.
docs/input-bounds.md lists the bounds.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import sqlite3
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gpta import limits, safe_yaml
from gpta.chat.base import ChatResult, Sampling, Usage, bound_answers
from gpta.chat.usage import checked_usage, plausible_tokens
from gpta.cli import main
from gpta.config import AssistantConfig, build_config, read_config_file
from gpta.data import Table, read_table
from gpta.errors import GptaUserError
from gpta.llm.cache import CachedChatModel, ResponseCache
from gpta.manifest import parse_manifest
from gpta.privacy import ExposureChannel, ExposureLedger

QUICK = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
SAMPLING = Sampling(n=2, temperature=0.5, top_p=0.95, max_new_tokens=64, seed=0)


def _gpta(*args: str) -> tuple[int | str | None, str]:
    """``gpta ARGS`` in-process: (exit status, stderr)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            main(list(args))
            code: int | str | None = 0
        except SystemExit as exit_info:
            code = exit_info.code
    return code, err.getvalue()


def _refused(code, stderr: str, env: str) -> None:
    assert code == 2, stderr
    assert "Traceback" not in stderr
    assert "error:" in stderr, stderr
    assert env in stderr, stderr


def _sparse(path: Path, size: int) -> Path:
    with path.open("wb") as handle:
        handle.truncate(size)
    return path


# --- the bounds themselves -------------------------------------------------------------------


def test_a_bound_is_raised_by_its_variable_and_a_bad_value_is_named(monkeypatch):
    monkeypatch.delenv("GPTA_MAX_CLASSES", raising=False)
    assert limits.CLASSES.value() == 1000
    monkeypatch.setenv("GPTA_MAX_CLASSES", "20_000")
    assert limits.CLASSES.value() == 20_000
    for bad in ("0", "-3", "lots", "1.5"):
        monkeypatch.setenv("GPTA_MAX_CLASSES", bad)
        with pytest.raises(GptaUserError, match="GPTA_MAX_CLASSES") as caught:
            limits.CLASSES.value()
        assert "unset it" in caught.value.hint


def test_every_bound_has_its_own_variable_and_is_documented():
    envs = [bound.env for bound in limits.BOUNDS]
    assert len(set(envs)) == len(envs)
    doc = (Path(__file__).resolve().parents[1] / "docs" / "input-bounds.md").read_text()
    for bound in limits.BOUNDS:
        assert bound.env in doc
        assert f"{bound.default:,}" in doc, bound.env


class ChunkedStream(io.RawIOBase):
    """A stream that answers each read with at most the next of ``sizes`` bytes (a pipe)."""

    def __init__(self, data: bytes, sizes: list[int]) -> None:
        self.data, self.sizes, self.at = data, list(sizes), 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        step = self.sizes.pop(0) if self.sizes else len(self.data)
        step = max(1, step) if n < 0 else max(1, min(step, n))
        chunk = self.data[self.at : self.at + step]
        self.at += len(chunk)
        return chunk


@QUICK
@given(
    lines=st.lists(st.integers(min_value=0, max_value=90), min_size=1, max_size=12),
    sizes=st.lists(st.integers(min_value=1, max_value=70), max_size=30),
    limit=st.integers(min_value=1, max_value=80),
)
def test_the_line_bound_refuses_exactly_the_first_long_line(lines, sizes, limit):
    """However the bytes arrive (chunks split anywhere), a line over the bound is refused,
    naming it, and a file whose lines all fit is returned whole."""
    data = b"\n".join(b"x" * n for n in lines)
    over = [i for i, n in enumerate(lines) if n > limit]
    bound = limits.Bound("GPTA_TEST_LINE", limit, "bytes a line")
    stream = ChunkedStream(data, sizes)
    if not over:
        assert limits.read_stream_bounded(stream, name="in", lines=bound) == data
        return
    with pytest.raises(GptaUserError) as caught:
        limits.read_stream_bounded(stream, name="in", lines=bound)
    assert f"in, line {over[0] + 1}:" in caught.value.message
    assert "GPTA_TEST_LINE" in caught.value.message


def test_a_stream_is_cut_off_at_the_bound_not_read_to_its_end(monkeypatch):
    monkeypatch.setenv("GPTA_MAX_DATA_BYTES", "4096")
    with open("/dev/zero", "rb") as zero:
        with pytest.raises(GptaUserError, match="stdin: more than 4,096 bytes"):
            limits.read_stream_bounded(zero, name="stdin")
        assert zero.tell() <= 4097  # stopped at the bound


def test_a_long_line_stops_the_read_of_a_regular_file_early(tmp_path, monkeypatch):
    """A file under the byte bound (raised, here) but one long line is refused once the line
    passes its bound, not after the whole file is in memory."""
    monkeypatch.setenv("GPTA_MAX_LINE_BYTES", str(64 * 1024))
    sparse = _sparse(tmp_path / "one-line.jsonl", 512 * limits.MIB)
    with sparse.open("rb") as handle:
        with pytest.raises(GptaUserError, match="line 1: longer than 65,536 bytes"):
            limits.read_stream_bounded(handle, name="data", lines=limits.LINE_BYTES)
        assert handle.tell() <= 2 * limits.MIB


# --- data files --------------------------------------------------------------------------------


def test_a_sparse_data_file_over_the_bound_is_refused_from_its_size(tmp_path):
    for suffix in (".jsonl", ".csv", ".parquet"):
        path = _sparse(tmp_path / f"huge{suffix}", limits.DATA_BYTES.value() + 1)
        with pytest.raises(GptaUserError, match="GPTA_MAX_DATA_BYTES") as caught:
            read_table(path)
        assert str(path) in caught.value.message
        assert f"{limits.DATA_BYTES.value() + 1:,} bytes" in caught.value.message


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "tsv"])
def test_dev_zero_is_read_only_up_to_the_line_bound(monkeypatch, fmt):
    monkeypatch.setenv("GPTA_MAX_LINE_BYTES", str(256 * 1024))
    with pytest.raises(GptaUserError, match="GPTA_MAX_LINE_BYTES") as caught:
        read_table("/dev/zero", fmt=fmt)
    assert "/dev/zero, line 1" in caught.value.message


def test_a_fifo_is_read_within_the_bound(tmp_path, monkeypatch):
    """A pipe (``--train <(...)``) has no size to check: it is read, and cut off at the bound."""
    monkeypatch.setenv("GPTA_MAX_DATA_BYTES", "100000")
    fifo = tmp_path / "rows.jsonl"
    os.mkfifo(fifo)
    row = (json.dumps({"text": "a fine film", "label": "pos"}) + "\n").encode()

    def write() -> None:
        with contextlib.suppress(BrokenPipeError), fifo.open("wb") as handle:
            for _ in range(200_000 // len(row)):
                handle.write(row)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        with pytest.raises(GptaUserError, match=r"more than 100,000 bytes.*GPTA_MAX_DATA_BYTES"):
            read_table(fifo)
    finally:
        writer.join(timeout=10)
    small = tmp_path / "small.jsonl"
    os.mkfifo(small)
    writer = threading.Thread(target=lambda: small.write_bytes(row * 3), daemon=True)
    writer.start()
    assert len(read_table(small)) == 3  # within the bound: read as a file would be
    writer.join(timeout=10)


def test_parquet_is_bounded_by_its_uncompressed_size(tmp_path, monkeypatch):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "squeezed.parquet"
    table = pa.table({"text": ["a" * 1000] * 2000, "label": ["pos", "neg"] * 1000})
    pq.write_table(table, path, use_dictionary=False, compression="zstd")
    assert path.stat().st_size < 200_000
    monkeypatch.setenv("GPTA_MAX_DATA_BYTES", "1000000")
    with pytest.raises(GptaUserError, match=r"bytes uncompressed.*GPTA_MAX_DATA_BYTES"):
        read_table(path)
    monkeypatch.setenv("GPTA_MAX_DATA_BYTES", "10000000")
    assert len(read_table(path)) == 2000


def test_a_datasets_folder_is_bounded_before_its_rows_are_listed(tmp_path, monkeypatch):
    import datasets

    datasets.Dataset.from_dict({"text": ["x" * 500] * 400, "label": [0, 1] * 200}).save_to_disk(
        str(tmp_path / "ds")
    )
    monkeypatch.setenv("GPTA_MAX_DATA_BYTES", "50000")
    with pytest.raises(GptaUserError, match=r"bytes of data.*GPTA_MAX_DATA_BYTES"):
        read_table(tmp_path / "ds")


def test_train_on_dev_zero_or_a_sparse_file_exits_2_naming_the_bound(tmp_path, monkeypatch):
    monkeypatch.setenv("GPTA_MAX_LINE_BYTES", str(64 * 1024))
    out = tmp_path / "run"
    common = ("--description", "reviews", "--output-dir", str(out), "-q")
    _refused(
        *_gpta("train", "--train", "/dev/zero", "--format", "jsonl", *common), "GPTA_MAX_LINE_BYTES"
    )
    sparse = _sparse(tmp_path / "train.csv", 3 * limits.GIB)
    _refused(*_gpta("train", "--train", str(sparse), *common), "GPTA_MAX_DATA_BYTES")
    assert not out.exists()


def test_predict_input_is_bounded_on_stdin_and_from_a_file(tmp_path, monkeypatch):
    from gpta.cli.inference import _read_rows

    monkeypatch.setenv("GPTA_MAX_DATA_BYTES", "1000")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"a fine film\n" * 200)))
    with pytest.raises(GptaUserError, match="stdin: more than 1,000 bytes"):
        _read_rows("-", None, "text")
    monkeypatch.delenv("GPTA_MAX_DATA_BYTES")
    monkeypatch.setenv("GPTA_MAX_LINE_BYTES", "100")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"ok\n" + b"y" * 500)))
    with pytest.raises(GptaUserError, match=r"stdin, line 2:.*GPTA_MAX_LINE_BYTES"):
        _read_rows("-", "jsonl", "text")
    sparse = _sparse(tmp_path / "in.txt", 10_000)
    with pytest.raises(GptaUserError, match=r"line 1:.*GPTA_MAX_LINE_BYTES"):
        _read_rows(str(sparse), "text", "text")


# --- YAML configs ------------------------------------------------------------------------------

BOMB = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]\n"
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True)
)


def test_an_alias_bomb_fails_fast_with_the_line_named(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB)
    assert len(BOMB) < 2048
    started = time.monotonic()
    with pytest.raises(GptaUserError, match=r"line 2: an alias \(\*a\)") as caught:
        read_config_file(path)
    assert time.monotonic() - started < 5  # generous: the unguarded load took 46 s
    assert str(path) in caught.value.message
    code, stderr = _gpta("train", "--config", str(path), "--description", "x", "-q")
    assert code == 2 and "alias" in stderr and "Traceback" not in stderr
    code, stderr = _gpta("train", "--set", "data.description=[&x [1], *x]", "-q")
    assert code == 2 and "alias (*x)" in stderr


scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=20)
documents = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@QUICK
@given(documents)
def test_yaml_without_aliases_reads_as_pyyaml_reads_it_and_any_alias_is_refused(document):
    text = yaml.safe_dump(document)
    assert safe_yaml.safe_load(text) == yaml.safe_load(text)
    shared = [document, document]  # the same object twice: safe_dump writes an alias
    text = yaml.safe_dump(shared)
    if any(isinstance(event, yaml.AliasEvent) for event in yaml.parse(text)):
        with pytest.raises(yaml.YAMLError, match="alias"):
            safe_yaml.safe_load(text)


def test_config_files_and_set_values_are_bounded_in_bytes(tmp_path, monkeypatch):
    sparse = _sparse(tmp_path / "config.yaml", limits.CONFIG_BYTES.value() + 1)
    with pytest.raises(GptaUserError, match="GPTA_MAX_CONFIG_BYTES"):
        read_config_file(sparse)
    run = tmp_path / "run"
    run.mkdir()
    _sparse(run / "config.yaml", limits.CONFIG_BYTES.value() + 1)
    with pytest.raises(GptaUserError, match="GPTA_MAX_CONFIG_BYTES"):
        safe_yaml.load_file(run / "config.yaml", what="run config")
    monkeypatch.setenv("GPTA_MAX_CONFIG_BYTES", "100")
    code, stderr = _gpta("train", "--set", "data.description=" + "w" * 200, "-q")
    _refused(code, stderr, "GPTA_MAX_CONFIG_BYTES")


# --- descriptions ------------------------------------------------------------------------------


def test_a_5_mb_description_file_is_refused_before_it_is_read(tmp_path):
    path = _sparse(tmp_path / "description.txt", 5_000_000)
    config = build_config({"data": {"description_file": str(path)}})
    with pytest.raises(GptaUserError, match="GPTA_MAX_DESCRIPTION_TOKENS") as caught:
        config.description_text()
    assert "5,000,000 bytes" in caught.value.message


def test_a_description_is_bounded_in_tokens_inline_or_in_a_file(tmp_path, monkeypatch):
    words = "The rows are short reviews of films. " * 2000  # ~74,000 characters
    path = tmp_path / "description.txt"
    path.write_text(words)
    for data in ({"description": words}, {"description_file": str(path)}):
        with pytest.raises(GptaUserError, match="GPTA_MAX_DESCRIPTION_TOKENS"):
            build_config({"data": data}).description_text()
    monkeypatch.setenv("GPTA_MAX_DESCRIPTION_TOKENS", "40000")
    for data in ({"description": words}, {"description_file": str(path)}):
        assert build_config({"data": data}).description_text() == words.strip()
    monkeypatch.delenv("GPTA_MAX_DESCRIPTION_TOKENS")
    train = tmp_path / "train.jsonl"
    train.write_text(
        "".join(json.dumps({"text": f"film {i}", "label": i % 2}) + "\n" for i in range(40))
    )
    code, stderr = _gpta(
        "train",
        "--train",
        str(train),
        "--description-file",
        str(path),
        "--output-dir",
        str(tmp_path / "run"),
        "-q",
    )
    _refused(code, stderr, "GPTA_MAX_DESCRIPTION_TOKENS")  # visible under -q: it is an error
    assert not (tmp_path / "run").exists()


# --- TA answers --------------------------------------------------------------------------------


class HugeAnswer:
    """A backend whose every completion is ``size`` characters long (a runaway server)."""

    backend, model_name = "scripted", "huge"

    def __init__(self, size: int) -> None:
        self.size = size

    def chat(self, messages, sampling, **params):
        return ChatResult(["x" * self.size] * sampling.n, Usage(10, 10), 0.01)


def test_a_huge_answer_is_cut_with_a_note_before_the_ledger_and_the_cache_keep_it(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("GPTA_MAX_ANSWER_CHARS", "1000")
    cache = ResponseCache(tmp_path / "cache.sqlite")
    ledger = ExposureLedger(tmp_path / "exposure.jsonl")
    channel = ExposureChannel(CachedChatModel(HugeAnswer(50_000), cache), ledger)
    result = channel.send([{"role": "user", "content": "write an instruction"}], SAMPLING)
    assert [len(t) for t in result.texts] == [1000, 1000]
    assert sum("AnswerTooLong" in f and "GPTA_MAX_ANSWER_CHARS" in f for f in result.faults) == 2
    records = [json.loads(line) for line in ledger.path.read_text().splitlines()]
    response = next(r for r in records if r["event"] == "response")
    assert [len(t) for t in response["texts"]] == [1000, 1000]
    assert any("held 50,000 characters; kept the first 1,000" in f for f in response["faults"])
    stored = sqlite3.connect(cache.path).execute("SELECT texts FROM responses").fetchone()[0]
    assert max(len(t) for t in json.loads(stored)) == 1000
    cache.close()


def test_what_the_history_keeps_of_a_huge_answer_is_cut(tmp_path, monkeypatch):
    """The teacher's proposals (``raw`` is what history.jsonl records) come through the
    channel, so they hold the cut answer and the fault that says so."""
    from gpta.assistant import History, TaskBrief, TeachingAssistant
    from gpta.assistant.prefix import PrefixCandidate
    from gpta.assistant.prompts import initial_messages

    monkeypatch.setenv("GPTA_MAX_ANSWER_CHARS", "500")
    brief = TaskBrief(
        family="text classification",
        reads="The network reads a review.",
        description="Film reviews.",
        label_names=["neg", "pos"],
        metric="accuracy",
        max_words=20,
    )
    channel = ExposureChannel(HugeAnswer(30_000), ExposureLedger(tmp_path / "exposure.jsonl"))
    ta = TeachingAssistant(
        channel,
        brief,
        AssistantConfig(candidates=2, structured_output=False),
        count_tokens=lambda text: len(text.split()),
    )
    batch = ta.propose(initial_messages(brief), seed=0)
    assert batch.error is None and len(batch.proposals) == 2
    assert all(len(p.raw) <= 500 for p in batch.proposals)
    assert any("AnswerTooLong" in fault for fault in batch.faults)
    history = History(tmp_path / "history.jsonl")
    proposal = batch.proposals[0]
    history.add_proposal(PrefixCandidate.proposed(proposal), round=0, improved=False)
    assert history.path.stat().st_size < 2000


@QUICK
@given(st.lists(st.text(max_size=40), min_size=1, max_size=4), st.integers(1, 30))
def test_bound_answers_cuts_only_what_is_over(texts, limit):
    os.environ["GPTA_MAX_ANSWER_CHARS"] = str(limit)
    try:
        result = bound_answers(ChatResult(texts, Usage(), 0.0))
    finally:
        del os.environ["GPTA_MAX_ANSWER_CHARS"]
    assert result.texts == [t[:limit] for t in texts]
    assert len(result.faults) == sum(len(t) > limit for t in texts)


class ScriptedServer(BaseHTTPRequestHandler):
    """An OpenAI-compatible endpoint whose answer the test sets: ``body_size`` bytes of a
    completion (streamed from a small buffer; with or without Content-Length) or a
    completion with the given ``usage``."""

    mode: ClassVar[dict] = {}
    requests = 0

    def log_message(self, *args):  # quiet
        pass

    def do_POST(self):
        type(self).requests += 1
        self.rfile.read(int(self.headers.get("content-length", 0)))
        mode = type(self).mode
        if "body_size" in mode:
            head = b'{"id":"x","object":"chat.completion","created":0,"model":"m",'
            head += b'"choices":[{"index":0,"finish_reason":"stop","message":{"role":'
            head += b'"assistant","content":"'
            tail = b'"}}]}'
            filler = mode["body_size"] - len(head) - len(tail)
            block = b"y" * 65536
            with contextlib.suppress(OSError):  # the client hangs up at its bound
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                if mode.get("declare", True):
                    self.send_header("Content-Length", str(mode["body_size"]))
                self.end_headers()
                self.wfile.write(head)
                for _ in range(filler // len(block)):
                    self.wfile.write(block)
                self.wfile.write(b"y" * (filler % len(block)) + tail)
            return
        body = json.dumps(
            {
                "id": "x",
                "object": "chat.completion",
                "created": 0,
                "model": "m",
                "choices": [
                    {
                        "index": i,
                        "finish_reason": "stop",
                        "message": {"role": "assistant", "content": "Decide the mood."},
                    }
                    for i in range(2)
                ],
                "usage": mode["usage"],
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), ScriptedServer)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    ScriptedServer.requests = 0
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()
    httpd.server_close()


def _openai(base_url: str):
    from gpta.llm.openai_backend import OpenAIChatModel

    return OpenAIChatModel(
        AssistantConfig(
            backend="openai",
            model="m",
            base_url=base_url,
            max_retries=2,
            retry_backoff=0.01,
            retry_max_wait=0.05,
        )
    )


@pytest.mark.parametrize("declare", [True, False])
def test_a_20_mb_answer_is_not_read_past_the_socket_bound(server, monkeypatch, declare):
    from gpta.chat.base import LLMRequestError

    monkeypatch.setenv("GPTA_MAX_RESPONSE_BYTES", str(256 * 1024))
    ScriptedServer.mode = {"body_size": 20 * limits.MIB, "declare": declare}
    model = _openai(server)
    with pytest.raises(LLMRequestError) as caught:
        model.chat([{"role": "user", "content": "hi"}], SAMPLING)
    assert "ResponseTooLarge" in str(caught.value)
    assert "GPTA_MAX_RESPONSE_BYTES" in str(caught.value)
    assert caught.value.attempts == 1 and ScriptedServer.requests == 1  # not asked again
    ScriptedServer.mode = {"body_size": 4096}  # within the bound: read as before
    one = Sampling(n=1, temperature=0.5, top_p=0.95, max_new_tokens=4096, seed=0)
    assert len(model.chat([{"role": "user", "content": "hi"}], one).texts[0]) > 3000


@pytest.mark.parametrize(
    "reported",
    [-5, 1e30, float("nan"), 12.5, "12", True, 10**12, float("inf")],
    ids=repr,
)
def test_absurd_usage_from_a_server_is_replaced_by_the_estimate(server, reported):
    ScriptedServer.mode = {"usage": {"prompt_tokens": reported, "completion_tokens": reported}}
    result = _openai(server).chat([{"role": "user", "content": "hi there"}], SAMPLING)
    assert 0 < result.usage.prompt_tokens < 100
    assert 0 < result.usage.completion_tokens < 100
    warned = [f for f in result.faults if f.startswith("UsageImplausible")]
    assert len(warned) == 2 and "gpta's estimate" in warned[0]
    ScriptedServer.mode = {"usage": {"prompt_tokens": 9, "completion_tokens": 11}}
    honest = _openai(server).chat([{"role": "user", "content": "hi there"}], SAMPLING)
    assert honest.usage == Usage(9, 11)
    assert not any(f.startswith("UsageImplausible") for f in honest.faults)


@QUICK
@given(
    st.one_of(
        st.integers(min_value=-(10**15), max_value=10**15),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=5),
        st.booleans(),
        st.none(),
    ),
    st.integers(min_value=0, max_value=10**10),
)
def test_usage_is_recorded_as_given_only_when_a_request_could_take_it(value, ceiling):
    usage, warnings = checked_usage((value, 3), (7, 3), (ceiling, 100))
    plausible = plausible_tokens(value, ceiling)
    if value is None:
        assert usage.prompt_tokens == 7 and not warnings
    elif plausible is None:
        assert usage.prompt_tokens == 7 and len(warnings) == 1
    else:
        assert usage.prompt_tokens == value and not warnings
        assert 0 <= value <= min(ceiling, limits.MAX_TOKENS_PER_CALL)
        assert not isinstance(value, float) or (math.isfinite(value) and value.is_integer())
    assert isinstance(usage.prompt_tokens, int) and not isinstance(usage.prompt_tokens, bool)


# --- saved prefixes ---------------------------------------------------------------------------

MEGA_PREFIX = "Decide the sentiment. " * 50_000  # ~1.1 MB


def test_a_1_mb_prefix_is_refused_at_library_import(tmp_path):
    from gpta.library import PrefixLibrary

    export = tmp_path / "prefixes.json"
    export.write_text(
        json.dumps(
            {
                "entries": [
                    {
                        "prefix": "Rate it.",
                        "task": "classification",
                        "metric": "accuracy",
                        "score": 0.8,
                    },
                    {
                        "prefix": MEGA_PREFIX,
                        "task": "classification",
                        "metric": "accuracy",
                        "score": 0.9,
                    },
                ]
            }
        )
    )
    library = PrefixLibrary(tmp_path / "library.sqlite")
    with pytest.raises(GptaUserError, match=r"entry 1.*GPTA_MAX_PREFIX_CHARS"):
        library.import_file(export)
    assert library.entries() == []  # nothing of the file was imported


def test_a_1_mb_prefix_in_the_library_database_is_refused_as_a_warm_start(tmp_path):
    from gpta.library import LibraryEntry, PrefixLibrary, resolve_warm_start

    library = PrefixLibrary(tmp_path / "library.sqlite")
    library.add(LibraryEntry("abc123", MEGA_PREFIX, "classification", "reviews", "", "acc", 0.9))
    with pytest.raises(GptaUserError, match=r"warm_start abc.*GPTA_MAX_PREFIX_CHARS"):
        resolve_warm_start("abc", library)


def _manifest(**fields) -> dict:
    return {
        "task": "classification",
        "prefix": "",
        "max_length": 64,
        "text_column": "text",
        "label_column": "label",
        "labels": ["neg", "pos"],
        "head": "sequence",
        **fields,
    }


def test_a_1_mb_prefix_or_too_many_labels_in_gpta_json_is_refused(tmp_path):
    where = tmp_path / "gpta.json"
    with pytest.raises(GptaUserError, match=r"'prefix'.*GPTA_MAX_PREFIX_CHARS"):
        parse_manifest(_manifest(prefix=MEGA_PREFIX), where)
    with pytest.raises(GptaUserError, match=r"predict_prefixes\[1\].*GPTA_MAX_PREFIX_CHARS"):
        parse_manifest(_manifest(predict_prefixes=["Rate it.", MEGA_PREFIX]), where)
    with pytest.raises(GptaUserError, match=r"2,000 labels.*GPTA_MAX_CLASSES"):
        parse_manifest(_manifest(labels=[f"L{i}" for i in range(2000)]), where)
    assert parse_manifest(_manifest(prefix="Rate it."), where).prefix == "Rate it."


def test_a_prefix_that_fills_the_whole_input_is_refused_at_predict_time(tmp_path):
    """Under the character bound but longer than max_length tokens: every row's text would be
    cut away and every prediction the same."""
    from gpta.downstream.pipeline import _check_prefix_room
    from gpta.tasks.common import load_tokenizer

    tokenizer = load_tokenizer("bundled:minilm")
    manifest = parse_manifest(_manifest(prefix="Decide the sentiment. " * 30), tmp_path / "g.json")
    with pytest.raises(GptaUserError, match="of the model's 64 input tokens") as caught:
        _check_prefix_room([manifest.prefix], tokenizer, manifest, tmp_path / "gpta.json")
    assert "every prediction would be the same" in caught.value.message
    _check_prefix_room(["Decide the sentiment."], tokenizer, manifest, tmp_path / "gpta.json")


@pytest.mark.parametrize(
    ("prefix", "env"),
    [(MEGA_PREFIX, "GPTA_MAX_CONFIG_BYTES"), (MEGA_PREFIX[:100_000], "GPTA_MAX_PREFIX_CHARS")],
    ids=["1 MB: the file is over its bound", "100 kB: the prefix is"],
)
def test_predict_refuses_a_hand_edited_long_prefix(tmp_path, prefix, env):
    model = tmp_path / "run" / "model"
    model.mkdir(parents=True)
    (model / "gpta.json").write_text(json.dumps(_manifest(prefix=prefix)))
    (tmp_path / "in.txt").write_text("a fine film\n")
    run, given = str(tmp_path / "run"), str(tmp_path / "in.txt")
    _refused(*_gpta("predict", "--model", run, "--input", given), env)


# --- label sets -------------------------------------------------------------------------------


def test_too_many_labels_fail_fast_when_the_task_is_built(monkeypatch):
    from gpta.tasks.classification import ClassificationTask

    rows = [{"text": f"row {i}", "label": f"L{i}"} for i in range(1001)]
    tables = {"train": Table("train.jsonl", rows)}
    with pytest.raises(GptaUserError, match=r"1,001 distinct labels.*GPTA_MAX_CLASSES") as caught:
        ClassificationTask.from_tables(
            tables, text_column="text", label_column="label", max_length=64
        )
    assert "train.jsonl" in caught.value.message and "data.label_column" in caught.value.hint
    monkeypatch.setenv("GPTA_MAX_CLASSES", "2000")
    task = ClassificationTask.from_tables(
        tables, text_column="text", label_column="label", max_length=64
    )
    assert len(task.labels) == 1001


def test_train_with_10_000_labels_exits_2(tmp_path):
    data = tmp_path / "train.jsonl"
    data.write_text(
        "".join(
            json.dumps({"text": f"row {i}", "label": f"L{i % 10_000}"}) + "\n"
            for i in range(20_000)
        )
    )
    code, stderr = _gpta(
        "train",
        "--train",
        str(data),
        "--description",
        "ids",
        "--output-dir",
        str(tmp_path / "run"),
        "-q",
    )
    _refused(code, stderr, "GPTA_MAX_CLASSES")
    assert not (tmp_path / "run").exists()
