"""Progress output (ETA, JSON lines, quiet) and `training.report_to` (no model needed; the
JSON log and ETA of a real run are checked in test_library.py and test_report.py)."""

from __future__ import annotations

import json
import time

import pytest
from transformers.integrations import get_available_reporting_integrations

from gpta.assistant import RoundRecord
from gpta.config import REPORT_TO_NAMES, build_config
from gpta.downstream.training import report_integrations
from gpta.errors import GptaUserError
from gpta.progress import Progress, format_seconds


def _record(index: int) -> RoundRecord:
    return RoundRecord(
        round=index, prefix="p", dev_score=0.5, dev_loss=0.7, train_loss=0.9, dev_metrics={}
    )


def test_eta_is_the_mean_round_times_the_rounds_left(monkeypatch):
    clock = iter([100.0, 100.0, 110.0, 130.0])
    monkeypatch.setattr(time, "perf_counter", lambda: next(clock))
    progress = Progress(quiet=True)  # __init__ reads the clock once
    progress.prefix_chosen(0, "p", changed=True)  # training starts at 100
    assert progress.eta(0, 4) is None
    progress.round_done(_record(0), "accuracy", True, 4)  # 10 s
    assert progress.eta(0, 4) == pytest.approx(30.0)  # 3 rounds left x 10 s
    progress.round_done(_record(1), "accuracy", False, 4)  # 20 s
    assert progress.eta(1, 4) == pytest.approx(30.0)  # 2 left x 15 s
    assert progress.eta(3, 4) == 0


def test_format_seconds():
    assert [format_seconds(s) for s in (0, 42.4, 185, 3720)] == ["0s", "42s", "3m05s", "1h02m"]


def test_json_lines_and_quiet(capsys):
    progress = Progress(log_format="json")
    progress.info("[bold]hello[/] [cyan]world[/]")
    progress.round_done(_record(0), "accuracy", True, 2)
    lines = capsys.readouterr().err.splitlines()
    events = [json.loads(line) for line in lines]
    assert events[0]["event"] == "info" and events[0]["message"] == "hello world"
    assert events[1]["event"] == "round" and events[1]["dev_score"] == 0.5
    assert events[1]["eta_seconds"] >= 0 and events[1]["best"] is True

    quiet = Progress(quiet=True, log_format="json")
    quiet.info("nothing")
    quiet.round_done(_record(0), "accuracy", True, 2)
    assert capsys.readouterr().err == ""


def test_text_progress_escapes_prefixes(capsys):
    progress = Progress()
    progress.prefix_chosen(1, "Replace names with [NAME] and [/b] tags", changed=True)
    assert "[NAME] and [/b] tags" in capsys.readouterr().err


def test_a_refused_candidate_is_shown_with_its_scores_and_why(capsys):
    reason = "not significant at 0.95 on 48 screening rows"
    Progress().not_adopted("Read the [review] first.", 0.75, 0.708, reason)
    text = capsys.readouterr().err
    assert "not adopted (not significant at 0.95 on 48 screening rows)" in text
    assert "0.750 vs 0.708" in text and "Read the [review] first." in text
    Progress(log_format="json").not_adopted("p", 0.75, 0.708, reason)
    (event,) = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert event["event"] == "not_adopted" and event["reason"] == reason
    assert (event["score"], event["current"], event["prefix"]) == (0.75, 0.708, "p")
    Progress(quiet=True).not_adopted("p", 0.75, 0.708, reason)
    assert capsys.readouterr().err == ""


def test_closing_table_shows_the_majority_class_baseline(capsys):
    majority = {"answer": "positive", "metric": "accuracy", "dev": 0.5625, "test": 0.17}
    Progress(quiet=True).summary("RUN", [_record(0)], "accuracy", 0, {"accuracy": 0.8}, majority)
    out = capsys.readouterr().out
    assert "majority class (always 'positive'): accuracy dev 0.5625, test 0.1700" in out
    Progress(quiet=True).summary("RUN", [_record(0)], "f1", 0, {"f1": 0.3}, None)
    assert "majority class" not in capsys.readouterr().out  # QA: no majority answer
    Progress(log_format="json").summary("RUN", [_record(0)], "accuracy", 0, None, majority)
    event = next(
        json.loads(line)
        for line in capsys.readouterr().err.splitlines()
        if json.loads(line)["event"] == "summary"
    )
    assert event["majority_baseline"] == majority


def test_report_to_passes_through_installed_integrations():
    assert report_integrations(["none"]) == "none"
    assert report_integrations(["all"]) == "all"
    installed = get_available_reporting_integrations()
    missing = next(n for n in REPORT_TO_NAMES[2:] if n not in installed)
    with pytest.raises(GptaUserError, match=f"{missing} is not installed"):
        report_integrations([missing])
    for name in installed:
        assert report_integrations([name]) == [name]
    assert build_config({}).training.report_to == ["none"]
    with pytest.raises(GptaUserError, match="unknown integration"):
        build_config({"training": {"report_to": ["tensorbord"]}})


def test_warnings_that_change_the_run_are_never_silenced(capsys, monkeypatch):
    """-q hides progress, not a warning such as "the description copies a data row" (the run
    then trains without TA proposals): text and JSON, and through the privacy announcement."""
    from types import SimpleNamespace

    from gpta.privacy.policy import Exposure
    from gpta.progress import warn

    quiet = Progress(quiet=True)
    quiet.info("hidden")
    quiet.warn("the description copies [data] rows")
    err = capsys.readouterr().err
    assert "hidden" not in err and "warning: the description copies [data] rows" in err

    Progress(quiet=True, log_format="json").warn("cut")
    event = json.loads(capsys.readouterr().err)
    assert (event["event"], event["message"]) == ("warning", "cut")

    fake = SimpleNamespace(warnings=["copies rows"], describe=lambda: ["privacy: none"])
    Exposure.announce(fake, quiet)
    err = capsys.readouterr().err
    assert "warning: copies rows" in err and "privacy: none" not in err

    warn("module-level too")
    assert "warning: module-level too" in capsys.readouterr().err
    monkeypatch.setenv("RANK", "1")  # another process of a launch: the main one warns
    warn("once")
    quiet.warn("once")
    assert capsys.readouterr().err == ""
