"""What ``gpta assistant export`` and ``gpta assistant tune`` do (the click wiring is
in cli/teaching_assistant.py).

Both read the positive dialogues of the given run directories, add them to the task's
dialogue store (deduplicated) and work on the store's whole example set, so examples collected
by earlier runs of the same task count too.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from gpta import run_files, safe_yaml
from gpta.assistant.dialogue import (
    DialogueStore,
    default_store_dir,
    examples_from_run,
    read_jsonl,
    require_run,
    task_key,
)
from gpta.errors import GptaUserError


def _run_info(run_dir: Path, *, store_given: bool = False) -> dict[str, Any]:
    """Task key, store and TA model of a run (from its history, else its config + manifest)."""
    info: dict[str, Any] = {}
    config_path = run_dir / run_files.CONFIG
    config: dict[str, Any] = {}
    if config_path.is_file():
        config = safe_yaml.load_file(config_path, what="run config") or {}
    info["ta_model"] = ((config or {}).get("assistant") or {}).get("model")
    info["backend"] = ((config or {}).get("assistant") or {}).get("backend")
    for event in read_jsonl(run_dir / run_files.HISTORY):
        if event.get("event") == "dialogue" and event.get("task_key"):
            info.update(key=event["task_key"], store=event.get("store"))
            return info
    # a run from before the dialogue event: rebuild the key from its description and labels
    manifest_path = run_dir / run_files.MODEL_MANIFEST
    if not manifest_path.is_file() or not config:
        if store_given:
            return {**info, "key": None, "store": None}
        raise GptaUserError(
            f"{run_dir}: cannot tell which task this run belongs to (no dialogue event, no "
            "model/gpta.json)",
            hint="pass --store to name the dialogue store folder",
        )
    from gpta.config import GptaConfig

    description = GptaConfig.model_validate(config).description_text()
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    key = task_key(manifest.get("task", "classification"), description, manifest.get("labels", []))
    info.update(key=key, store=str(default_store_dir(run_dir, key)))
    return info


def collect_examples(
    run_dirs: Sequence[str], store_dir: str | None
) -> tuple[DialogueStore, list[Any], dict[str, Any]]:
    """Add the runs' positive dialogues to the store; the store, its examples, run info."""
    if not run_dirs and store_dir is None:
        raise GptaUserError("no runs given", hint="pass --from RUN_DIR (repeatable) or --store")
    for run_dir in run_dirs:
        require_run(Path(run_dir))
    infos = [_run_info(Path(d), store_given=store_dir is not None) for d in run_dirs]
    keys = {i["key"] for i in infos if i["key"]}
    if len(keys) > 1 and store_dir is None:
        raise GptaUserError(
            f"the runs belong to {len(keys)} different tasks ({', '.join(sorted(keys))})",
            hint="tune on runs of one task at a time, or pass --store to mix them on purpose",
        )
    root = store_dir or (infos[0]["store"] if infos else None)
    assert root is not None  # no runs: --store was given; without --store every run has one
    store = DialogueStore(root)
    found = 0
    for run_dir, info in zip(run_dirs, infos, strict=True):
        examples = examples_from_run(run_dir, key=info["key"])
        found += len(examples)
        store.add(examples)
    examples = store.examples()
    summary = {
        "store": str(store.root),
        "runs": len(run_dirs),
        "examples_from_runs": found,
        "examples_in_store": len(examples),
        "ta_model": infos[0]["ta_model"] if infos else None,
        "backend": infos[0]["backend"] if infos else None,
    }
    return store, examples, summary


def export(run_dirs: Sequence[str], store_dir: str | None, output: str) -> dict[str, Any]:
    """``gpta assistant export``: the store's examples as OpenAI chat fine-tuning JSONL."""
    from gpta.assistant.export import write_openai_jsonl

    _store, examples, summary = collect_examples(run_dirs, store_dir)
    path = write_openai_jsonl(examples, output)
    return {**summary, "output": str(path), "lines": len(examples)}


def tune_local(
    run_dirs: Sequence[str],
    store_dir: str | None,
    *,
    base_model: str | None,
    epochs: int,
    learning_rate: float,
    rank: int,
    seed: int,
    device: str,
) -> dict[str, Any]:
    """``gpta assistant tune`` (local): a new LoRA adapter version in the store."""
    from gpta.assistant.tuning import LoraSettings, tune_store

    store, _examples, summary = collect_examples(run_dirs, store_dir)
    model = base_model or summary["ta_model"] or "bundled:smollm2"
    if summary["backend"] not in (None, "local") and base_model is None:
        raise GptaUserError(
            f"the runs used the {summary['backend']} backend; a local LoRA needs a local model",
            hint="pass --base-model (e.g. bundled:smollm2), or use --backend openai",
        )
    settings = LoraSettings(rank=rank, alpha=2 * rank, learning_rate=learning_rate, epochs=epochs)
    # min_examples=0: with none, tune_lora says why (a user error), not a silent None
    result = tune_store(
        store, base_model=model, settings=settings, seed=seed, device=device, min_examples=0
    )
    assert result is not None
    return {
        **summary,
        "adapter": result.adapter_dir,
        "base_model": model,
        "examples": result.examples,
        "steps": result.steps,
        "loss_before": result.loss_before,
        "loss_after": result.loss_after,
        "epoch_losses": result.epoch_losses,
        "seconds": result.seconds,
        "use": f"--set assistant.adapter={result.adapter_dir}",
    }


def tune_openai(
    run_dirs: Sequence[str],
    store_dir: str | None,
    *,
    base_model: str | None,
    submit: bool,
    base_url: str | None,
    api_key_env: str,
    output: str | None,
    poll_seconds: float,
    say: Callable[[str], None],
) -> dict[str, Any]:
    """``gpta assistant tune --backend openai``: write the JSONL; with ``submit``, run a job."""
    from gpta.assistant.export import (
        OPENAI_MIN_EXAMPLES,
        check_upload,
        submit_finetune,
        write_chat_jsonl,
    )
    from gpta.privacy.ledger import ExposureLedger
    from gpta.secrets import register_secret

    register_secret(os.environ.get(api_key_env))  # before any text is cleaned or written
    store, examples, summary = collect_examples(run_dirs, store_dir)
    if not examples:
        raise GptaUserError(
            "no dialogue-gradient examples: no proposal of these runs beat its current prefix",
            hint="collect more runs of the task (more rounds or candidates), then tune again",
        )
    # the file is what --submit would send: cleaned and checked as every TA request is
    upload = check_upload(examples)
    for line in upload.warnings():
        say(f"warning: {line}")
    path = Path(output or store.root / "openai_finetune.jsonl")
    write_chat_jsonl(upload.chats, path)
    lines = len(upload.chats)
    result: dict[str, Any] = {
        **summary,
        "jsonl": str(path),
        "lines": lines,
        "left_out": len(examples) - lines,
    }
    if lines < OPENAI_MIN_EXAMPLES:
        say(
            f"warning: {lines} examples; OpenAI requires at least {OPENAI_MIN_EXAMPLES} "
            "for a fine-tuning job"
        )
    if not submit:
        result["submitted"] = False
        result["next"] = "add --submit (and --base-model) to upload it and start a job"
        return result
    if not base_model:
        raise GptaUserError(
            "--submit needs --base-model: the API model to fine-tune",
            hint="e.g. --base-model gpt-4o-mini-2024-07-18",
        )
    record = submit_finetune(
        upload,
        path,
        base_model=base_model,
        base_url=base_url,
        api_key_env=api_key_env,
        ledger=ExposureLedger(store.root / run_files.EXPOSURE),
        poll_seconds=poll_seconds,
        on_status=say,
    )
    store.record_api_model(record)
    result.update(submitted=True, **record)
    if record["fine_tuned_model"]:
        result["use"] = f"--set assistant.model={record['fine_tuned_model']}"
    return result
