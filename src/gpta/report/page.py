"""``gpta report``: one self-contained HTML page (figures embedded) plus the figures as PNGs."""

from __future__ import annotations

import base64
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from gpta import run_files
from gpta.fileio import check_dir_creatable, make_dir, object_at, write_text_atomic
from gpta.report import plots
from gpta.report.data import RunData, load_run
from gpta.run_folder import record_written

SUMMARY_ROWS = [
    ("task", "task"),
    ("rounds", "rounds"),
    ("saved model: round", "best_round"),
    ("saved prefix", "prefix"),
    ("round-0 prefix from", "start"),
    ("dev score (saved model)", "dev"),
    ("test score (saved model)", "test"),
    ("test metrics", "test_all"),
    ("majority-class baseline", "majority"),
    ("TA model", "ta_model"),
    ("downstream model", "model"),
    ("wall time (s)", "wall_seconds"),
    ("TA time (s)", "ta_seconds"),
]


@dataclass
class Figure:
    name: str
    title: str
    data: str | None
    width: int = 0
    height: int = 0
    note: str = ""


def _png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    width, height = struct.unpack(">II", header[16:24])
    return width, height


def _summary(run: RunData) -> dict[str, Any]:
    metric = run.metric
    dev, test = run.final_metrics("dev"), run.final_metrics("test")
    assistant = object_at(run.config, "assistant")
    model = object_at(run.config, "model")
    start = next(
        (e for e in run.events if e.get("event") == "select" and e.get("round") == 0), None
    )
    start_text = None
    if start is not None:
        reason = str(start.get("reason") or "")
        source = start.get("source")
        if isinstance(source, dict):
            where = source.get("id") or source.get("run") or ""
            start_text = f"{reason}: {where}".strip(": ")
        else:
            start_text = {"initial": "the TA's first valid proposal"}.get(reason, reason)
    wall = run.metrics.get("wall_seconds")
    ta = run.metrics.get("ta_seconds")
    return {
        "majority": _majority_text(run.metrics.get("majority_baseline")),
        "task": run.task,
        "rounds": len(run.rounds),
        "best_round": run.best_round,
        "prefix": run.prefix,
        "start": start_text,
        "dev": f"{metric} {dev[metric]:.4f}" if metric in dev else None,
        "test": f"{metric} {test[metric]:.4f}" if metric in test else None,
        "test_all": ", ".join(f"{k} {v:.4f}" for k, v in test.items()) or None,
        "ta_model": assistant.get("model"),
        "model": run.manifest.get("base_model") or model.get("name_or_path"),
        "wall_seconds": f"{wall:.1f}" if isinstance(wall, int | float) else None,
        "ta_seconds": f"{ta:.1f}" if isinstance(ta, int | float) else None,
    }


def _majority_text(majority: Any) -> str | None:
    """metrics.json's majority_baseline as one line (None where the task has none)."""
    if not isinstance(majority, dict) or "answer" not in majority:
        return None
    splits = ", ".join(
        f"{split} {majority[split]:.4f}"
        for split in ("dev", "test")
        if isinstance(majority.get(split), int | float)
    )
    return f"always {majority['answer']!r}: {majority.get('metric', 'accuracy')} {splits}"


def _view(run: RunData) -> dict[str, Any]:
    tokens = {
        k: run.tokens.get(k) for k in ("ta_requests", "ta_prompt_tokens", "ta_completion_tokens")
    }
    tokens.update({k: v for k, v in run.tokens.items() if "cost" in k})
    return {
        "name": run.name,
        "metric": run.metric,
        "rounds": run.rounds,
        "proposals": [
            {
                "round": p.get("round"),
                "prefix": p.get("prefix"),
                "raw": str(p.get("raw") or ""),
                "reason": p.get("reason"),
                "truncated": bool(p.get("truncated")),
                "screen_score": p.get("screen_score")
                if isinstance(p.get("screen_score"), int | float)
                else None,
                "improved": p.get("improved") is True,
            }
            for p in run.proposals
        ],
        "prefix_ids": plots.prefix_ids(run),
        "summary": _summary(run),
        "tokens": tokens,
        "exposure": run.exposure,
        "missing": run.missing,
        "cards": _cards_view(run.cards),
    }


def _cards_view(record: dict[str, Any]) -> dict[str, Any] | None:
    """cards.json as the page shows it (None: the run had no card step); read defensively,
    a damaged or partial file shows what it holds."""
    if not isinstance(record, dict) or "chosen" not in record:
        return None
    chosen = object_at(record, "chosen")
    baseline = object_at(record, "baseline")
    sets = [s for s in record.get("sets") or [] if isinstance(s, dict)]
    last = sets[-1:] or []
    return {
        "selection": str(record.get("selection", "")),
        "chosen": {"name": str(chosen.get("name", "w=0")), "weight": chosen.get("weight")},
        "baseline": {"cv_accuracy": _float(baseline.get("cv_accuracy"))},
        "intended_class_share": _float(record.get("intended_class_share")),
        "candidates": [
            {
                "name": str(c.get("name", "")),
                "examples": c.get("examples"),
                "cv_accuracy": _float(c.get("cv_accuracy")),
            }
            for c in record.get("candidates") or []
            if isinstance(c, dict)
        ],
        "sets": [
            {
                "source": str(s.get("source", "")),
                "cards": [
                    {
                        "label": str(card.get("label", "")),
                        "name": str(card.get("name", "")),
                        "definition": str(card.get("definition", "")),
                        "examples": [
                            {"text": str(e.get("text", "")), "dropped": e.get("dropped")}
                            for e in card.get("examples") or []
                            if isinstance(e, dict)
                        ],
                    }
                    for card in s.get("cards") or []
                    if isinstance(card, dict)
                ],
            }
            for s in last
        ],
    }


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("gpta.report", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def default_output_dir(run_dirs: Sequence[str | Path]) -> Path:
    """``RUN_DIR/report`` for one run; ``compare-report`` here for several."""
    return Path(run_dirs[0]) / run_files.REPORT if len(run_dirs) == 1 else Path("compare-report")


def write_report(run_dirs: Sequence[str | Path], output_dir: str | Path | None = None) -> Path:
    """Write ``report.html`` and the PNGs for one run, or overlaid for several; returns the page."""
    from gpta._version import __version__

    out = Path(output_dir) if output_dir is not None else default_output_dir(run_dirs)
    report_dir = ("the report folder", "give `gpta report` another --output-dir")
    check_dir_creatable(out, report_dir[0], fix=report_dir[1])  # before any work; writes nothing
    runs = [load_run(path) for path in run_dirs]
    names = [run.name for run in runs]
    for i, run in enumerate(runs):  # two runs both called "run": tell them apart
        if names.count(run.name) > 1:
            run.name = f"{run.run_dir.parent.name}/{run.name}"
            names[i] = run.name
    make_dir(out, report_dir[0], fix=report_dir[1])
    written = plots.render_all(runs, out)
    figures = []
    for name, (_func, title) in plots.FIGURES.items():
        path = written[name]
        if path is None:
            figures.append(Figure(name, title, None))
            continue
        width, height = _png_size(path)
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        figures.append(Figure(name, title, data, width, height))
    cost_keys = sorted({k for run in runs for k in run.tokens if "cost" in k})
    if len(runs) == 1:
        title = f"GPTA report: {runs[0].name}"
        subtitle = str(runs[0].run_dir.resolve())
    else:
        title = "GPTA comparison: " + " vs ".join(run.name for run in runs)
        subtitle = "; ".join(str(run.run_dir.resolve()) for run in runs)
    html = (
        _environment()
        .get_template("report.html.j2")
        .render(
            title=title,
            subtitle=subtitle,
            generated=time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            version=__version__,
            runs=[_view(run) for run in runs],
            summary_rows=SUMMARY_ROWS,
            figures=figures,
            cost_keys=cost_keys,
        )
    )
    page = out / "report.html"
    write_text_atomic(page, html, "the report page")
    if len(runs) == 1:  # into a run's folder: its file list names them (docs/run-folder.md)
        record_written(runs[0].run_dir, [page, *(p for p in written.values() if p is not None)])
    return page
