"""`gpta report`: a real tiny run -> report.html + PNGs, opened in headless Chromium (every
image loaded, the prefix table there, a screenshot); --compare; older runs with missing files."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import TWEETS_DESCRIPTION as DESCRIPTION
from conftest import balanced as _balanced
from conftest import gpta_cli as _gpta
from conftest import shared_rows, write_jsonl

from gpta.report import load_run

pytestmark = pytest.mark.slow  # a real 2-round run, then headless Chromium

FIGURES = ("dev_score", "loss", "improvement", "screened", "tokens", "exposure")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
# Appended to a copy of the page: after the load event, write what the browser saw into the
# DOM, where --dump-dom can read it.
CHECK_SCRIPT = """<script>
window.addEventListener('load', function () {
  var images = Array.from(document.images);
  var loaded = images.filter(function (i) { return i.complete && i.naturalWidth > 0; });
  var table = document.querySelector('table.prefix-table');
  var out = document.createElement('pre');
  out.id = 'render-check';
  out.textContent = JSON.stringify({
    images: images.length,
    loaded: loaded.length,
    widths: loaded.map(function (i) { return i.naturalWidth; }),
    prefixRows: table ? table.querySelectorAll('tr').length - 1 : -1,
    prefixCells: table ? Array.from(table.querySelectorAll('td:nth-child(3)'))
      .map(function (c) { return c.textContent.trim(); }) : []
  });
  document.body.appendChild(out);
});
</script>"""


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    """A real 2-round run (bundled encoder, real local TA) on a few tweets, via the CLI."""
    base = tmp_path_factory.mktemp("report")
    held_out = _balanced(shared_rows("twitter", "test"), 8)
    train = write_jsonl(base / "train.jsonl", _balanced(shared_rows("twitter", "train"), 8))
    config = {
        "output_dir": str(base / "run"),
        "data": {
            "train": str(train),
            "dev": str(write_jsonl(base / "dev.jsonl", held_out[:12])),
            "test": str(write_jsonl(base / "test.jsonl", held_out[12:])),
            "description": DESCRIPTION,
        },
        "model": {"max_length": 48},
        "training": {"epochs_per_round": 1, "rounds": 2, "batch_size": 8, "learning_rate": 1e-4},
        "assistant": {
            "warmup_rounds": 0,
            "candidates": 2,
            "screen_size": 8,
            "max_new_tokens": 24,
            "max_prefix_tokens": 16,
        },
    }
    config_path = base / "run.yaml"
    config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
    result = _gpta("train", "--config", str(config_path))
    assert result.returncode == 0, result.stderr[-3000:]
    return {"dir": base / "run", "base": base, "stderr": result.stderr}


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    pytest.fail("chromium is not installed; `make install-test` installs Debian's chromium")


def _browse(page: Path, profile: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *extra, page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _render_check(html: str, tmp_path: Path, name: str) -> dict:
    """Open ``html`` (with the check script added) in Chromium; what it saw after load."""
    page = tmp_path / f"{name}.html"
    page.write_text(html.replace("</body>", CHECK_SCRIPT + "</body>"), encoding="utf-8")
    result = _browse(
        page, tmp_path / f"profile-{name}", "--virtual-time-budget=10000", "--dump-dom"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    found = re.search(r'<pre id="render-check">(.*?)</pre>', result.stdout, re.S)
    assert found, f"the check script did not run:\n{result.stdout[-1500:]}"
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))


def _events(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "history.jsonl").open(encoding="utf-8")]


def test_progress_shows_eta(run):
    # round 0 of 2 is done -> one round left: the ETA is printed with that line
    assert re.search(r"round 0 \(1 of 2\) done: .*ETA \d+", run["stderr"]), run["stderr"][-2000:]


def test_report_renders_in_chromium(run, tmp_path):
    out = tmp_path / "report"
    result = _gpta("report", str(run["dir"]), "--output-dir", str(out))
    assert result.returncode == 0, result.stderr
    page = out / "report.html"
    assert result.stdout.strip() == str(page)
    for name in FIGURES:
        png = out / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    html = page.read_text(encoding="utf-8")
    # self-contained: every image is embedded, nothing is fetched
    sources = re.findall(r'<img[^>]*src="([^"]*)"', html)
    assert len(sources) == len(FIGURES)
    assert all(s.startswith("data:image/png;base64,") for s in sources)
    assert not re.search(r'(src|href)="(https?:)?//', html)

    seen = _render_check(html, tmp_path, "report")
    assert seen["images"] == len(FIGURES)
    assert seen["loaded"] == seen["images"], seen
    assert all(width > 300 for width in seen["widths"])
    rounds = [e for e in _events(run["dir"]) if e["event"] == "round"]
    assert seen["prefixRows"] == len(rounds) == 2
    for cell, record in zip(seen["prefixCells"], rounds, strict=True):
        assert cell == (record["prefix"] or "(none: plain fine-tuning input)")

    shot = tmp_path / "report.png"
    result = _browse(
        page, tmp_path / "profile-shot", "--window-size=1280,2600", f"--screenshot={shot}"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000


def test_render_check_catches_a_broken_image(tmp_path):
    """The browser check is not vacuous: a broken image is reported as not loaded."""
    page = (
        "<!DOCTYPE html><html><body><table class='prefix-table'><tr><th>r</th></tr></table>"
        '<img src="data:image/png;base64,iVBORw0KGgoAAAA=" alt="broken"></body></html>'
    )
    seen = _render_check(page, tmp_path, "broken")
    assert seen == {"images": 1, "loaded": 0, "widths": [], "prefixRows": 0, "prefixCells": []}


def test_report_numbers_follow_the_history(run):
    data = load_run(run["dir"])
    events = _events(run["dir"])
    metrics = json.loads((run["dir"] / "metrics.json").read_text(encoding="utf-8"))
    assert [r.round for r in data.rounds] == [0, 1]
    assert [r.dev_score for r in data.rounds] == [r["dev_score"] for r in metrics["rounds"]]
    assert [r.train_loss for r in data.rounds] == [r["train_loss"] for r in metrics["rounds"]]
    assert [r.best for r in data.rounds] == [r.round == metrics["best_round"] for r in data.rounds]
    assert data.rounds[0].select_reason == "initial"
    # improvement rate of round 1 = improving proposals / all proposals for round 1
    proposals = [e for e in events if e["event"] == "proposal" and e["round"] == 1]
    (row,) = data.improvement
    assert row.round == 1 and row.proposals == len(proposals) == 2
    assert row.improved == sum(p["improved"] for p in proposals)
    assert row.rate == pytest.approx(row.improved / row.proposals)
    # every screened score of round 1 is a point of the strip plot
    (screen,) = [e for e in events if e["event"] == "screen"]
    scores = sorted(p.score for p in data.screens)
    assert scores == sorted(
        [screen["current"]["score"], *(c["score"] for c in screen["candidates"])]
    )
    assert data.tokens["ta_prompt_tokens"] == metrics["ta_prompt_tokens"] > 0
    requests = [
        json.loads(line)
        for line in (run["dir"] / "exposure.jsonl").open(encoding="utf-8")
        if '"event": "request"' in line
    ]
    assert data.exposure.requests == len(requests) == 2
    assert data.exposure.characters == sum(r["chars"] for r in requests)
    assert data.exposure.row_ids == []
    # the summary shows the majority-class baseline of metrics.json
    from gpta.report.page import _summary

    majority = metrics["majority_baseline"]
    line = _summary(data)["majority"]
    assert line.startswith(f"always {majority['answer']!r}: accuracy dev ")
    assert f"test {majority['test']:.4f}" in line


def test_compare_and_an_older_run_with_missing_files(run, tmp_path):
    old = tmp_path / "old-run"
    shutil.copytree(run["dir"], old, ignore=shutil.ignore_patterns("report", "model"))
    (old / "history.jsonl").unlink()
    (old / "exposure.jsonl").unlink()
    metrics = json.loads((old / "metrics.json").read_text(encoding="utf-8"))
    for key in ("ta_prompt_tokens", "ta_completion_tokens", "ta_requests"):
        metrics.pop(key)
    (old / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")

    # the old run alone: rounds come from metrics.json, the rest is marked as not recorded
    result = _gpta("report", str(old))
    assert result.returncode == 0, result.stderr
    html = (old / "report" / "report.html").read_text(encoding="utf-8")
    assert html.count("<img ") == 2  # dev score and losses only
    assert not (old / "report" / "improvement.png").exists()
    assert "history.jsonl, exposure.jsonl, model/gpta.json not found" in html
    assert "no exposure.jsonl in this run" in html

    out = tmp_path / "compare"
    result = _gpta("report", "--compare", str(run["dir"]), str(old), "--output-dir", str(out))
    assert result.returncode == 0, result.stderr
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "GPTA comparison: run vs old-run" in html
    assert html.count('class="prefix-table"') == 2
    seen = _render_check(html, tmp_path, "compare")
    assert seen["loaded"] == seen["images"] == len(FIGURES)


def test_report_user_errors(run, tmp_path):
    result = _gpta("report", str(run["dir"]), str(run["dir"]))
    assert result.returncode == 2 and "--compare" in result.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    result = _gpta("report", str(empty))
    assert result.returncode == 2 and "not a gpta run directory" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_report_shows_the_class_cards_and_survives_a_damaged_file(run, tmp_path):
    carded = tmp_path / "carded"
    shutil.copytree(run["dir"], carded, ignore=shutil.ignore_patterns("report"))
    record = {
        "selection": "selection: 3-fold cross-validation over the 24 labelled rows",
        "baseline": {"name": "w=0", "cv_accuracy": 0.5, "cv_loss": 1.0},
        "candidates": [{"name": "ta w=1", "examples": 2, "cv_accuracy": 0.625}],
        "sets": [
            {
                "source": "ta",
                "cards": [
                    {
                        "label": "pos",
                        "name": "glad",
                        "definition": "Happy.",
                        "examples": [
                            {"text": "What a lovely morning walk", "dropped": None},
                            {"text": "Such a positive day", "dropped": "names_class"},
                        ],
                    }
                ],
            }
        ],
        "intended_class_share": 0.75,
        "chosen": {"name": "ta w=1", "weight": 1.0, "counts": {"pos": 1}, "rows": []},
    }
    (carded / "cards.json").write_text(json.dumps(record), encoding="utf-8")
    result = _gpta("report", str(carded))
    assert result.returncode == 0, result.stderr
    html = (carded / "report" / "report.html").read_text(encoding="utf-8")
    assert "Class cards" in html and "ta w=1" in html and "0.625" in html
    assert "What a lovely morning walk" in html
    assert "<s>Such a positive day</s>" in html and "(names_class)" in html
    # a damaged cards.json shows what it holds, it does not end the report
    (carded / "cards.json").write_text(json.dumps({"chosen": "?", "candidates": [1]}))
    result = _gpta("report", str(carded))
    assert result.returncode == 0, result.stderr
    assert "Class cards" in (carded / "report" / "report.html").read_text(encoding="utf-8")
