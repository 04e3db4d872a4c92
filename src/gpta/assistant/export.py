"""Tuning an API TA on the dialogue gradient: OpenAI chat fine-tuning JSONL and jobs.

:func:`write_openai_jsonl` writes the examples in the chat fine-tuning format (one
``{"messages": [system, user, assistant]}`` per line, the assistant turn being the improving
prefix). :func:`submit_finetune` uploads that file and creates a fine-tuning job through the
``openai`` SDK, polls it, and returns the job's final state with the resulting model id.

Many OpenAI-compatible servers (llama.cpp, vLLM, Ollama, ...) serve chat completions but have
no files or fine-tuning endpoints. When the server answers 404/405/501 to the upload or the
job, :class:`FineTuningUnsupported` says so plainly: nothing was tuned, no model id exists.

The upload sends the same conversations the TA already received (description, label names,
aggregate scores, prefixes); each is recorded in the store's ``exposure.jsonl`` before it is
sent, like every other byte that leaves for an LLM provider. The API key is read from the
environment variable named by the caller and never written anywhere.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from gpta.assistant.dialogue import DialogueExample
from gpta.errors import GptaUserError
from gpta.privacy.ledger import ExposureLedger

#: OpenAI's own minimum number of training examples for a fine-tuning job.
OPENAI_MIN_EXAMPLES = 10
_UNSUPPORTED_STATUS = (404, 405, 501)
_FINAL = ("succeeded", "failed", "cancelled")


class FineTuningUnsupported(GptaUserError):
    """The server has no fine-tuning API (or no files API)."""


def openai_record(example: DialogueExample) -> dict[str, Any]:
    """One line of the chat fine-tuning format."""
    return {"messages": example.chat()}


def write_openai_jsonl(examples: Sequence[DialogueExample], path: str | Path) -> Path:
    """Write the examples as OpenAI chat fine-tuning JSONL; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for example in examples:
            handle.write(json.dumps(openai_record(example), ensure_ascii=False) + "\n")
    return path


def _status(err: Exception) -> int | None:
    return getattr(err, "status_code", None)


def _unsupported(base_url: str, step: str, err: Exception) -> FineTuningUnsupported:
    return FineTuningUnsupported(
        f"the server at {base_url} has no fine-tuning API: {step} answered HTTP {_status(err)}; "
        "nothing was uploaded to a fine-tuning job and no tuned model exists",
        hint="tune the local TA instead (`gpta assistant tune --from RUN_DIR`), or point "
        "--base-url at a provider that offers fine-tuning (e.g. https://api.openai.com/v1)",
    )


def submit_finetune(
    jsonl_path: str | Path,
    *,
    base_model: str,
    base_url: str | None,
    api_key_env: str,
    ledger: ExposureLedger | None = None,
    examples: Sequence[DialogueExample] = (),
    suffix: str | None = "gpta",
    poll_seconds: float = 15.0,
    timeout_seconds: float = 3600.0,
    on_status: Callable[[str], None] | None = None,
    client: Any = None,
) -> dict[str, Any]:
    """Upload ``jsonl_path``, create a fine-tuning job, poll it to the end; return its record.

    The record holds ``job_id``, ``status``, ``fine_tuned_model`` (``None`` unless it
    succeeded), ``base_model``, ``base_url``, ``training_file`` and ``error``.
    """
    import openai

    url = base_url or "https://api.openai.com/v1"
    if client is None:
        api_key = os.environ.get(api_key_env)
        if not api_key:
            raise GptaUserError(
                f"the environment variable {api_key_env} holds no API key",
                hint=f"export {api_key_env}=... (the key is read from the environment only), "
                "or name another variable with --api-key-env",
            )
        client = openai.OpenAI(base_url=url, api_key=api_key, max_retries=1, timeout=60.0)
    if ledger is not None:
        for example in examples:
            ledger.record_request(
                backend="openai-fine-tuning",
                model=base_model,
                messages=example.chat(),
                row_ids=[],
                params={"purpose": "fine-tune", "file": Path(jsonl_path).name},
            )
    say = on_status or (lambda _msg: None)
    try:
        with Path(jsonl_path).open("rb") as handle:
            uploaded = client.files.create(file=handle, purpose="fine-tune")
    except openai.APIStatusError as err:
        if _status(err) in _UNSUPPORTED_STATUS:
            raise _unsupported(url, "POST /files", err) from None
        raise GptaUserError(f"uploading the training file to {url} failed: {err}") from None
    except openai.APIConnectionError as err:
        raise GptaUserError(
            f"could not reach {url}: {err}", hint="check --base-url and the network"
        ) from None
    say(f"uploaded {Path(jsonl_path).name} as {uploaded.id}")
    try:
        job = client.fine_tuning.jobs.create(
            training_file=uploaded.id, model=base_model, suffix=suffix
        )
    except openai.APIStatusError as err:
        if _status(err) in _UNSUPPORTED_STATUS:
            raise _unsupported(url, "POST /fine_tuning/jobs", err) from None
        raise GptaUserError(f"creating the fine-tuning job on {url} failed: {err}") from None
    say(f"fine-tuning job {job.id}: {job.status}")
    deadline = time.monotonic() + timeout_seconds
    while job.status not in _FINAL and time.monotonic() < deadline:
        time.sleep(poll_seconds)
        job = client.fine_tuning.jobs.retrieve(job.id)
        say(f"fine-tuning job {job.id}: {job.status}")
    error = getattr(job, "error", None)
    return {
        "job_id": job.id,
        "status": job.status,
        "fine_tuned_model": getattr(job, "fine_tuned_model", None),
        "base_model": base_model,
        "base_url": url,
        "training_file": uploaded.id,
        "examples": len(examples),
        "error": (getattr(error, "message", None) or str(error)) if error else None,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
