"""Hostile and careless input, generated rather than listed (issue 18).

Hypothesis draws tables (CSV/JSONL with odd bytes, missing columns, huge ints, empty labels
and more), configs (YAML/TOML with wrong types, out-of-range numbers, unknown keys, broken
syntax), ``--set`` values, run directories (existing runs, folders gpta did not write, files
in place of folders), saved-model manifests, stdin bytes and cache files. Every case must end
the same way: exit status 2, an ``error:`` line on stderr and no traceback, and nothing under
the output folder or among the input files deleted or changed (a rejected run writes
nothing at all).

The CLI is called in-process (``gpta.cli.main``), and every case fails during validation:
no model is loaded. The table in docs/bad-input.md counts these cases: keep the two in step
(``MAX_EXAMPLES`` and the listed cases below).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import shlex
import string
import sys
import tempfile
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import SHARED_DATA, mark_gpta_run
from hypothesis import HealthCheck, assume, event, example, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from gpta.cli import main
from gpta.config import GptaConfig, build_config, dump_config
from gpta.tasks.labels import shown

# Examples per generated class (the docs/bad-input.md table quotes these).
MAX_EXAMPLES = {
    "tables": 120,
    "configs": 100,
    "set_values": 100,
    "run_dirs": 60,
    "manifests": 40,
    "stdin": 30,
    "cache_files": 30,
    "outputs": 30,
    "label_spellings": 60,
    "column_pairs": 30,
    "option_pairs": 60,
    "ta_outcomes": 60,
    "label_names": 30,
    "http_faults": 12,
    "lookalike_rows": 150,
    "other_alphabet": 40,
    "exemplar_secrets": 120,
}
DESCRIPTION = "Short reviews labelled pos or neg."
RUN_FILES = ("config.yaml", "splits.json", "history.jsonl", "exposure.jsonl", "metrics.json",
             "predictions", "model", "checkpoints", "report")  # fmt: skip


# GPTA_HOSTILE_SCALE=10 tries ten times as many of each (a deeper hunt, not for every run).
SCALE = max(1, int(os.environ.get("GPTA_HOSTILE_SCALE", "1")))


def _settings(kind: str):
    return settings(
        max_examples=MAX_EXAMPLES[kind] * SCALE,
        deadline=None,
        database=None,  # nothing written into the checkout
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# --- running the CLI and checking that nothing changed ---------------------------------------


def _gpta(*args: str, stdin: bytes | None = None) -> tuple[int | str | None, str]:
    err, out = io.StringIO(), io.StringIO()
    old_stdin = sys.stdin
    if stdin is not None:
        sys.stdin = io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8")
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            try:
                main(list(args))
                code: int | str | None = 0
            except SystemExit as exit_info:
                code = exit_info.code
    finally:
        sys.stdin = old_stdin
    return code, err.getvalue()


def _rejected(*args: str, stdin: bytes | None = None) -> str:
    """The command exits 2 with an error: line and no traceback; returns stderr."""
    code, err = _gpta(*args, stdin=stdin)
    assert code == 2, f"exit {code} for {args}:\n{err}"
    assert "error:" in err and "Traceback" not in err, err
    return err


def _state(*roots: Path) -> dict[str, Any]:
    """Everything under ``roots``: each file's bytes, each folder, each link's target."""
    seen: dict[str, Any] = {}
    for root in roots:
        if not os.path.lexists(root):
            seen[str(root)] = None
            continue
        for path in [root, *sorted(root.rglob("*"))] if root.is_dir() else [root]:
            if path.is_symlink():
                seen[str(path)] = ("link", os.readlink(path))
            elif path.is_dir():
                seen[str(path)] = "dir"
            else:
                seen[str(path)] = path.read_bytes()
    return seen


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("hostile")


@pytest.fixture(scope="module", autouse=True)
def never_train():
    """A generated input that passes validation is a bug in its strategy: fail at once
    instead of training a model (the run directory is prepared only after every check)."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"a generated input passed validation: {args} {kwargs}")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("gpta.run_lifecycle.prepare_run_dir", refuse)
        yield


def _case_dir(workdir: Path) -> Path:
    return Path(tempfile.mkdtemp(dir=workdir))


def _good_rows(n: int = 12) -> list[dict[str, Any]]:
    return [{"text": f"review number {i}", "label": "pos" if i % 2 else "neg"} for i in range(n)]


def _jsonl(rows: list[Any]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")


def _write_good(base: Path) -> Path:
    path = base / "good.jsonl"
    path.write_bytes(_jsonl(_good_rows()))
    return path


# --- 1. tables ---------------------------------------------------------------------------------

TEXT = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\u2028\u2029\x85"),
    min_size=1,
    max_size=30,
).filter(str.strip)
# never valid in UTF-8, whatever comes before or after (a lone continuation byte, b"\x80", is
# invalid only inside valid text: tables get it too)
ALWAYS_BAD = [b"\xff", b"\xfe", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf8\x88"]
BAD_UTF8 = st.sampled_from(ALWAYS_BAD)
BAD_IN_TEXT = st.sampled_from([*ALWAYS_BAD, b"\x80"])
HUGE_INT = st.one_of(
    st.integers(min_value=2**63, max_value=10**40), st.integers(max_value=-(2**63))
)
DEFECTS = (
    "odd_bytes", "missing_column", "row_missing_field", "huge_int_text", "huge_train_size",
    "empty_label", "empty_text", "not_an_object", "cut_line", "unbalanced_quote",
    "single_class", "no_rows", "unhashable_label", "deep_nesting", "unknown_extension",
)  # fmt: skip


def _csv_bytes(rows: list[dict[str, Any]], header: list[str]) -> bytes:
    import csv

    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([row.get(name, "") for name in header])
    return out.getvalue().encode("utf-8")


@st.composite
def bad_tables(draw) -> tuple[str, str, bytes, list[str]]:
    """(defect, file name, file bytes, extra CLI args): a table that must be refused."""
    jsonl_only = {"huge_int_text", "not_an_object", "cut_line", "unhashable_label",
                  "deep_nesting", "row_missing_field"}  # fmt: skip
    csv_only = {"unbalanced_quote"}
    defect = draw(st.sampled_from(DEFECTS))
    fmt = "jsonl" if defect in jsonl_only else "csv" if defect in csv_only else None
    fmt = fmt or draw(st.sampled_from(["jsonl", "csv"]))
    n = draw(st.integers(min_value=6, max_value=24))
    rows: list[Any] = [{"text": draw(TEXT), "label": "pos" if i % 2 else "neg"} for i in range(n)]
    at = draw(st.integers(min_value=0, max_value=n - 1))
    header, args, ext = ["text", "label"], [], fmt
    if defect == "missing_column":
        gone = draw(st.sampled_from(["text", "label"]))
        header = [h for h in header if h != gone]
        rows = [{k: v for k, v in r.items() if k != gone} for r in rows]
    elif defect == "row_missing_field":
        del rows[at][draw(st.sampled_from(["text", "label"]))]
    elif defect == "huge_int_text":
        rows[at]["text"] = draw(HUGE_INT)
    elif defect == "huge_train_size":
        args = ["--train-size", str(draw(st.integers(min_value=10**8 + 1, max_value=10**40)))]
    elif defect == "empty_label":
        rows[at]["label"] = draw(st.sampled_from(["", None] if fmt == "jsonl" else [""]))
    elif defect == "empty_text":
        rows[at]["text"] = draw(st.sampled_from(["", " ", "\t", "   "]))
    elif defect == "not_an_object":
        rows[at] = draw(st.one_of(st.lists(TEXT, max_size=3), st.integers(), TEXT, st.none()))
    elif defect == "single_class":
        rows = [{**r, "label": "pos"} for r in rows]
    elif defect == "no_rows":
        rows = []
    elif defect == "unhashable_label":
        rows[at]["label"] = draw(st.one_of(st.lists(TEXT, max_size=2), st.dictionaries(TEXT, TEXT)))
    elif defect == "deep_nesting":
        depth = draw(st.integers(min_value=5_000, max_value=50_000))
        rows[at]["label"] = "@DEEP@"
    elif defect == "unknown_extension":
        ext = draw(st.sampled_from(["txt", "xlsx", "data", "csv.bak", ""]))
    if fmt == "jsonl":
        data = _jsonl(rows)
        if defect == "cut_line":
            lines = data.split(b"\n")
            line = lines[at]
            lines[at] = line[: draw(st.integers(min_value=1, max_value=len(line) - 1))]
            data = b"\n".join(lines)
        if defect == "deep_nesting":
            data = data.replace(b'"@DEEP@"', b"[" * depth + b"]" * depth)
    else:
        data = _csv_bytes(rows, header)
        if defect == "unbalanced_quote":
            data += b'"' + draw(TEXT.filter(lambda t: '"' not in t)).encode("utf-8") + b",pos\n"
    if defect == "odd_bytes":
        where = draw(st.integers(min_value=0, max_value=len(data)))
        data = data[:where] + draw(BAD_IN_TEXT) + data[where:]
    return defect, f"train.{ext}" if ext else "train", data, args


@_settings("tables")
@given(bad_tables())
def test_bad_tables_are_refused_and_nothing_is_written(workdir, case):
    defect, name, data, args = case
    event(f"table={defect}")
    base = _case_dir(workdir)
    path = base / name
    path.write_bytes(data)
    out = base / "run"
    before = _state(path)
    err = _rejected("train", "--train", str(path), "--description", DESCRIPTION,
                    "--output-dir", str(out), *args)  # fmt: skip
    assert not out.exists(), f"{defect}: a rejected run wrote {out}"
    assert _state(path) == before
    if defect in ("odd_bytes", "no_rows", "cut_line", "row_missing_field", "missing_column"):
        assert name in err  # the file is named


# --- 2. configs ----------------------------------------------------------------------------------


def _leaves() -> list[tuple[str, Any]]:
    """(dotted option, pydantic field) for every option of GptaConfig."""
    found = []
    for name, field in GptaConfig.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found += [(f"{name}.{k}", f) for k, f in annotation.model_fields.items()]
        else:
            found.append((name, field))
    return found


def _kind(field: Any) -> str:
    args = [a for a in typing.get_args(field.annotation) if a is not type(None)]
    annotation = args[0] if len(args) == 1 else field.annotation
    if typing.get_origin(annotation) is typing.Literal:
        return "literal"
    return {int: "int", float: "float", str: "str", bool: "bool"}.get(annotation, "other")


LEAVES = _leaves()
BOUNDED = [
    (dotted, field)
    for dotted, field in LEAVES
    if _kind(field) in ("int", "float")
    and any(hasattr(m, a) for m in field.metadata for a in ("ge", "gt", "le", "lt"))
]
SCALAR = [(dotted, field) for dotted, field in LEAVES if _kind(field) != "other"]
KNOWN = {dotted.split(".")[-1] for dotted, _ in LEAVES} | set(GptaConfig.model_fields)
WORD = st.text(string.ascii_lowercase + "_", min_size=1, max_size=12)
YAML_WORDS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null", "t", "f"}
LETTERS = st.text(string.ascii_letters, min_size=1, max_size=10).filter(
    lambda w: w.lower() not in YAML_WORDS and w.lower() not in ("inf", "nan", "infinity")
)


@st.composite
def out_of_range(draw) -> tuple[str, Any]:
    dotted, field = draw(st.sampled_from(BOUNDED))
    low = high = None
    for rule in field.metadata:
        low = next((getattr(rule, a) for a in ("ge", "gt") if hasattr(rule, a)), low)
        high = next((getattr(rule, a) for a in ("le", "lt") if hasattr(rule, a)), high)
    sides = [s for s, bound in (("low", low), ("high", high)) if bound is not None]
    side = draw(st.sampled_from(sides))
    step = draw(st.integers(min_value=1, max_value=10**30))
    value = (low - step) if side == "low" else (high + step)
    return dotted, int(value) if _kind(field) == "int" else float(value)


def _literal_choices(field: Any) -> set[Any]:
    args = [a for a in typing.get_args(field.annotation) if a is not type(None)]
    annotation = args[0] if len(args) == 1 else field.annotation
    return set(typing.get_args(annotation))


@st.composite
def wrong_type(draw) -> tuple[str, Any]:
    dotted, field = draw(st.sampled_from(SCALAR))
    kind = _kind(field)
    values = [
        st.lists(st.integers(), min_size=1, max_size=3),
        st.dictionaries(WORD, st.integers(), min_size=1, max_size=2),
    ]
    if kind in ("int", "float"):
        values.append(LETTERS)
    if kind == "int":
        fractional = st.floats(min_value=-1e6, max_value=1e6).filter(lambda f: f != int(f))
        values.append(fractional)
    if kind == "literal":
        choices = _literal_choices(field)
        values.append(LETTERS.filter(lambda w: w not in choices))
    return dotted, draw(st.one_of(values))


@st.composite
def unknown_key(draw) -> tuple[str, Any]:
    section = draw(st.sampled_from([None, "data", "model", "training", "assistant", "privacy"]))
    key = draw(WORD.filter(lambda w: w not in KNOWN))
    return (f"{section}.{key}" if section else key), draw(st.one_of(st.integers(), WORD))


def _nest(dotted: str, value: Any) -> dict[str, Any]:
    *sections, leaf = dotted.split(".")
    node: dict[str, Any] = {leaf: value}
    for name in reversed(sections):
        node = {name: node}
    return node


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"


def _toml(config: dict[str, Any]) -> str:
    top = [
        f"{json.dumps(k)} = {_toml_value(v)}" for k, v in config.items() if not isinstance(v, dict)
    ]
    tables = [
        f"[{k}]\n" + "".join(f"{json.dumps(kk)} = {_toml_value(vv)}\n" for kk, vv in v.items())
        for k, v in config.items()
        if isinstance(v, dict)
    ]
    return "".join(line + "\n" for line in top) + "".join(tables)


@st.composite
def bad_configs(draw) -> tuple[str, str, str]:
    """(kind, file suffix, text) of a config that must be refused, given a prelude dict
    (output folder, good data) to merge into where the bad part is a mapping."""
    kind = draw(st.sampled_from(["out_of_range", "wrong_type", "unknown_key", "syntax", "shape"]))
    if kind == "syntax":
        inner = draw(st.text(string.ascii_letters + " ,:'", max_size=20))
        text = draw(st.sampled_from([
            f"training:\n  rounds: [{inner}\n", f"training: {{{inner}\n", "training:\n\t- x\n",
            f"seed: *{draw(WORD)}\n", f"seed: !!python/object:os.system {inner}\n",
            f"[training\nrounds = {inner}\n",
        ]))  # fmt: skip
        return kind, ".toml" if text.startswith("[") else ".yaml", text
    if kind == "shape":
        text = draw(st.sampled_from([
            "- a\n- b\n", "just text\n", "42\n", "training: 5\n", "data: [1, 2]\n",
            "assistant: hello\n", "model: null\nprivacy: [x]\n",
        ]))  # fmt: skip
        return kind, ".yaml", text
    strategy = {"out_of_range": out_of_range(), "wrong_type": wrong_type(),
                "unknown_key": unknown_key()}[kind]  # fmt: skip
    dotted, value = draw(strategy)
    return kind, draw(st.sampled_from([".yaml", ".toml"])), json.dumps(_nest(dotted, value))


@_settings("configs")
@given(bad_configs())
def test_bad_configs_are_refused_and_nothing_is_written(workdir, case):
    kind, suffix, text = case
    event(f"config={kind}{suffix}")
    base = _case_dir(workdir)
    good = _write_good(base)
    out = base / "run"
    prelude = {"output_dir": str(out), "data": {"train": str(good), "description": DESCRIPTION}}
    if kind in ("out_of_range", "wrong_type", "unknown_key"):
        config = _merge(prelude, json.loads(text))
        text = _toml(config) if suffix == ".toml" else yaml.safe_dump(config)
    elif kind == "syntax" and suffix == ".yaml":
        text = yaml.safe_dump(prelude) + text
    path = base / f"run{suffix}"
    path.write_text(text, encoding="utf-8")
    before = _state(path, good)
    err = _rejected("train", "--config", str(path))
    assert not out.exists(), f"{kind}: a rejected run wrote {out}"
    assert _state(path, good) == before
    assert str(path) in err


# --- 3. --set values -----------------------------------------------------------------------------


FLAGS_GIVEN = {"output_dir", "data.train", "data.description"}  # the test passes these as flags


@st.composite
def bad_sets(draw) -> tuple[str, str]:
    """(kind, KEY=VALUE) that must be refused."""
    kind = draw(st.sampled_from(["yaml", "out_of_range", "wrong_type", "unknown_key", "no_key"]))
    if kind == "yaml":
        dotted, _ = draw(st.sampled_from(LEAVES))
        inner = draw(st.text(string.ascii_letters + string.digits + " ,.:-", max_size=20))
        value = draw(st.sampled_from([
            f"[{inner}", f"{{{inner}", f'"{inner}', f"'{inner}", f"*{draw(WORD)}",
            f"!!python/object:os.system {inner}", "\t- x", f"a: b: {inner}", f"[{inner}]]",
        ]))  # fmt: skip
        return kind, f"{dotted}={value}"
    if kind == "no_key":
        return kind, draw(st.sampled_from(["=5", "training.rounds", "", " =x"]))
    strategy = {"out_of_range": out_of_range(), "wrong_type": wrong_type(),
                "unknown_key": unknown_key()}[kind]  # fmt: skip
    dotted, value = draw(strategy)
    assume(dotted not in FLAGS_GIVEN)  # a flag beats --set: the test's own flags would win
    return kind, f"{dotted}={json.dumps(value)}"  # JSON is YAML: the value arrives as drawn


@_settings("set_values")
@given(bad_sets())
def test_bad_set_values_are_refused_and_nothing_is_written(workdir, case):
    kind, item = case
    event(f"set={kind}")
    base = _case_dir(workdir)
    good = _write_good(base)
    out = base / "run"
    before = _state(good)
    err = _rejected("train", "--train", str(good), "--description", DESCRIPTION,
                    "--output-dir", str(out), "--set", item)  # fmt: skip
    assert not out.exists()
    assert _state(good) == before
    if kind != "no_key":
        assert item.partition("=")[0].strip() in err  # the option is named


# --- 4. run directories --------------------------------------------------------------------------

NAME = st.text(string.ascii_letters + string.digits + "_-", min_size=1, max_size=10)
CONTENT = st.binary(max_size=64)


@st.composite
def folder_contents(draw, names: list[str]) -> dict[str, bytes | None]:
    """Relative path -> bytes (a file) or None (an empty folder), for ``names`` and a few
    random others (the user's own files)."""
    contents: dict[str, bytes | None] = {}
    for name in names:
        if draw(st.booleans()):
            contents[f"{name}/{draw(NAME)}"] = draw(CONTENT)  # a folder with a file
        else:
            contents[name] = draw(CONTENT)  # a file
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        other = draw(NAME.filter(lambda n: n not in RUN_FILES and not n.startswith(".")))
        contents.setdefault(other, draw(CONTENT))
    return contents


def _make(root: Path, contents: dict[str, bytes | None]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for relative, data in contents.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if data is None:
            path.mkdir(exist_ok=True)
        elif not path.exists():
            path.write_bytes(data)


@st.composite
def run_dirs(draw) -> dict[str, Any]:
    kind = draw(st.sampled_from(["gpta_run", "not_a_run", "file_in_place", "file_above"]))
    overwrite = st.sampled_from([True, True, False]) if kind == "gpta_run" else st.booleans()
    case: dict[str, Any] = {"kind": kind, "overwrite": draw(overwrite)}
    if kind == "gpta_run":  # a finished run: replaced only after a new run validated all
        others = [n for n in RUN_FILES if n not in ("config.yaml", "metrics.json")]
        extra = draw(st.lists(st.sampled_from(others), unique=True, max_size=4))
        case["contents"] = draw(folder_contents(["metrics.json", *extra]))
        # gpta's marker; none (a config.yaml copied from a run); one from an older gpta that
        # listed no files; gpta's, edited afterwards (its check fails)
        case["marker"] = draw(st.sampled_from(["gpta", "none", "older", "edited"]))
        case["failure"] = draw(st.sampled_from(["model", "description", "data", "none"]))
        if case["failure"] != "none" and not case["overwrite"]:
            case["overwrite"] = draw(st.booleans())
        if case["failure"] == "none":  # a good run into an existing one: only refused
            case["overwrite"] = False
    elif kind == "not_a_run":  # files named like a run's, which gpta did not write
        names = draw(st.lists(st.sampled_from(RUN_FILES), unique=True, min_size=1, max_size=4))
        case["contents"] = draw(folder_contents(names))
        case["failure"] = "none"
    else:
        case["data"] = draw(CONTENT)
        case["failure"] = "none"
    return case


@_settings("run_dirs")
@given(run_dirs())
def test_run_directories_are_never_lost(workdir, case):
    from gpta.run import RUN_MARKER

    kind = case["kind"]
    event(f"run_dir={kind}, overwrite={case['overwrite']}, failure={case['failure']}")
    base = _case_dir(workdir)
    good = _write_good(base)
    target = base / "run"
    if kind in ("gpta_run", "not_a_run"):
        _make(target, case["contents"])
        if kind == "gpta_run":
            dump_config(GptaConfig(output_dir=str(target)), target / "config.yaml")
            if case["marker"] in ("gpta", "edited"):
                mark_gpta_run(target)
                if not (target / "model").is_file():  # a file of the user's, not listed
                    (target / "model").mkdir(exist_ok=True)
                    (target / "model" / "mine.txt").write_bytes(b"mine")
            if case["marker"] == "edited":
                marker = json.loads((target / RUN_MARKER).read_text(encoding="utf-8"))
                marker["files"].append("model/weights.bin")
                (target / RUN_MARKER).write_text(json.dumps(marker), encoding="utf-8")
            elif case["marker"] == "older":
                (target / RUN_MARKER).write_text('{"written_by": "gpta"}', encoding="utf-8")
    elif kind == "file_in_place":
        target.write_bytes(case["data"])
    else:
        (base / "afile").write_bytes(case["data"])
        target = base / "afile" / "run"
    args = ["train", "--train", str(good), "--description", DESCRIPTION,
            "--output-dir", str(target)]  # fmt: skip
    failure = case["failure"]
    if failure == "model":
        args += ["--model", str(base / "no" / "such" / "model")]
    elif failure == "description":
        args.remove("--description")
        args.remove(DESCRIPTION)
    elif failure == "data":
        bad = base / "bad.jsonl"
        bad.write_bytes(_jsonl([{"text": "only a text"}] * 8))
        args[2] = str(bad)
    if case["overwrite"]:
        args.append("--overwrite")
    roots = [base]
    before = _state(*roots)
    err = _rejected(*args)
    assert _state(*roots) == before, f"{case} changed files:\n{err}"
    if kind == "not_a_run" or (kind == "gpta_run" and case["marker"] in ("none", "edited")):
        assert "not a gpta run" in err
    elif kind == "gpta_run" and case["marker"] == "older":
        assert "older gpta" in err
    elif kind == "gpta_run" and failure == "none":
        assert "already holds a run" in err


# --- 5. saved models (gpta.json), stdin, cache files ------------------------------------------

FAMILIES = ("classification", "qa", "multiple_choice", "summarization")
REQUIRED = {"task": "classification", "prefix": "Classify:", "max_length": 64}
SCALAR_JSON = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT
JSON_VALUE = st.recursive(
    SCALAR_JSON,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=6,
)


@st.composite
def bad_manifests(draw) -> tuple[str, Any]:
    kinds = ["missing", "wrong_type", "not_an_object", "not_json", "task", "labels"]
    kind = draw(st.sampled_from(kinds))
    manifest: Any = {**REQUIRED, "text_column": "text", "label_column": "label"}
    if kind == "missing":
        del manifest[draw(st.sampled_from(sorted(REQUIRED)))]
    elif kind == "wrong_type":
        key = draw(st.sampled_from(sorted(REQUIRED)))
        value = draw(JSON_VALUE.filter(lambda v: not isinstance(v, type(REQUIRED[key]))))
        if isinstance(value, bool) or not isinstance(value, type(REQUIRED[key])):
            manifest[key] = value
        else:  # a bool is an int: make it a text instead
            manifest[key] = "x"
    elif kind == "not_an_object":
        manifest = draw(st.one_of(SCALAR_JSON, st.lists(JSON_VALUE, max_size=3)))
    elif kind == "task":
        manifest["task"] = draw(TEXT.filter(lambda t: t not in FAMILIES))
    elif kind == "labels":  # none, one, one twice, or names that do not match the labels
        label = st.one_of(st.integers(-5, 5), TEXT)
        labels = draw(
            st.one_of(
                st.lists(label, max_size=1),
                st.lists(label, min_size=1, max_size=3).map(lambda ls: ls + ls[:1]),
            )
        )
        manifest["labels"] = labels
        if len(labels) >= 2 and draw(st.booleans()):  # names that do not fit the labels
            manifest["labels"] = [*dict.fromkeys(map(str, labels)), "another"]
            manifest["label_names"] = manifest["labels"][:-1]
    if kind == "not_json":
        return kind, draw(st.binary(max_size=40).filter(lambda b: not _is_json_object(b)))
    return kind, json.dumps(manifest).encode("utf-8")


def _is_json_object(data: bytes) -> bool:
    try:
        return isinstance(json.loads(data), dict)
    except (ValueError, RecursionError):
        return False


@_settings("manifests")
@given(bad_manifests(), st.sampled_from(["predict", "eval"]))
def test_malformed_saved_models_are_refused(workdir, case, command):
    kind, data = case
    event(f"manifest={kind}")
    base = _case_dir(workdir)
    model = base / "model"
    model.mkdir()
    (model / "gpta.json").write_bytes(data)
    rows = base / "rows.jsonl"
    rows.write_bytes(_jsonl([{"text": "fine", "label": "pos"}]))
    before = _state(base)
    flag = "--input" if command == "predict" else "--data"
    err = _rejected(command, "--model", str(base), flag, str(rows))
    assert "gpta.json" in err
    assert _state(base) == before


@_settings("stdin")
@given(st.binary(max_size=200), st.integers(min_value=0, max_value=200), BAD_UTF8)
def test_non_utf8_stdin_to_predict_is_refused(workdir, data, at, bad):
    base = _case_dir(workdir)
    manifest = {**REQUIRED, "text_column": "text", "label_column": "label"}
    (base / "gpta.json").write_text(json.dumps(manifest), encoding="utf-8")
    stdin = data[:at] + bad + data[at:]
    err = _rejected("predict", "--model", str(base), "--input", "-", stdin=stdin)
    assert "stdin, line" in err and "not valid UTF-8" in err


@_settings("cache_files")
@given(
    st.one_of(
        st.binary(max_size=300),
        st.binary(max_size=300).map(lambda b: b"SQLite format 3\x00" + b),  # a damaged database
        st.sampled_from(["sqlite_other", "sqlite_empty"]),  # another program's database
    )
)
def test_cache_commands_never_touch_a_file_that_is_not_the_cache(workdir, content):
    import sqlite3

    base = _case_dir(workdir)
    path = base / "cache.sqlite"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        db = sqlite3.connect(path)
        if content == "sqlite_other":
            db.execute("CREATE TABLE responses (id INTEGER)")
            db.execute("INSERT INTO responses VALUES (1)")
        else:
            db.execute("CREATE TABLE notes (body TEXT)")
        db.commit()
        db.close()
    before = _state(base)
    for command in ("info", "clear"):
        err = _rejected("cache", command, "--path", str(path))
        assert "not a gpta response cache" in err
    assert _state(base) == before


# --- listed cases: predict must never write over its own input ----------------------------------

SAME_FILE = ["x.jsonl", "{abs}", "./x.jsonl", "sub/../x.jsonl", "link.jsonl", "hardlink.jsonl"]


@pytest.mark.parametrize("spelling", SAME_FILE)
def test_predict_output_that_is_its_input_is_refused(workdir, monkeypatch, spelling):
    base = _case_dir(workdir)
    (base / "gpta.json").write_text(json.dumps(REQUIRED), encoding="utf-8")
    rows = base / "x.jsonl"
    rows.write_bytes(_jsonl([{"text": "fine"}]))
    (base / "sub").mkdir()
    (base / "link.jsonl").symlink_to(rows)
    os.link(rows, base / "hardlink.jsonl")
    monkeypatch.chdir(base)
    before = _state(base)
    output = spelling.format(abs=rows)
    err = _rejected("predict", "--model", str(base), "--input", "x.jsonl", "--output", output)
    assert "is the --input file" in err
    assert _state(base) == before


# --- predict --output onto a file that gpta predict did not write --------------------------------


def _written_by_predict(data: bytes) -> bool:
    """What predict writes: every non-blank line a JSON object whose first key is "row"."""
    try:
        lines = data.decode("utf-8").splitlines()
        rows = [json.loads(line) for line in lines if line.strip()]
    except (ValueError, RecursionError):
        return False
    return all(isinstance(r, dict) and r and next(iter(r)) == "row" for r in rows)


USER_ROWS = st.lists(
    st.dictionaries(TEXT.filter(lambda k: k != "row"), SCALAR_JSON, min_size=1, max_size=3),
    min_size=1,
    max_size=4,
).map(_jsonl)
PREDICTIONS = st.lists(
    st.fixed_dictionaries({"row": TEXT, "label": SCALAR_JSON, "score": st.floats(0, 1)}),
    max_size=4,
).map(_jsonl)


@_settings("outputs")
@given(st.one_of(st.binary(min_size=1, max_size=200), USER_ROWS).filter(lambda b: b.strip()))
def test_predict_never_replaces_a_file_it_did_not_write(workdir, data):
    assume(not _written_by_predict(data))
    base = _case_dir(workdir)
    (base / "gpta.json").write_text(json.dumps(REQUIRED), encoding="utf-8")
    rows = base / "rows.jsonl"
    rows.write_bytes(_jsonl([{"text": "fine"}]))
    mine = base / "mine.jsonl"
    mine.write_bytes(data)
    before = _state(base)
    err = _rejected("predict", "--model", str(base), "--input", str(rows), "--output", str(mine))
    assert "not a file gpta predict wrote" in err and "--overwrite" in err
    assert _state(base) == before


@settings(max_examples=30, deadline=None, database=None)
@given(st.one_of(PREDICTIONS, USER_ROWS, st.binary(max_size=200)))
def test_predictions_are_told_from_other_files(tmp_path_factory, data):
    from gpta.cli.inference import _is_prediction_file

    path = tmp_path_factory.mktemp("out") / "p.jsonl"
    path.write_bytes(data)
    assert _is_prediction_file(path) == _written_by_predict(data)


# --- 6. nothing changes meaning silently (issue 28, class 5; docs/meaning.md) --------------------
# Each case exits 2 naming what collides, or goes on with a warning that -q does not hide. The
# warning cases stop right after validation (a sentinel error from _check_models): no model loads.

STOP = "validation passed: stopped by the test"


@pytest.fixture(scope="module")
def stop_after_validation():
    from gpta.errors import GptaUserError

    def stop(config: Any) -> None:
        raise GptaUserError(STOP)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("gpta.run._check_models", stop)
        yield


def _labelled(labels: list[Any], start: int = 0) -> list[dict[str, Any]]:
    return [{"text": f"review number {start + i} here", "label": x} for i, x in enumerate(labels)]


LABEL_WORD = st.text(string.ascii_lowercase, min_size=2, max_size=8)
INVISIBLE = st.sampled_from(["\u200b", "\u200d", "\ufeff", "\u2060", "\u00ad"])
SPACE = st.sampled_from([" ", "  ", "\t", "\u00a0", "\u3000", "\n"])


@st.composite
def label_spellings(draw) -> tuple[str, list[Any], Any, Any]:
    """(kind, the two classes as written in most rows, one class's other spelling, the class
    it must be read as): a spelling that is the same class, or a letter-case variant."""
    kind = draw(st.sampled_from(["space", "invisible", "number", "nfd", "case"]))
    if kind == "number":
        classes: list[Any] = draw(
            st.lists(st.integers(-5, 50), min_size=2, max_size=2, unique=True)
        )
        base = classes[0]
        other = draw(
            st.sampled_from([str(base), f" {base}", f"{base}\t", f"{base}.0", float(base)])
        )
        return kind, classes, other, base
    classes = draw(st.lists(LABEL_WORD, min_size=2, max_size=2, unique=True))
    base = classes[0]
    if kind == "space":
        other = draw(SPACE) + base + draw(st.sampled_from(["", *[" ", "\t"]]))
    elif kind == "invisible":
        at = draw(st.integers(0, len(base)))
        other = base[:at] + draw(INVISIBLE) + base[at:]
    elif kind == "nfd":
        base = classes[0] = base[:-1] + "é"  # composed in most rows, decomposed in one
        other = base[:-1] + "e\u0301"
    else:  # upper case or full-width letters, somewhere
        flips = draw(st.lists(st.sampled_from(["", "upper", "wide"]), min_size=len(base),
                              max_size=len(base)).filter(any))  # fmt: skip
        other = "".join(
            c.upper() if f == "upper" else chr(ord(c) + 0xFEE0) if f == "wide" else c
            for c, f in zip(base, flips, strict=True)
        )
    return kind, classes, other, base


@_settings("label_spellings")
@given(label_spellings(), st.sampled_from(["train", "dev"]), st.integers(0, 5))
def test_label_spellings_are_one_class_with_a_warning_or_refused(
    workdir, stop_after_validation, case, where, at
):
    kind, classes, other, base = case
    event(f"labels={kind}")
    folder = _case_dir(workdir)
    files = {}
    for split, n in (("train", 12), ("dev", 6), ("test", 6)):
        rows = _labelled([classes[i % 2] for i in range(n)], start=100 * len(files))
        if split == where:
            rows[at]["label"] = other  # the one row spelling its class another way
        files[split] = folder / f"{split}.jsonl"
        files[split].write_bytes(_jsonl(rows))
    before = _state(folder)
    err = _rejected("train", "-q", "--train", str(files["train"]), "--dev", str(files["dev"]),
                    "--test", str(files["test"]), "--description", DESCRIPTION,
                    "--output-dir", str(folder / "run"))  # fmt: skip
    assert _state(folder) == before
    line = f"{where}.jsonl line {at + 1})"
    if kind == "case":  # refused: both spellings and the row are named
        assert "differ only in letter case or character form" in err and STOP not in err
        assert shown(other) in err and shown(base) in err and line in err
    elif not isinstance(other, str):  # 1.0 for 1: the same number, nothing to say
        assert STOP in err and "warning:" not in err
    else:  # one class, said even under -q
        assert STOP in err and "warning:" in err
        said = err.split(f"{shown(other)} (1 row: ", 1)[1]  # the spelling, its row, its class
        assert said.startswith(str(files[where])) and f"{line} as {shown(base)}" in said, err


FAMILY_COLUMNS = {  # option -> the column a default run reads it from
    "classification": {"data.text_column": "text", "data.label_column": "label"},
    "summarization": {"data.text_column": "document", "data.label_column": "summary"},
    "qa": {"data.text_column": "context", "data.question_column": "question",
           "data.label_column": "answers"},
    "multiple_choice": {"data.text_column": "article", "data.question_column": "question",
                        "data.options_column": "options", "data.label_column": "answer"},
}  # fmt: skip


def _family_row(family: str, i: int) -> dict[str, Any]:
    words = f"passage number {i} says the sky is blue today"
    return {
        "classification": {"text": words, "label": "pos" if i % 2 else "neg"},
        "summarization": {"document": words, "summary": "blue sky"},
        "qa": {"context": words, "question": "what colour?",
               "answers": {"text": ["blue"], "answer_start": [words.index("blue")]}},
        "multiple_choice": {"article": words, "question": "what colour?",
                            "options": ["blue", "red"], "answer": "AB"[i % 2]},
    }[family]  # fmt: skip


@_settings("column_pairs")
@given(st.data())
def test_two_options_naming_one_column_are_refused_naming_both(workdir, data):
    family = data.draw(st.sampled_from(sorted(FAMILY_COLUMNS)))
    options = FAMILY_COLUMNS[family]
    first, second = data.draw(st.lists(st.sampled_from(sorted(options)), min_size=2,
                                       max_size=2, unique=True))  # fmt: skip
    column = options[data.draw(st.sampled_from([first, second]))]
    event(f"columns={family}")
    folder = _case_dir(workdir)
    train = folder / "train.jsonl"
    train.write_bytes(_jsonl([_family_row(family, i) for i in range(12)]))
    before = _state(folder)
    sets = [arg for option in (first, second) for arg in ("--set", f"{option}={column}")]
    err = _rejected("train", "-q", "--task", family, "--train", str(train), "--description",
                    DESCRIPTION, "--output-dir", str(folder / "run"), *sets)  # fmt: skip
    assert first in err and second in err and repr(column) in err
    assert _state(folder) == before and not (folder / "run").exists()


@_settings("column_pairs")
@given(st.sampled_from(["both", "text", "label"]), WORD)
def test_eval_reading_the_label_column_as_text_is_refused(workdir, how, column):
    """``gpta eval``: --text-column and --label-column (or the trained names they leave) that
    end on one column are refused before the model loads."""
    folder = _case_dir(workdir)
    (folder / "gpta.json").write_text(
        json.dumps({**REQUIRED, "text_column": "text", "label_column": "label"}), "utf-8"
    )
    rows = folder / "rows.jsonl"
    rows.write_bytes(_jsonl([{"text": "fine", "label": "pos", column: "pos"}]))
    args = {
        "both": ["--text-column", column, "--label-column", column],
        "text": ["--text-column", "label"],
        "label": ["--label-column", "text"],
    }[how]
    before = _state(folder)
    err = _rejected("eval", "--model", str(folder), "--data", str(rows), *args)
    assert "--text-column and --label-column both name the column" in err
    assert _state(folder) == before


def _flag_kind(dotted: str) -> str:
    return _kind(dict(LEAVES)[dotted])


def _yaml(value: Any) -> str:
    """``value`` as a --set value: JSON, with a surrogate pair written as one ``\\U`` escape
    (YAML reads ``\\ud800\\udc00`` as two lone surrogates, not one character)."""
    import re

    def join(m: re.Match) -> str:
        high, low = int(m.group(1), 16), int(m.group(2), 16)
        return f"\\U{0x10000 + (high - 0xD800) * 0x400 + (low - 0xDC00):08x}"

    return re.sub(r"\\u(d[89ab][0-9a-f]{2})\\u(d[c-f][0-9a-f]{2})", join, json.dumps(value))


@st.composite
def conflicting_options(draw) -> tuple[list[str], str, Any]:
    """(arguments that give one option two values, the option, the first value): a flag and
    a --set (of the option, or of its section as a mapping), or two --set items."""
    from gpta.cli import TRAIN_FLAGS, flag_type, name_list

    flags = {flag: dotted for flag, dotted in TRAIN_FLAGS.items()  # one value, not a list
             if _flag_kind(dotted) in ("int", "float", "str", "literal")
             and flag_type(dict(LEAVES)[dotted].annotation) is not name_list}  # fmt: skip
    flag = draw(st.sampled_from(sorted(flags)))
    dotted = flags[flag]
    kind = _flag_kind(dotted)
    values = {
        "int": st.integers(-(10**20), 10**20),
        "float": st.floats(allow_nan=False, allow_infinity=False),
        "str": TEXT.filter(lambda t: not t.startswith("-")),
        "literal": st.sampled_from(sorted(map(str, _literal_choices(dict(LEAVES)[dotted])))),
    }[kind]
    a, b = draw(st.lists(values, min_size=2, max_size=2, unique=True))
    assume(not (kind == "float" and a == b))  # -0.0 and 0.0
    section, _, leaf = dotted.rpartition(".")
    as_set = draw(st.sampled_from(["leaf", "section"] if section else ["leaf"]))
    item = (f"{dotted}={_yaml(b)}" if as_set == "leaf"
            else f"{section}={_yaml({leaf: b})}")  # fmt: skip
    if draw(st.booleans()):
        return [flag, str(a), "--set", item], dotted, a
    return ["--set", f"{dotted}={_yaml(a)}", "--set", item], dotted, a


@_settings("option_pairs")
@given(conflicting_options())
def test_an_option_given_two_values_is_refused_naming_both(workdir, case):
    args, dotted, _ = case
    event(f"conflict={'flag' if not args[0].startswith('--set') else 'set'}")
    folder = _case_dir(workdir)
    good = _write_good(folder)
    before = _state(folder)
    out = [] if "output_dir" in (args[1], dotted) else ["--output-dir", str(folder / "run")]
    err = _rejected("train", "--train" if dotted != "data.train" else "--dev", str(good),
                    *out, *args)  # fmt: skip
    assert f"give {dotted} two different values" in err
    # both ways the option was given are named, as they are typed in a shell
    assert shlex.quote(args[1]) in err and shlex.quote(args[-1]) in err
    assert _state(folder) == before and not (folder / "run").exists()


@_settings("option_pairs")
@given(conflicting_options())
def test_an_option_given_twice_with_one_value_is_one_option(case):
    from gpta.cli.train_flags import _refuse_conflicts

    args, dotted, value = case
    _refuse_conflicts((args[3], args[3]), {})  # the same --set item twice
    _refuse_conflicts((f"{dotted}={_yaml(value)}",), {dotted: value})  # a flag and its --set
    section, _, leaf = dotted.rpartition(".")
    if section:  # the flag's value held in its section's mapping
        _refuse_conflicts((f"{section}={_yaml({leaf: value})}",), {dotted: value})


@_settings("ta_outcomes")
@given(st.integers(0, 6), st.integers(0, 6), st.integers(0, 6), st.integers(0, 6), st.booleans())
def test_ta_requests_without_an_answer_are_warned_even_with_q(
    answered, failed, blocked, skipped, json_log
):
    """The end-of-run warning (and metrics.json's ta_warning) from the channel's counts:
    none when every request was answered; 'never answered' when none was; the counts."""
    from types import SimpleNamespace

    from gpta.progress import Progress
    from gpta.run_metrics import ta_warning as _ta_warning

    channel = SimpleNamespace(
        requests=answered + failed, failed=failed, blocked=blocked, last_block="1 run(s) ..."
    )
    side = SimpleNamespace(channel=channel, meter=SimpleNamespace(skipped_calls=skipped))
    message = _ta_warning(side)
    lost = failed + blocked + skipped
    if not lost:
        assert message is None
        return
    assert message is not None
    assert ("never answered" in message) == (answered == 0)
    assert f"{lost} of {lost + answered}" in message or f"all {lost}" in message
    said = {"failed": failed, "blocked by the leak guard": blocked, "over the TA budget": skipped}
    for what, count in said.items():
        assert (f"{count} {what}" in message) == bool(count)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        Progress(quiet=True, log_format="json" if json_log else "text").warn(message)
    shown_text = json.loads(err.getvalue())["message"] if json_log else err.getvalue()
    assert message.split(":")[0] in shown_text  # -q hides progress, not this


LONG_LABEL_WORDS = st.lists(st.sampled_from(["very", "strongly", "mostly", "not", "rather",
                            "entirely", "positive", "negative", "about", "the", "service",
                            "food", "staff", "price", "and", "or"]),
                            min_size=8, max_size=14)  # fmt: skip


@_settings("label_names")
@given(
    st.lists(LONG_LABEL_WORDS.map(" ".join), min_size=2, max_size=4, unique=True),
    st.sampled_from(["none", "exemplars"]),
)
def test_label_names_of_any_length_are_not_a_copy_but_rows_still_are(workdir, names, exposure):
    """Label names of 8 or more words are indexed with their rows, and every TA request
    lists them: they are the run's own text (the TA is told them), never a copy. A row's
    text is still blocked; the audit's recheck holds the run to the same allowance."""
    from gpta.assistant.prompts import TaskBrief, initial_messages
    from gpta.data import Table
    from gpta.privacy import build_exposure
    from gpta.privacy.policy import rebuild_guard
    from gpta.tasks.classification import ClassificationTask

    folder = _case_dir(workdir)
    rows = [
        {"text": f"row {i} tells a long story of its own with many words in it", "label": n}
        for i, n in enumerate(names * 4)
    ]
    train = folder / "train.jsonl"
    train.write_bytes(_jsonl(rows))
    config = GptaConfig.model_validate(
        {"output_dir": str(folder / "run"), "privacy": {"exposure": exposure},
         "data": {"train": str(train), "description": DESCRIPTION}}
    )  # fmt: skip
    table = Table(str(train), rows, [f"line {i + 1}" for i in range(len(rows))])
    task = ClassificationTask.from_tables(
        {"train": table}, text_column="text", label_column="label", max_length=64
    )
    run_dir = folder / "run"
    run_dir.mkdir()
    built = build_exposure(config, {"train": table}, run_dir, text_column="text",
                           label_column="label", description=DESCRIPTION,
                           label_names=task.label_names)  # fmt: skip
    io_ = task.io()
    brief = TaskBrief(family=io_.family, reads=io_.reads, description=DESCRIPTION,
                      label_names=io_.labels, metric="accuracy", max_words=32,
                      exemplars=tuple(built.exemplars))  # fmt: skip
    messages = initial_messages(brief)
    assert any(names[0] in m["content"] for m in messages)
    assert built.warnings == [] and built.check(messages) is None
    allowed = {e.row_id for e in built.exemplars}
    i = next(i for i in range(len(rows)) if f"train.jsonl:line {i + 1}" not in allowed)
    leak = [*messages, {"role": "user", "content": f"Like this one: {rows[i]['text']}"}]
    report = built.check(leak)
    assert report is not None and f"train.jsonl:line {i + 1}" in report.row_ids
    dump_config(config, run_dir / "config.yaml")
    guard, _ = rebuild_guard(run_dir, allow_exemplars=exposure != "none")  # gpta audit --recheck
    assert guard.check(messages) is None and guard.check(leak) is not None


class _FakeServer:
    """An OpenAI-compatible server on 127.0.0.1 that counts every POST: it answers 500 to the
    next ``fail_next`` requests, 400 to a response_format while ``refuse`` (the structured-
    output negotiation falls back), else one choice holding ``{"a": "x"}`` (so a request for
    n > 1 candidates fetches the rest one by one)."""

    def __init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from threading import Thread

        self.posts, self.fail_next, self.refuse = 0, 0, False
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                server.posts += 1
                if server.fail_next:
                    server.fail_next -= 1
                    return self._send(500, {"error": {"message": "boom"}})
                if server.refuse and body.get("response_format"):
                    return self._send(400, {"error": {"message": "response_format: no"}})
                message = {"role": "assistant", "content": '{"a": "x"}'}
                return self._send(200, {
                    "id": "c", "object": "chat.completion", "created": 0, "model": "m",
                    "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
                })  # fmt: skip

            def _send(self, status: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.http.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.http.server_address[1]}/v1"
        Thread(target=self.http.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()


@_settings("http_faults")
@example([(0, True, 1, True)])  # the case: json_schema, json_object, free text
@given(
    st.lists(
        st.tuples(st.integers(0, 3), st.booleans(), st.integers(1, 2), st.booleans()),
        min_size=1,
        max_size=3,
    )
)
def test_the_audit_counts_every_http_request_that_carried_a_prompt(workdir, requests):
    """Retries, structured-output forms the server refuses and candidates fetched one by one
    are each an HTTP request with the whole prompt: ``gpta audit`` counts what the server got."""
    from gpta.chat.base import Sampling
    from gpta.chat.structured import OutputSchema, ServerForms
    from gpta.config import AssistantConfig
    from gpta.llm.openai_backend import OpenAIChatModel
    from gpta.privacy import ExposureChannel
    from gpta.privacy.audit import audit_run, format_report
    from gpta.privacy.ledger import ExposureLedger

    folder = _case_dir(workdir)
    server = _FakeServer()
    try:
        model = OpenAIChatModel(AssistantConfig(
            backend="openai", model="m", base_url=server.base_url, max_retries=2,
            retry_backoff=0.001, retry_max_wait=0.01, request_timeout=10, max_in_flight=1,
        ))  # fmt: skip
        model.forms = ServerForms(folder / "forms.json")
        channel = ExposureChannel(model, ExposureLedger(folder / "exposure.jsonl"))
        schema = OutputSchema("t", {"type": "object", "required": ["a"]})
        for fails, refuse, n, structured in requests:
            server.fail_next, server.refuse = fails, refuse
            with contextlib.suppress(Exception):  # a request that gave up is an error record
                channel.send(
                    [{"role": "user", "content": "Propose an instruction."}],
                    Sampling(n=n, temperature=0.5, top_p=1.0, max_new_tokens=8, seed=1),
                    **({"schema": schema} if structured else {}),
                )
    finally:
        server.close()
    report = audit_run(folder)
    assert report.requests == len(requests)
    assert report.http_requests == server.posts >= len(requests)
    if requests == [(0, True, 1, True)]:
        assert server.posts == 3
    assert f"HTTP requests:     {server.posts} carried a prompt" in format_report(report)


@_settings("label_spellings")
@given(label_spellings(), st.integers(0, 5))
def test_eval_reads_labels_by_the_rule_training_used(case, at):
    """A saved model's labels (gpta.json, as JSON keeps them) and a file given to
    ``gpta eval``: the same spellings are one class, with the same warning; a letter-case
    variant is refused naming the row."""
    from gpta.data import Table
    from gpta.errors import GptaUserError
    from gpta.tasks.classification import ClassificationTask

    kind, classes, other, base = case
    train = _labelled([classes[i % 2] for i in range(8)])
    trained = ClassificationTask.from_tables(
        {"train": Table("train.jsonl", train, [f"line {i + 1}" for i in range(8)])},
        text_column="text", label_column="label", max_length=64,
    )  # fmt: skip
    saved = json.loads(json.dumps(trained.manifest()))["labels"]
    assert saved == trained.labels and base in saved  # the class is stored as written
    task = ClassificationTask("text", "label", saved, 64)
    rows = _labelled([classes[i % 2] for i in range(6)])
    rows[at]["label"] = other
    where = [f"line {i + 1}" for i in range(6)]
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        if kind == "case":
            with pytest.raises(GptaUserError) as refused:
                task.check_rows(rows, where, "eval.jsonl", labelled=True)
            assert f"eval.jsonl, line {at + 1}" in refused.value.message
            assert "only in letter case or form" in refused.value.message
            return
        task.check_rows(rows, where, "eval.jsonl", labelled=True)
    ids = task.label_ids(Table("eval.jsonl", rows, where))
    assert ids[at] == saved.index(base)
    if isinstance(other, str):
        said = f"{shown(other)} (1 row: eval.jsonl line {at + 1}) as {shown(base)}"
        assert said in err.getvalue()
    else:
        assert err.getvalue() == ""


# --- 4. the leak guard sees text as a reader does (issue 28) -----------------------------------
# Real rows, rewritten so that a reader sees the same text and a byte comparison does not:
# invisible characters (Unicode's Default_Ignorable_Code_Point: variation selectors, zero-width
# characters, tag characters, ...) and combining marks between the characters, letters swapped
# for look-alikes drawn from Unicode's confusables data (the table the guard folds with, as the
# confusable-homoglyphs package ships it), full-width forms, or all of it at once.

REAL_ROWS = [SHARED_DATA / "twitter" / "train.jsonl", SHARED_DATA / "yelp" / "train.jsonl"]


def _real_rows() -> list[tuple[str, str]]:
    """(row id, text) of the first 60 rows of 12 or more words of each real data file."""
    from gpta.privacy.normalize import word_tokens

    found = [p for p in REAL_ROWS if p.is_file()]
    if not found:
        pytest.skip(f"no real data rows at {SHARED_DATA}")
    rows = []
    for path in found:
        taken = 0
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                text = json.loads(line).get("text")
                if isinstance(text, str) and len(word_tokens(text)) >= 12 and taken < 60:
                    rows.append((f"{path.parent.name}:line {number}", " ".join(text.split()[:60])))
                    taken += 1
    return rows


@pytest.fixture(scope="module")
def real_guard():
    from gpta.privacy.guard import LeakGuard

    rows = _real_rows()
    return rows, LeakGuard(((row_id, [text]) for row_id, text in rows), n=8)


def _by_property(pattern: str) -> list[str]:
    import regex

    every = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c < 0xE000)
    return regex.findall(pattern, every)


# default-ignorable characters; not the Hangul fillers, which are drawn as a blank (a reader
# sees a space there, and so does the guard), nor the bidi overrides, which redraw the rest
# of the line backwards (the "reversed" rewrite uses them as a display does)
READER_INVISIBLE = [
    c
    for c in _by_property(r"\p{Default_Ignorable_Code_Point}")
    if c not in "\u115f\u1160\u3164\uffa0\u202d\u202e"
]
MARKS = _by_property(r"[\p{Mn}\p{Me}]")
BIDI_CONTROLS = "\u202a\u202b\u202c\u2066\u2067\u2068\u2069"  # would end an override


def _lookalikes() -> dict[str, list[str]]:
    """Each character's look-alikes in Unicode's confusables data, as a reader sees them
    (a combining mark or an invisible character is not a letter to a reader)."""
    from confusable_homoglyphs.confusables import confusables_data

    hidden = set(READER_INVISIBLE) | set(MARKS)
    out: dict[str, list[str]] = {}
    for key, glyphs in confusables_data.items():
        shapes = [g["c"].replace("\u200e", "") for g in glyphs]
        shapes = [s for s in shapes if s and not set(s) & hidden and not any(map(str.isspace, s))]
        if len(key) == 1 and shapes:
            out[key] = shapes
    return out


LOOKALIKES = _lookalikes()
REWRITES = ("invisible", "marks", "lookalikes", "fullwidth", "reversed", "mixed")
RLO, PDF = "\u202e", "\u202c"  # right-to-left override and its end: drawn reversed


def _disguise(
    text: str, how: str, rate: float, rng: random.Random, invisible: list[str] = READER_INVISIBLE
) -> str:
    """``text`` as a reader still reads it: ``how`` (one of :data:`REWRITES`) applied to
    about ``rate`` of its characters (``reversed``: of its words, or the whole text, stored
    backwards inside a right-to-left override)."""
    if how == "reversed":  # invisible characters and full-width forms, then stored backwards
        plain = [c for c in invisible if c not in BIDI_CONTROLS]
        text = _disguise(text, rng.choice(["invisible", "fullwidth"]), rate, rng, plain)
        if rng.random() < 0.3:
            return RLO + text[::-1] + PDF
        return " ".join(RLO + w[::-1] + PDF if rng.random() < rate else w for w in text.split(" "))
    out = []
    for char in text:
        kinds = {"mixed": ["invisible", "marks", "lookalikes", "fullwidth"]}.get(how, [how])
        kind = rng.choice(kinds)
        if rng.random() >= rate:
            out.append(char)
        elif kind == "lookalikes" and char in LOOKALIKES:
            out.append(rng.choice(LOOKALIKES[char]))
        elif kind == "fullwidth" and "!" <= char <= "~":
            out.append(chr(ord(char) + 0xFEE0))
        elif kind == "invisible" and not char.isspace():
            out.append(char + "".join(rng.choices(invisible, k=rng.randint(1, 3))))
        elif kind == "marks" and not char.isspace():
            out.append(char + "".join(rng.choices(MARKS, k=rng.randint(1, 2))))
        else:
            out.append(char)
    return "".join(out)


@_settings("lookalike_rows")
@given(
    st.integers(min_value=0, max_value=10_000),
    st.sampled_from(REWRITES),
    st.sampled_from([0.1, 0.5, 1.0]),
    st.randoms(use_true_random=False),
)
def test_a_row_disguised_for_a_program_but_not_for_a_reader_is_blocked(
    real_guard, index, how, rate, rng
):
    rows, guard = real_guard
    row_id, text = rows[index % len(rows)]
    shown = _disguise(text, how, rate, rng)
    event(how)
    report = guard.check([{"role": "user", "content": f"Some data: {shown}"}])
    assert report is not None, (how, rate, shown)
    assert row_id in report.row_ids


RUSSIAN = [
    "дом",
    "мама",
    "папа",
    "работа",
    "город",
    "улица",
    "машина",
    "вода",
    "хлеб",
    "молоко",
    "утро",
    "вечер",
    "ночь",
    "день",
    "неделя",
    "год",
    "книга",
    "письмо",
    "друг",
    "семья",
    "школа",
    "учитель",
    "ученик",
    "окно",
    "дверь",
    "стол",
    "стул",
    "комната",
    "кухня",
    "сад",
    "лес",
    "река",
    "море",
    "гора",
    "небо",
    "солнце",
    "луна",
    "звезда",
    "ветер",
    "дождь",
    "снег",
    "зима",
    "лето",
    "осень",
    "весна",
    "большой",
    "маленький",
    "новый",
    "старый",
    "хороший",
    "плохой",
    "красивый",
    "быстро",
    "медленно",
    "всегда",
    "никогда",
    "сегодня",
    "завтра",
    "вчера",
    "читать",
    "писать",
    "говорить",
    "думать",
    "знать",
    "любить",
    "жить",
    "ждать",
    "искать",
    "найти",
]


def test_real_words_of_another_alphabet_stay_apart():
    """Folding look-alikes keeps genuine Russian words apart: no two of these common words
    become one (a word made only of letters with Latin look-alikes, such as ``мама``, does
    read as the Latin word: a reader cannot tell them apart either)."""
    from gpta.privacy.normalize import normalize_text

    folded = {normalize_text(w) for w in RUSSIAN}
    assert len(folded) == len(set(RUSSIAN))
    assert normalize_text("мама") == normalize_text("mama")


@_settings("other_alphabet")
@given(
    st.lists(st.sampled_from(RUSSIAN), min_size=8, max_size=40),
    st.randoms(use_true_random=False),
)
def test_text_in_another_alphabet_is_not_a_copy_unless_it_copies(real_guard, words, rng):
    """Generated Russian sentences pass a guard over real rows and Russian rows; the same
    sentences pass a guard that holds others, and are blocked once they are a row."""
    from gpta.privacy.guard import LeakGuard

    rows, _ = real_guard
    own = [
        ("ru:1", ["Мы жили в старом доме у реки, и каждое утро мама пекла хлеб для всей семьи"]),
        ("ru:2", ["Зимой снег лежал на крышах до самой весны, а дети катались с горы"]),
    ]
    sentence = " ".join(words)
    guard = LeakGuard([*((r, [t]) for r, t in rows), *own], n=8)
    assert guard.check([{"role": "user", "content": sentence}]) is None
    description = "Tweets and restaurant reviews, labelled by sentiment: pos, neg or neutral."
    assert guard.check([{"role": "user", "content": description}]) is None
    copied = LeakGuard([*own, ("ru:3", [sentence])], n=8)
    report = copied.check([{"role": "user", "content": _disguise(sentence, "mixed", 0.5, rng)}])
    assert report is not None and "ru:3" in report.row_ids


def test_audit_recheck_finds_a_disguised_row(workdir, real_guard):
    """``gpta audit --strict --recheck`` folds as the run's guard does: a row sent with a
    variation selector after every character, or in Cyrillic look-alikes, is beyond policy."""
    from gpta.privacy.ledger import ExposureLedger

    rows, _ = real_guard
    for how in ("variation selectors", "cyrillic"):
        base = _case_dir(workdir)
        train = base / "train.jsonl"
        train.write_bytes(_jsonl([{"text": t, "label": "x"} for _, t in rows[:20]]))
        dump_config(build_config({"data": {"train": str(train)}}), base / "config.yaml")
        text = rows[3][1]
        if how == "variation selectors":
            shown = "".join(c + "\ufe0f" for c in text)
        else:
            cyrillic = dict(zip("aceopxyABCEHKMOPTX", "асеорхуАВСЕНКМОРТХ", strict=True))
            shown = "".join(cyrillic.get(c, c) for c in text)
        ledger = ExposureLedger(base / "exposure.jsonl")
        ledger.record_policy(exposure="none", exemplar_ids=[], guard_ngram=8)
        ledger.record_request(
            backend="b", model="m", messages=[{"role": "user", "content": shown}], row_ids=[],
            params={},
        )  # fmt: skip
        (base / "metrics.json").write_text(json.dumps(ledger.seal()))
        code, _ = _gpta("audit", str(base), "--strict")
        assert code == 0, how  # the ledger declares no row: only the recheck can see it
        code, _ = _gpta("audit", str(base), "--strict", "--recheck")
        assert code == 1, how


# --- 6. exemplars: secrets and personal data never leave (issue 28) ---------------------------
# With privacy.exposure: exemplars, training rows are shown to the TA. Rows here carry a
# generated secret or personal detail inside an ordinary sentence; the run's exemplar, the
# request built from it, the ledger and exemplars.jsonl must not hold the value.

_NAMES = ["Baker", "Maple", "Evergreen", "Pennsylvania", "Oak Hill", "King", "Elm", "Harbour"]
_STREETS = ["Street", "St", "Avenue", "Ave", "Road", "Rd", "Lane", "Drive", "Boulevard", "Way"]
_TOWNS = ["Springfield", "London", "Leeds", "Portland", "Austin"]
_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December"]  # fmt: skip


def _iban(rng: random.Random) -> str:
    country, length = rng.choice([("DE", 18), ("GB", 18), ("FR", 23), ("NL", 14), ("ES", 20)])
    bban = "".join(rng.choice(string.digits) for _ in range(length))
    if country in ("GB", "NL"):
        bban = "".join(rng.choice(string.ascii_uppercase) for _ in range(4)) + bban[4:]
    digits = "".join(str(int(c, 36)) for c in bban + country + "00")
    iban = f"{country}{98 - int(digits) % 97:02d}{bban}"
    spaced = " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))
    return rng.choice([iban, spaced])


def _birth_date(rng: random.Random) -> str:
    year, month, day = rng.randint(1930, 2010), rng.randint(1, 12), rng.randint(1, 28)
    name = _MONTHS[month - 1]
    return rng.choice([
        f"{day:02d}/{month:02d}/{year}", f"{year}-{month:02d}-{day:02d}", f"{day}.{month}.{year}",
        f"{day} {name} {year}", f"{name} {day}, {year}", f"{day}th of {name[:3]} {year}",
    ])  # fmt: skip


def _secret(kind: str, rng: random.Random) -> tuple[str, str]:
    """(a sentence holding a ``kind`` of value, the value that must not leave)."""
    word = "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(4, 9)))
    if kind == "aws_secret_key":
        value = "".join(rng.choice(string.ascii_letters + string.digits + "/+") for _ in range(40))
        value = value[:-1] + rng.choice(string.digits)  # a real key holds digits and letters
        template = rng.choice(["my aws secret is {}", "AWS secret access key {}", "key: {}"])
    elif kind == "password":
        value = rng.choice([word + str(rng.randint(0, 999)), word + "!", word.upper() + "#7"])
        template = rng.choice(["password {}", "my password is {}", "pwd: {}", "passcode {}",
                               "wifi password={}", "the Password: {}"])  # fmt: skip
    elif kind == "password_word":  # letters only: found after an explicit "is" or ":"
        value = word + "tt"
        template = rng.choice(["my password is {}", "password: {}", "passphrase = {}"])
    elif kind == "pin":
        value = str(rng.randint(1000, 99999999))
        template = rng.choice(["PIN {}", "my pin code is {}", "pin: {}"])
    elif kind == "birth_date":
        value = _birth_date(rng)
        template = rng.choice(["I was born on {}", "DOB: {}", "date of birth {}",
                               "my birthday is {}", "Born {}"])  # fmt: skip
    elif kind == "address":
        street = f"{rng.randint(1, 9999)} {rng.choice(_NAMES)} {rng.choice(_STREETS)}"
        tail = rng.choice(
            ["", f", {rng.choice(_TOWNS)}", f", Springfield, IL {rng.randint(10000, 99999)}"]
        )
        value = street
        template = "send it to {}" + tail.replace("{", "{{").replace("}", "}}")
    elif kind == "iban":
        value = _iban(rng)
        template = rng.choice(["IBAN {}", "pay to {} please", "account {}"])
    elif kind == "email":
        value = f"{word}.{rng.randint(1, 99)}@{rng.choice(['mail', 'corp'])}.example.org"
        template = "write to {}"
    elif kind == "phone":
        value = f"+1 {rng.randint(200, 999)} {rng.randint(200, 999)} {rng.randint(1000, 9999)}"
        template = "call me on {}"
    else:  # card: a number that passes Luhn
        digits = [rng.randint(0, 9) for _ in range(15)]
        total = sum(d if i % 2 else (d * 2 - 9 if d * 2 > 9 else d * 2)
                    for i, d in enumerate(reversed(digits)))  # fmt: skip
        value = "".join(map(str, digits)) + str((10 - total % 10) % 10)
        template = "card {}"
    return template.format(value), value


SECRET_KINDS = ("aws_secret_key", "password", "password_word", "pin", "birth_date", "address",
                "iban", "email", "phone", "card")  # fmt: skip
_CARRIERS = [
    "The room was clean and the staff were friendly, {} and we would come back.",
    "{}. Terrible service, nobody answered for an hour.",
    "Quick note for the front desk: {}",
]


@_settings("exemplar_secrets")
@given(
    st.lists(st.sampled_from(SECRET_KINDS), min_size=1, max_size=3),
    st.integers(min_value=0, max_value=2**32),
    st.sampled_from(_CARRIERS),
)
def test_secrets_and_personal_data_in_exemplars_never_leave(workdir, kinds, seed, carrier):
    from gpta.assistant.prompts import TaskBrief, initial_messages
    from gpta.chat.base import ChatResult, Sampling, Usage
    from gpta.data import Table
    from gpta.privacy.policy import build_exposure

    rng = random.Random(seed)
    found = [_secret(kind, rng) for kind in kinds]
    text = carrier.format(" and ".join(sentence for sentence, _ in found))
    rows = [{"text": text, "label": "neg"}, {"text": "fine stay, good breakfast", "label": "pos"}]
    train = Table("data/train.jsonl", rows, ["line 1", "line 2"])
    config = build_config(
        {"privacy": {"exposure": "exemplars", "exemplar_ids": ["train.jsonl:line 1"]}}
    )
    run = _case_dir(workdir)
    exposure = build_exposure(
        config, {"train": train, "dev": train, "test": train}, run,
        text_column="text", label_column="label",
    )  # fmt: skip

    class Recording:
        backend, model_name = "scripted", "recording"

        def __init__(self) -> None:
            self.sent: list[list[dict]] = []

        def chat(self, messages, sampling, **params):
            self.sent.append(messages)
            return ChatResult(["Say how the guest feels."], Usage(10, 5), 0.01)

    chat = Recording()
    brief = TaskBrief("text classification", "reads", "Hotel reviews.", ["neg", "pos"],
                      "accuracy", 20, exemplars=tuple(exposure.exemplars))  # fmt: skip
    exposure.channel(chat).send(
        initial_messages(brief), Sampling(n=1, temperature=1.0, top_p=1.0, max_new_tokens=8, seed=0)
    )
    assert len(chat.sent) == 1, "the request was blocked, not sent"
    shown = exposure.exemplars[0].text
    places = {
        "exemplar": shown,
        "request": json.dumps(chat.sent, ensure_ascii=False),
        **{p.name: p.read_text(encoding="utf-8") for p in run.iterdir() if p.is_file()},
    }
    for kind, (_, value) in zip(kinds, found, strict=True):
        event(kind)
        for place, content in places.items():
            assert value not in content, (kind, value, place, shown)
            if kind == "iban":  # nor its account number, spaced or not
                assert value.replace(" ", "")[-8:] not in content.replace(" ", ""), (kind, shown)
    assert "Terrible" in shown or "clean" in shown or "front desk" in shown  # the rest stays
