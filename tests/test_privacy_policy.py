"""The exposure policy: config checks, row ids, choosing and redacting exemplars."""

from __future__ import annotations

import json

import pytest

from gpta.config import build_config
from gpta.data import Table
from gpta.errors import GptaUserError
from gpta.privacy.policy import build_exposure, build_guard, row_ids, select_exemplars

ROWS = [
    {
        "id": "a1",
        "text": "Call me on 555-123-4567, the room was dirty and loud all night",
        "label": "neg",
    },
    {
        "id": "a2",
        "text": "Ask Maria at maria@hotel.com, she sorted our booking right away",
        "label": "pos",
    },
    {
        "id": "a3",
        "text": "Terrible breakfast and the pool was closed for the whole week",
        "label": "neg",
    },
    {
        "id": "a4",
        "text": "Great view from the balcony and very friendly staff at the desk",
        "label": "pos",
    },
    {
        "id": "a5",
        "text": "Average stay, nothing special to report about the place itself",
        "label": "neu",
    },
]


def _tables() -> dict[str, Table]:
    train = Table("data/train.jsonl", ROWS, [f"line {i}" for i in range(1, 6)])
    dev = Table("data/dev.jsonl", [{"id": "d1", "text": "fine hotel", "label": "pos"}])
    return {"train": train, "dev": dev, "test": dev}


def _config(**privacy):
    return build_config({"seed": 3, "privacy": privacy})


@pytest.mark.parametrize(
    ("privacy", "message"),
    [
        ({"exemplars": 2}, "need privacy.exposure: exemplars"),
        ({"exemplar_ids": ["x"]}, "need privacy.exposure: exemplars"),
        ({"exposure": "exemplars", "exemplar_ids": []}, "is empty"),
        ({"exposure": "exemplars", "exemplar_ids": ["x", "x"]}, "lists a row twice"),
        ({"exposure": "exemplars", "exemplars": 3, "exemplar_ids": ["x"]}, "differs"),
        ({"exposure": "some"}, "privacy.exposure"),
        ({"guard_ngram": 2}, "privacy.guard_ngram"),
    ],
)
def test_config_refuses_anything_the_user_did_not_ask_for(privacy, message):
    with pytest.raises(GptaUserError) as info:
        _config(**privacy)
    assert message in info.value.message


def test_row_ids_are_file_name_and_location_or_the_id_column():
    table = _tables()["train"]
    assert row_ids(table)[:2] == ["train.jsonl:line 1", "train.jsonl:line 2"]
    assert row_ids(table, "id")[:2] == ["a1", "a2"]
    hub = Table("hub:user/reviews[train]", ROWS[:1])
    assert row_ids(hub) == ["hub:user/reviews[train]:row 1"]


def test_none_selects_no_exemplar():
    assert (
        select_exemplars(_config(), _tables()["train"], text_column="text", label_column="label")
        == []
    )


def test_sampled_exemplars_are_seeded_spread_over_labels_and_redacted():
    config = _config(exposure="exemplars", exemplars=3, redact_names=["Maria"])
    train = _tables()["train"]
    first = select_exemplars(config, train, text_column="text", label_column="label")
    again = select_exemplars(config, train, text_column="text", label_column="label")
    assert first == again and len(first) == 3
    assert sorted(e.label for e in first) == ["neg", "neu", "pos"]
    for e in first:
        assert "555-123-4567" not in e.text and "maria" not in e.text.lower()
    by_id = {
        e.row_id: e
        for e in select_exemplars(
            _config(exposure="exemplars", exemplars=5, redact_names=["Maria"]),
            train,
            text_column="text",
            label_column="label",
        )
    }
    assert by_id["train.jsonl:line 1"].text.startswith("Call me on [PHONE], the room")
    assert by_id["train.jsonl:line 2"].text.startswith("Ask [NAME] at [EMAIL], she")
    assert by_id["train.jsonl:line 2"].redactions == {"email": 1, "name": 1}


def test_named_exemplars_in_the_given_order_and_unknown_ids_are_user_errors():
    config = _config(
        exposure="exemplars", exemplar_ids=["train.jsonl:line 4", "train.jsonl:line 3"]
    )
    chosen = select_exemplars(config, _tables()["train"], text_column="text", label_column="label")
    assert [e.row_id for e in chosen] == ["train.jsonl:line 4", "train.jsonl:line 3"]
    bad = _config(exposure="exemplars", exemplar_ids=["dev.jsonl:line 1"])
    with pytest.raises(GptaUserError) as info:
        select_exemplars(bad, _tables()["train"], text_column="text", label_column="label")
    assert "dev.jsonl:line 1" in info.value.message and "train.jsonl:line 1" in info.value.hint


def test_id_column_must_be_unique():
    rows = [dict(r, id="same") for r in ROWS]
    config = _config(exposure="exemplars", exemplars=1, id_column="id")
    with pytest.raises(GptaUserError) as info:
        select_exemplars(config, Table("t.csv", rows), text_column="text", label_column="label")
    assert "not unique" in info.value.message


def test_guard_covers_every_split_and_every_string_field():
    tables = _tables()
    tables["test"] = Table(
        "data/test.jsonl",
        [
            {
                "text": "x",
                "answers": {"text": ["the answer is hidden in this nested field of a row"]},
            }
        ],
    )
    guard = build_guard(tables, n=8)
    assert len(guard.row_ids) == 7
    report = guard.check([{"role": "user", "content": "the answer is hidden in this nested field"}])
    assert report.row_ids == ["test.jsonl:row 1"]


def test_build_exposure_writes_exemplars_policy_and_warns_on_a_pasted_description(tmp_path):
    config = _config(exposure="exemplars", exemplars=2)
    pasted = f"Hotel reviews, e.g. {ROWS[2]['text']}"
    exposure = build_exposure(
        config, _tables(), tmp_path, text_column="text", label_column="label", description=pasted
    )
    listed = [json.loads(x) for x in (tmp_path / "exemplars.jsonl").read_text().splitlines()]
    assert [e["row_id"] for e in listed] == [e.row_id for e in exposure.exemplars]
    policy = json.loads((tmp_path / "exposure.jsonl").read_text().splitlines()[0])
    assert policy["event"] == "policy" and policy["exposure"] == "exemplars"
    assert policy["exemplar_ids"] == [e.row_id for e in exposure.exemplars]
    assert policy["guard_ngram"] == 8 and policy["indexed_rows"] == 6
    assert len(exposure.warnings) == 1 and "train.jsonl:line 3" in exposure.warnings[0]
    lines = exposure.describe()
    assert "2 redacted training rows" in lines[0]
    assert all(e.text in "\n".join(lines) for e in exposure.exemplars)
    # the exemplars themselves pass the guard, and the channel records them by id
    from gpta.assistant.prompts import TaskBrief, initial_messages

    brief = TaskBrief(
        "text classification",
        "reads",
        "Hotel reviews.",
        ["neg", "pos"],
        "accuracy",
        20,
        exemplars=tuple(exposure.exemplars),
    )
    messages = initial_messages(brief)
    assert exposure.guard.check(messages) is None
    channel = exposure.channel(chat_model=None)
    assert channel.rows_in(messages) == [e.row_id for e in exposure.exemplars]


def test_audit_recheck_finds_a_copied_row_the_ledger_did_not_declare(tmp_path):
    from gpta.config import dump_config
    from gpta.privacy.audit import audit_run
    from gpta.privacy.ledger import ExposureLedger

    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    config = build_config({"data": {"train": str(train), "description": "Hotel reviews."}})
    dump_config(config, tmp_path / "config.yaml")
    ledger = ExposureLedger(tmp_path / "exposure.jsonl")
    ledger.record_policy(exposure="none", exemplar_ids=[], guard_ngram=8)
    copied = f"Reviews like: {ROWS[3]['text']}"
    for content in ("Hotel reviews, labelled neg, neu or pos.", copied):
        ledger.record_request(
            backend="b",
            model="m",
            messages=[{"role": "user", "content": content}],
            row_ids=[],  # an undeclared copy: only a recheck can see it
            params={},
        )
    (tmp_path / "metrics.json").write_text(json.dumps(ledger.seal()))  # as a finished run
    assert audit_run(tmp_path).ok
    report = audit_run(tmp_path, recheck=True)
    assert report.recheck_rows == ["train.jsonl:line 4"] and not report.ok
    assert report.beyond_policy == ["train.jsonl:line 4"]
    assert "EXPOSED BEYOND POLICY" in report.verdict


_ESCAPED = (
    "Tom &amp; Jerry&#39;s &quot;cheese&quot; heist &lt;3 was, &amp; remains, the best cartoon"
)
_DISPLAYED = 'Tom & Jerry\'s "cheese" heist <3 was, & remains, the best cartoon'


def test_audit_recheck_uses_the_same_normalisation(tmp_path):
    import json

    from gpta.config import build_config, dump_config
    from gpta.privacy.audit import audit_run
    from gpta.privacy.ledger import ExposureLedger

    train = tmp_path / "train.jsonl"
    rows = [{"text": _ESCAPED, "label": "pos"}, {"text": "another row, short", "label": "neg"}]
    train.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    dump_config(build_config({"data": {"train": str(train)}}), tmp_path / "config.yaml")
    ledger = ExposureLedger(tmp_path / "exposure.jsonl")
    ledger.record_policy(exposure="none", exemplar_ids=[], guard_ngram=8)
    messages = [{"role": "user", "content": f"Cartoon reviews, e.g. {_DISPLAYED.upper()}"}]
    ledger.record_request(backend="b", model="m", messages=messages, row_ids=[], params={})
    (tmp_path / "metrics.json").write_text(json.dumps(ledger.seal()))
    assert audit_run(tmp_path).ok  # the ledger declares no row
    report = audit_run(tmp_path, recheck=True)
    assert report.recheck_rows == ["train.jsonl:line 1"] and not report.ok


def test_the_guard_covers_the_rows_a_sample_left_out(tmp_path):
    """build_exposure guards every row of every file the config names, not only the rows
    the run sampled (data.train_size) or split off: the tables it is handed are subsets."""
    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    config = build_config({"data": {"train": str(train), "description": "Hotel reviews."}})
    sample = {"train": Table(str(train), ROWS[:2], ["line 1", "line 2"])}
    sample["dev"] = sample["test"] = sample["train"]
    left_out = f"Hotel reviews, e.g. {ROWS[4]['text']}"
    exposure = build_exposure(
        config, sample, tmp_path, text_column="text", label_column="label", description=left_out
    )
    assert len(exposure.guard.row_ids) == 5
    assert exposure.guard.check([{"role": "user", "content": left_out}]).row_ids == [
        "train.jsonl:line 5"
    ]
    assert "train.jsonl:line 5" in exposure.warnings[0]
    # what the guard would have been over the sample alone: the row passes
    assert build_guard(sample, n=8).check([{"role": "user", "content": left_out}]) is None
