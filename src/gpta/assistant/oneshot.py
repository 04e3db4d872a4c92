"""Requests the TA answers before training (label words, class cards), through privacy.

The rounds loop has its own channel (gpta.teaching_side); the steps that run before it
use :class:`OneShot`: the exposure (leak guard over every row, ledger, exemplars) is built
on the first request and reused, every request goes through :meth:`ExposureChannel.send`,
and a failing TA call never raises: it comes back as an error in the call record.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gpta.errors import GptaUserError

if TYPE_CHECKING:
    from gpta.chat.base import Message
    from gpta.chat.structured import OutputSchema
    from gpta.config import GptaConfig
    from gpta.data import Table
    from gpta.privacy import ExposureChannel
    from gpta.progress import Progress
    from gpta.tasks.classification import ClassificationTask


class OneShot:
    """The TA's channel for the steps before training; built on first use."""

    def __init__(
        self,
        config: GptaConfig,
        tables: dict[str, Table],
        run_dir: str | Path,
        description: str,
        *,
        task: ClassificationTask,
        progress: Progress,
    ) -> None:
        self.config = config
        self.tables = tables
        self.run_dir = Path(run_dir)
        self.description = description
        self.text_column = task.text_column
        self.label_column = task.label_column
        self.progress = progress
        self.label_names = list(task.label_names)  # text the TA is given: allowed by the guard
        self._channel: ExposureChannel | None = None

    def _open(self) -> ExposureChannel:
        if self._channel is None:
            from gpta.chat.usage import UsageMeter
            from gpta.llm import make_chat_model
            from gpta.modeling.device import resolve_device
            from gpta.privacy import build_exposure

            assistant = self.config.assistant
            exposure = build_exposure(
                self.config,
                self.tables,
                self.run_dir,
                text_column=self.text_column,
                label_column=self.label_column,
                description=self.description,
                label_names=self.label_names,
            )
            exposure.announce(self.progress)
            chat_model = make_chat_model(assistant, device=resolve_device(self.config.device))
            meter = UsageMeter(
                assistant.model,
                prices={k: v.model_dump() for k, v in assistant.prices.items()},
                max_cost_usd=assistant.max_cost_usd,
                max_total_tokens=assistant.max_total_tokens,
            )
            self._channel = exposure.channel(chat_model, meter)
        return self._channel

    def send(
        self,
        messages: list[Message],
        *,
        seed: int,
        n: int | None = None,
        max_new_tokens: int | None = None,
        schema: OutputSchema | None = None,
    ) -> tuple[list[str], dict[str, Any]]:
        """The TA's answers to one conversation and what the call did (``ok``, ``error``,
        ``cached``, tokens, seconds). Never raises for a TA failure; a configuration
        mistake (an unknown TA model) is the user's to fix and is raised."""
        from gpta.secrets import scrub

        call: dict[str, Any] = {"ok": False, "error": None}
        started = time.perf_counter()
        try:
            channel = self._open()
            sampling = self.config.assistant.sampling(seed=seed)
            sampling = dataclasses.replace(
                sampling,
                n=n or sampling.n,
                max_new_tokens=max(sampling.max_new_tokens, max_new_tokens or 0),
            )
            result = channel.send(messages, sampling, **({"schema": schema} if schema else {}))
        except GptaUserError:
            raise
        except Exception as err:  # a TA failure must never end the run by itself
            call.update(error=scrub(f"{type(err).__name__}: {err}"))
            call["seconds"] = round(time.perf_counter() - started, 3)
            return [], call
        call.update(
            ok=True,
            structured=result.structured,
            cached=result.cached,
            completions=len(result.texts),
            prompt_tokens=result.usage.prompt_tokens,
            completion_tokens=result.usage.completion_tokens,
            seconds=round(time.perf_counter() - started, 3),
        )
        return list(result.texts), call
