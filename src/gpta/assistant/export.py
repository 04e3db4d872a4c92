"""Tuning an API TA on the dialogue gradient: OpenAI chat fine-tuning JSONL and jobs.

:func:`write_openai_jsonl` writes the examples in the chat fine-tuning format (one
``{"messages": [system, user, assistant]}`` per line, the assistant turn being the improving
prefix). :func:`submit_finetune` uploads that file and creates a fine-tuning job through the
``openai`` SDK, polls it, and returns the job's final state with the resulting model id.

Many OpenAI-compatible servers (llama.cpp, vLLM, Ollama, ...) serve chat completions but have
no files or fine-tuning endpoints. When the server answers 404/405/501 to the upload or the
job, :class:`FineTuningUnsupported` says so plainly: nothing was tuned, no model id exists.

The upload goes through the same checks as every request the TA is sent
(:func:`check_upload`): each conversation, the improving prefix included, is cleaned as the
privacy channel cleans a request (secrets, then personal details) and checked by the leak
guard against every row its run read (rebuilt from the run's ``config.yaml``); an example
that copies a row, or whose run's data cannot be read to check it, is left out of the file.
What is uploaded is exactly that file; each of its lines is recorded in the store's
``exposure.jsonl`` before it is sent (and each left-out one as ``blocked``). The API key is
read from the environment variable named by the caller and never written anywhere.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpta.assistant.dialogue import DialogueExample
from gpta.chat.base import Message
from gpta.errors import GptaUserError
from gpta.privacy.channel import clean_messages
from gpta.privacy.guard import LeakGuard, LeakReport
from gpta.privacy.ledger import ExposureLedger
from gpta.privacy.redaction import Redactor
from gpta.secrets import register_secret, scrub

#: OpenAI's own minimum number of training examples for a fine-tuning job.
OPENAI_MIN_EXAMPLES = 10
_UNSUPPORTED_STATUS = (404, 405, 501)
_FINAL = ("succeeded", "failed", "cancelled")


class FineTuningUnsupported(GptaUserError):
    """The server has no fine-tuning API (or no files API)."""


def write_openai_jsonl(examples: Sequence[DialogueExample], path: str | Path) -> Path:
    """Write the examples as OpenAI chat fine-tuning JSONL, as the store holds them (nothing
    is sent: ``gpta assistant export``); returns the path."""
    return write_chat_jsonl([e.chat() for e in examples], path)


def write_chat_jsonl(chats: Sequence[list[Message]], path: str | Path) -> Path:
    """One ``{"messages": [...]}`` line per conversation; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for chat in chats:
            handle.write(json.dumps({"messages": chat}, ensure_ascii=False) + "\n")
    return path


@dataclass
class Upload:
    """What a fine-tuning upload may send (:func:`check_upload`)."""

    chats: list[list[Message]] = field(default_factory=list)  # cleaned, in store order
    removed: list[dict[str, int]] = field(default_factory=list)  # per chat: values replaced
    # conversations the guard stopped (cleaned, never sent) with the guard's report
    blocked: list[tuple[list[Message], LeakReport]] = field(default_factory=list)
    unchecked: dict[str, str] = field(default_factory=dict)  # run dir -> why, not uploaded
    skipped: int = 0  # examples of the unchecked runs

    def warnings(self) -> list[str]:
        """One line per reason an example was left out."""
        lines = []
        if self.blocked:
            reports = "; ".join(report.summary() for _chat, report in self.blocked[:3])
            lines.append(
                f"left out {len(self.blocked)} example(s) that copy words of a data row their "
                f"run read ({reports})"
            )
        lines += [
            f"left out the examples of {run}: they cannot be checked against its data ({why})"
            for run, why in self.unchecked.items()
        ]
        return lines


def check_upload(examples: Sequence[DialogueExample]) -> Upload:
    """The examples' conversations as the privacy channel would let them leave: secrets
    and personal details replaced (with the run's ``privacy.redact_names``), then checked by
    the leak guard of the run each came from (:func:`gpta.privacy.policy.rebuild_guard`:
    every row it read, its allowed exemplars). An example that copies a row is blocked; the
    examples of a run whose config or data cannot be read are left out (not sent
    unchecked)."""
    from gpta.privacy.policy import rebuild_guard

    upload = Upload()
    checks: dict[str, tuple[LeakGuard, Redactor] | None] = {}
    for example in examples:
        if example.run not in checks:
            try:
                guard, config = rebuild_guard(example.run)
                checks[example.run] = (guard, Redactor(config.privacy.redact_names))
            except GptaUserError as err:
                checks[example.run] = None
                upload.unchecked[example.run] = err.message
        check = checks[example.run]
        if check is None:
            upload.skipped += 1
            continue
        guard, redactor = check
        chat, removed = clean_messages(example.chat(), redactor)
        report = guard.check(chat)
        if report is not None:
            upload.blocked.append((chat, report))
            continue
        upload.chats.append(chat)
        upload.removed.append(removed)
    return upload


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
    upload: Upload,
    jsonl_path: str | Path,
    *,
    base_model: str,
    base_url: str | None,
    api_key_env: str,
    ledger: ExposureLedger,
    suffix: str | None = "gpta",
    poll_seconds: float = 15.0,
    timeout_seconds: float = 3600.0,
    on_status: Callable[[str], None] | None = None,
    client: Any = None,
) -> dict[str, Any]:
    """Write ``upload``'s conversations to ``jsonl_path``, record each in ``ledger`` (and
    each blocked one as ``blocked``), upload that file, create a fine-tuning job, poll it to
    the end; return its record.

    The record holds ``job_id``, ``status``, ``fine_tuned_model`` (``None`` unless it
    succeeded), ``base_model``, ``base_url``, ``training_file`` and ``error``.
    """
    url = base_url or "https://api.openai.com/v1"
    client = _client(url, api_key_env) if client is None else client
    _require_chats(upload)
    # written here even when the caller wrote it already: what is recorded and sent must be
    # this file, whoever calls
    write_chat_jsonl(upload.chats, jsonl_path)
    _record_upload(upload, ledger, base_model=base_model, file_name=Path(jsonl_path).name)
    say = on_status or (lambda _msg: None)
    file_id = _upload_file(client, url, Path(jsonl_path))
    say(f"uploaded {Path(jsonl_path).name} as {file_id}")
    job = _create_job(client, url, file_id, base_model=base_model, suffix=suffix)
    say(f"fine-tuning job {job.id}: {job.status}")
    job = _poll(client, job, poll_seconds=poll_seconds, timeout_seconds=timeout_seconds, say=say)
    return _job_record(job, base_model=base_model, base_url=url, file_id=file_id, upload=upload)


def _client(url: str, api_key_env: str) -> Any:
    """An OpenAI client for ``url`` with the key in ``api_key_env`` (registered as a
    secret, so that it is scrubbed from every error message)."""
    import openai

    api_key = os.environ.get(api_key_env)
    if not api_key:
        raise GptaUserError(
            f"the environment variable {api_key_env} holds no API key",
            hint=f"export {api_key_env}=... (the key is read from the environment only), "
            "or name another variable with --api-key-env",
        )
    register_secret(api_key)
    return openai.OpenAI(base_url=url, api_key=api_key, max_retries=1, timeout=60.0)


def _require_chats(upload: Upload) -> None:
    """Refuse an upload the checks left empty, saying why each example was left out."""
    if not upload.chats:
        raise GptaUserError(
            "no example may be uploaded: " + " and ".join(upload.warnings() or ["none given"]),
            hint="keep the runs' config.yaml and data files where they were, or tune the "
            "local TA instead (`gpta assistant tune --from RUN_DIR`)",
        )


def _record_upload(
    upload: Upload, ledger: ExposureLedger, *, base_model: str, file_name: str
) -> None:
    """Record, before anything is sent, each blocked conversation as ``blocked`` and each
    one of the file as a request."""
    for chat, report in upload.blocked:
        ledger.record_block(
            backend="openai-fine-tuning",
            model=base_model,
            messages=chat,
            copied_row_ids=report.row_ids,
            reason="verbatim overlap with data rows the example's run read",
            windows=report.windows,
        )
    params = {"purpose": "fine-tune", "file": file_name}
    for chat, removed in zip(upload.chats, upload.removed, strict=True):
        ledger.record_request(
            backend="openai-fine-tuning",
            model=base_model,
            messages=chat,
            row_ids=[],
            params=params,
            removed=removed,
        )


def _upload_file(client: Any, url: str, path: Path) -> str:
    """Upload the training file; its id on the server."""
    import openai

    try:
        with path.open("rb") as handle:
            uploaded = client.files.create(file=handle, purpose="fine-tune")
    except openai.APIStatusError as err:
        if _status(err) in _UNSUPPORTED_STATUS:
            raise _unsupported(url, "POST /files", err) from None
        message = f"uploading the training file to {url} failed: {scrub(str(err))}"
        raise GptaUserError(message) from None
    except openai.APIConnectionError as err:
        raise GptaUserError(
            f"could not reach {url}: {scrub(str(err))}", hint="check --base-url and the network"
        ) from None
    file_id: str = uploaded.id
    return file_id


def _create_job(client: Any, url: str, file_id: str, *, base_model: str, suffix: str | None) -> Any:
    """Create the fine-tuning job on the uploaded file; the job as the server returns it."""
    import openai

    try:
        return client.fine_tuning.jobs.create(
            training_file=file_id, model=base_model, suffix=suffix
        )
    except openai.APIStatusError as err:
        if _status(err) in _UNSUPPORTED_STATUS:
            raise _unsupported(url, "POST /fine_tuning/jobs", err) from None
        message = f"creating the fine-tuning job on {url} failed: {scrub(str(err))}"
        raise GptaUserError(message) from None


def _poll(
    client: Any,
    job: Any,
    *,
    poll_seconds: float,
    timeout_seconds: float,
    say: Callable[[str], None],
) -> Any:
    """The job once it has ended (or when ``timeout_seconds`` have passed), each status
    it went through said."""
    deadline = time.monotonic() + timeout_seconds
    while job.status not in _FINAL and time.monotonic() < deadline:
        time.sleep(poll_seconds)
        job = client.fine_tuning.jobs.retrieve(job.id)
        say(f"fine-tuning job {job.id}: {job.status}")
    return job


def _job_record(
    job: Any, *, base_model: str, base_url: str, file_id: str, upload: Upload
) -> dict[str, Any]:
    """The job's record, as :func:`submit_finetune` returns it and the store keeps it
    (:meth:`gpta.assistant.dialogue.DialogueStore.record_api_model`)."""
    error = getattr(job, "error", None)
    return {
        "job_id": job.id,
        "status": job.status,
        "fine_tuned_model": getattr(job, "fine_tuned_model", None),
        "base_model": base_model,
        "base_url": base_url,
        "training_file": file_id,
        "examples": len(upload.chats),
        "error": (getattr(error, "message", None) or str(error)) if error else None,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
