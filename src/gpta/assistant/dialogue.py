"""Dialogue-gradient examples: what the TA should have said, learned from what worked.

A run's ``history.jsonl`` holds every proposal with its screened score and whether it beat the
current prefix (``improved``); its ``exposure.jsonl`` holds every conversation the TA was sent.
Joining the two gives, for each round, the conversation as the TA saw it (description, scored
prefixes, feedback) and the proposals it answered with. An example is that conversation with,
as the target, a proposal that beat the current prefix when screened: positives only, ties and
losses are never targets.

Examples of one task (same family, description and labels) are kept across runs in a store::

    <store>/examples.jsonl     deduplicated examples, appended
    <store>/adapters/v001/     LoRA adapters of the local TA, one folder per tuning, versioned
    <store>/api_models.jsonl   fine-tuning jobs submitted to an API and the models they made

The default store is ``<parent of output_dir>/dialogue/<task key>/`` so that every run of the
same task written next to each other shares it (``assistant.dialogue_store`` overrides).

The TA's *improvement rate* (the paper's "training accuracy" of the LLM) is the share of a
round's proposals that beat the current prefix; :func:`improvement_rates` computes it per
round and over a run.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gpta import run_files
from gpta.assistant.prompts import answer_json
from gpta.chat.base import Message
from gpta.errors import GptaUserError


@dataclass(frozen=True)
class DialogueExample:
    """One positive dialogue: the TA's conversation at a round and a proposal that improved."""

    messages: list[Message]  # system + user, exactly as sent to the TA
    target: str  # the cleaned prefix that beat the current one when screened
    task_key: str
    run: str  # the run directory it came from
    round: int
    current_prefix: str | None
    current_score: float | None
    target_score: float | None

    @property
    def key(self) -> str:
        """Deduplication key: the conversation and the target."""
        blob = json.dumps([self.messages, self.target], sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, **asdict(self)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DialogueExample:
        fields: dict[str, Any] = {k: data.get(k) for k in cls.__dataclass_fields__}
        return cls(**fields)

    def chat(self) -> list[Message]:
        """The conversation with the target as the assistant's reply (fine-tuning format), in
        the JSON form when the conversation asked for it (its system prompt shows the form)."""
        reply = self.target
        if any('{"instruction"' in m.get("content", "") for m in self.messages[:1]):
            reply = answer_json(self.target)  # the conversation asked for the JSON form
        return [*self.messages, {"role": "assistant", "content": reply}]


def task_key(family: str, description: str, label_names: Sequence[str]) -> str:
    """A stable, readable name for a task: ``classification-3labels-<12 hex>``."""
    blob = json.dumps([family, description.strip(), list(label_names)], ensure_ascii=False)
    digest = hashlib.sha256(blob.encode("utf-8")).hexdigest()[:12]
    return f"{family}-{len(label_names)}labels-{digest}"


def default_store_dir(output_dir: str | Path, key: str) -> Path:
    """``<parent of output_dir>/dialogue/<key>``: shared by sibling runs of one task."""
    return Path(output_dir).resolve().parent / "dialogue" / key


# --------------------------------------------------------------------------------------------
# Reading a run
# --------------------------------------------------------------------------------------------


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    records = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                # a run killed mid-write leaves a torn last line; anything else is corruption
                if handle.readline():
                    raise GptaUserError(f"{path}, line {number}: not valid JSON") from None
    return records


def require_run(run_dir: Path) -> None:
    missing = [n for n in (run_files.HISTORY, run_files.EXPOSURE) if not (run_dir / n).is_file()]
    if missing:
        raise GptaUserError(
            f"{run_dir} is not a gpta run directory (no {', '.join(missing)})",
            hint="pass the --output-dir of a finished or interrupted `gpta train`",
        )


def run_task_key(run_dir: Path) -> str | None:
    """The task key recorded by the run (``dialogue`` event), else from its config + ledger."""
    for event in read_jsonl(run_dir / run_files.HISTORY):
        if event.get("event") == "dialogue" and event.get("task_key"):
            return str(event["task_key"])
    return None


@dataclass
class RoundDialogue:
    """One round's conversation and the proposals that answered it."""

    round: int
    messages: list[Message] | None
    proposals: list[dict[str, Any]] = field(default_factory=list)
    current_prefix: str | None = None
    current_score: float | None = None


def round_dialogues(run_dir: str | Path) -> list[RoundDialogue]:
    """Every round's conversation (from the ledger) with its proposals (from the history).

    A proposal event carries the SHA-256 of the messages that produced it (``messages_sha256``)
    when the run recorded it; otherwise the round's proposals are matched to the first unused
    ledger response whose completions contain all of their raw texts.
    """
    run_dir = Path(run_dir)
    require_run(run_dir)
    events = read_jsonl(run_dir / run_files.HISTORY)
    ledger = read_jsonl(run_dir / run_files.EXPOSURE)
    requests = {r["id"]: r for r in ledger if r.get("event") == "request"}
    by_hash = {r["sha256"]: r["messages"] for r in requests.values() if "sha256" in r}
    responses = [
        (r["id"], r.get("texts") or [])
        for r in ledger
        if r.get("event") == "response" and r["id"] in requests
    ]
    rounds: dict[int, RoundDialogue] = {}
    for event in events:
        if event.get("event") == "proposal":
            dialogue = rounds.setdefault(event["round"], RoundDialogue(event["round"], None))
            dialogue.proposals.append(event)
        elif event.get("event") == "screen":
            dialogue = rounds.setdefault(event["round"], RoundDialogue(event["round"], None))
            current = event.get("current") or {}
            dialogue.current_prefix = current.get("prefix")
            dialogue.current_score = current.get("score")
    used: set[int] = set()
    for number in sorted(rounds):
        dialogue = rounds[number]
        digest = next(
            (p.get("messages_sha256") for p in dialogue.proposals if p.get("messages_sha256")),
            None,
        )
        if digest and digest in by_hash:
            dialogue.messages = by_hash[digest]
            continue
        raws = [p["raw"] for p in dialogue.proposals]
        for request_id, texts in responses:
            if request_id not in used and all(raw in texts for raw in raws):
                used.add(request_id)
                dialogue.messages = requests[request_id]["messages"]
                break
    return [rounds[n] for n in sorted(rounds)]


def examples_from_run(run_dir: str | Path, *, key: str | None = None) -> list[DialogueExample]:
    """The positive dialogues of one run: each improving proposal with its conversation."""
    run_dir = Path(run_dir)
    key = key or run_task_key(run_dir) or "unknown-task"
    examples: list[DialogueExample] = []
    seen: set[str] = set()
    for dialogue in round_dialogues(run_dir):
        if dialogue.messages is None:
            continue
        for proposal in dialogue.proposals:
            if not (proposal.get("improved") is True and proposal.get("prefix")):
                continue
            example = DialogueExample(
                messages=[dict(m) for m in dialogue.messages],
                target=proposal["prefix"],
                task_key=key,
                run=str(run_dir.resolve()),
                round=dialogue.round,
                current_prefix=dialogue.current_prefix,
                current_score=dialogue.current_score,
                target_score=proposal.get("screen_score"),
            )
            if example.key not in seen:
                seen.add(example.key)
                examples.append(example)
    return examples


# --------------------------------------------------------------------------------------------
# Improvement rate
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RoundRate:
    """How a round's proposals fared: the TA's improvement and validity rates."""

    round: int
    proposals: int
    valid: int
    improved: int

    @property
    def improvement_rate(self) -> float:
        return self.improved / self.proposals if self.proposals else 0.0

    @property
    def validity_rate(self) -> float:
        return self.valid / self.proposals if self.proposals else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "improvement_rate": round(self.improvement_rate, 4),
            "validity_rate": round(self.validity_rate, 4),
        }


def round_rate(round_index: int, proposals: Iterable[dict[str, Any]]) -> RoundRate:
    """Counts over one round's proposal events (every proposal counts, invalid ones too)."""
    items = list(proposals)
    return RoundRate(
        round=round_index,
        proposals=len(items),
        valid=sum(1 for p in items if p.get("valid")),
        improved=sum(1 for p in items if p.get("improved") is True),
    )


def improvement_rates(events: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Per screened round and over the run: the share of proposals that beat the prefix.

    Round 0 is not screened (its proposals cannot improve on anything), so it is left out.
    """
    by_round: dict[int, list[dict[str, Any]]] = {}
    screened: set[int] = set()
    for event in events:
        if event.get("event") == "proposal":
            by_round.setdefault(event["round"], []).append(event)
        elif event.get("event") == "screen":
            screened.add(event["round"])
    rates = [round_rate(r, by_round.get(r, [])) for r in sorted(screened)]
    total = sum(r.proposals for r in rates)
    return {
        "rounds": [r.to_json() for r in rates],
        "proposals": total,
        "improved": sum(r.improved for r in rates),
        "improvement_rate": round(sum(r.improved for r in rates) / total, 4) if total else None,
        "validity_rate": round(sum(r.valid for r in rates) / total, 4) if total else None,
    }


# --------------------------------------------------------------------------------------------
# The per-task store
# --------------------------------------------------------------------------------------------

_VERSION_RE = re.compile(r"^v(\d{3,})$")


class DialogueStore:
    """Deduplicated examples and versioned adapters of one task, kept across runs."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @property
    def examples_path(self) -> Path:
        return self.root / "examples.jsonl"

    @property
    def adapters_dir(self) -> Path:
        return self.root / "adapters"

    def examples(self) -> list[DialogueExample]:
        if not self.examples_path.is_file():
            return []
        return [DialogueExample.from_json(r) for r in read_jsonl(self.examples_path)]

    def add(self, examples: Iterable[DialogueExample]) -> int:
        """Append the examples not stored yet; returns how many were new."""
        known = {e.key for e in self.examples()}
        new = []
        for example in examples:
            if example.key not in known:
                known.add(example.key)
                new.append(example)
        if new:
            self.root.mkdir(parents=True, exist_ok=True)
            with self.examples_path.open("a", encoding="utf-8") as handle:
                for example in new:
                    handle.write(json.dumps(example.to_json(), ensure_ascii=False) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
        return len(new)

    def adapter_versions(self) -> list[Path]:
        if not self.adapters_dir.is_dir():
            return []
        found = [p for p in self.adapters_dir.iterdir() if p.is_dir() and _VERSION_RE.match(p.name)]
        return sorted(found, key=lambda p: int(p.name[1:]))

    def next_adapter_dir(self) -> Path:
        versions = self.adapter_versions()
        number = int(versions[-1].name[1:]) + 1 if versions else 1
        return self.adapters_dir / f"v{number:03d}"

    def latest_adapter(self) -> Path | None:
        versions = [p for p in self.adapter_versions() if (p / "adapter_config.json").is_file()]
        return versions[-1] if versions else None

    def record_api_model(self, record: dict[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / "api_models.jsonl").open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")


def resolve_adapter(path: str | Path) -> Path:
    """An adapter folder, or a store / ``adapters`` folder (its latest version)."""
    path = Path(path)
    if (path / "adapter_config.json").is_file():
        return path
    store = DialogueStore(path.parent if path.name == "adapters" else path)
    latest = store.latest_adapter()
    if latest is not None:
        return latest
    raise GptaUserError(
        f"assistant.adapter: no LoRA adapter at {path}",
        hint="give a folder holding adapter_config.json (made by `gpta assistant tune`), "
        "or the dialogue store folder to use its latest adapter",
    )
