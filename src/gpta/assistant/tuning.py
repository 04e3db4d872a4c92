"""Tuning the local TA on the dialogue gradient: LoRA supervised fine-tuning.

Each example is the conversation the TA saw at a round followed by, as the assistant's reply,
a proposal that beat the current prefix (see :mod:`gpta.assistant.dialogue`). The loss is the
cross-entropy of the reply tokens only (the conversation is context, label -100), so the TA
learns to *answer* such conversations with improving prefixes, not to reproduce the prompts.

A plain torch loop (AdamW, batch of one conversation, fixed learning rate): the example sets
are small (tens of dialogues), and a loop this size is easier to keep exact than a Trainer.
Random numbers are forked so a tuning inside a run does not disturb the downstream model's.

An adapter folder holds peft's ``adapter_config.json`` + ``adapter_model.safetensors`` and
``gpta_adapter.json`` (base model, examples, losses before/after, per-step losses, versions).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch

from gpta import run_files
from gpta.assistant.dialogue import (
    DialogueExample,
    DialogueStore,
    default_store_dir,
    examples_from_run,
    improvement_rates,
    resolve_adapter,
    task_key,
)
from gpta.chat.base import Message
from gpta.errors import GptaUserError
from gpta.modeling.loading import quiet_loading

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from gpta.assistant.history import History
    from gpta.config import AssistantConfig, GptaConfig

ADAPTER_META = "gpta_adapter.json"


@dataclass(frozen=True)
class LoraSettings:
    """LoRA and optimizer settings of one tuning."""

    rank: int = 8
    alpha: int = 16
    dropout: float = 0.0
    learning_rate: float = 5e-4
    epochs: int = 3
    max_length: int = 1024
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")


@dataclass
class TuneResult:
    """What one tuning did, saved next to the adapter as ``gpta_adapter.json``."""

    adapter_dir: str
    base_model: str
    examples: int
    steps: int
    loss_before: float
    loss_after: float
    epoch_losses: list[float] = field(default_factory=list)
    step_losses: list[float] = field(default_factory=list)
    seconds: float = 0.0
    settings: dict[str, Any] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# Encoding: the conversation is context, the reply is the target
# --------------------------------------------------------------------------------------------


def _prompt_and_full(
    tokenizer: PreTrainedTokenizerBase, messages: list[Message], target: str
) -> tuple[str, str]:
    if tokenizer.chat_template:
        # tokenize=False: the rendered text (the method's type covers every form it returns)
        prompt = cast(
            str,
            tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False),
        )
        full = cast(
            str,
            tokenizer.apply_chat_template(
                [*messages, {"role": "assistant", "content": target}], tokenize=False
            ),
        )
        if full.startswith(prompt):
            return prompt, full
        # a template that re-renders earlier turns differently: reply right after the prompt
        return prompt, prompt + target + (tokenizer.eos_token or "")
    # a base model: the same plain transcript as LocalChatModel uses
    prompt = "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"
    return prompt, prompt + " " + target + (tokenizer.eos_token or "")


def encode_example(
    tokenizer: PreTrainedTokenizerBase,
    messages: list[Message],
    target: str,
    *,
    max_length: int = 1024,
) -> tuple[list[int], list[int]]:
    """``(input_ids, labels)``: labels are -100 on the conversation, the ids on the reply.

    Over-long conversations lose their oldest tokens (the left), never the reply.
    """
    prompt, full = _prompt_and_full(tokenizer, messages, target)
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    reply_ids = tokenizer(full[len(prompt) :], add_special_tokens=False)["input_ids"]
    if not reply_ids:
        raise ValueError("an example has an empty target")
    ids = prompt_ids + reply_ids
    labels = [-100] * len(prompt_ids) + list(reply_ids)
    if len(ids) > max_length:
        ids, labels = ids[-max_length:], labels[-max_length:]
    return ids, labels


def _loss(model: torch.nn.Module, ids: list[int], labels: list[int], device: str) -> torch.Tensor:
    input_ids = torch.tensor([ids], device=device)
    label_ids = torch.tensor([labels], device=device)
    loss: torch.Tensor = model(input_ids=input_ids, labels=label_ids).loss
    return loss


@torch.no_grad()
def target_loss(
    model: torch.nn.Module, encoded: Sequence[tuple[list[int], list[int]]], device: str
) -> float:
    """Mean per-example cross-entropy of the target tokens (eval mode)."""
    was_training = model.training
    model.eval()
    losses = [_loss(model, ids, labels, device).item() for ids, labels in encoded]
    model.train(was_training)
    return sum(losses) / len(losses)


# --------------------------------------------------------------------------------------------
# LoRA supervised fine-tuning
# --------------------------------------------------------------------------------------------


def _load_base(model_name: str, device: str) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from gpta.bundled import resolve_model_path

    path = resolve_model_path(model_name)
    with quiet_loading():
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
        model = model.to(device)  # type: ignore[arg-type]  # transformers' @wraps(Module.to) reads as unbound
    return model, tokenizer


def tune_lora(
    examples: Sequence[DialogueExample],
    *,
    base_model: str,
    out_dir: str | Path,
    settings: LoraSettings | None = None,
    seed: int = 0,
    device: str = "cpu",
    model: Any = None,
    tokenizer: PreTrainedTokenizerBase | None = None,
) -> TuneResult:
    """Train a LoRA adapter on ``examples`` (target tokens only) and save it in ``out_dir``.

    ``model``/``tokenizer`` may be given (a causal LM already loaded, e.g. in tests); else the
    base model is loaded from ``base_model`` (a bundled name, hub id or folder).
    """
    from peft import LoraConfig, get_peft_model

    settings = settings or LoraSettings()
    if not examples:
        raise GptaUserError(
            "no dialogue-gradient examples to tune on: no proposal of these runs beat the "
            "prefix it was screened against",
            hint="collect more runs of the task (more rounds or candidates), then tune again",
        )
    started = time.perf_counter()
    if model is None or tokenizer is None:
        model, tokenizer = _load_base(base_model, device)
    encoded = [
        encode_example(tokenizer, e.messages, e.target, max_length=settings.max_length)
        for e in examples
    ]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        lora = LoraConfig(
            r=settings.rank,
            lora_alpha=settings.alpha,
            lora_dropout=settings.dropout,
            target_modules=list(settings.target_modules),
            task_type="CAUSAL_LM",
        )
        peft_model = get_peft_model(model, lora)
        loss_before = target_loss(peft_model, encoded, device)
        optimizer = torch.optim.AdamW(
            [p for p in peft_model.parameters() if p.requires_grad], lr=settings.learning_rate
        )
        order = list(range(len(encoded)))
        rng = random.Random(seed)
        step_losses: list[float] = []
        epoch_losses: list[float] = []
        peft_model.train()
        for _ in range(settings.epochs):
            rng.shuffle(order)
            epoch = []
            for index in order:
                loss = _loss(peft_model, *encoded[index], device)
                loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                value = loss.item()
                step_losses.append(round(value, 5))
                epoch.append(value)
            epoch_losses.append(round(sum(epoch) / len(epoch), 5))
        loss_after = target_loss(peft_model, encoded, device)

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    peft_model.save_pretrained(str(out_dir))
    result = TuneResult(
        adapter_dir=str(out_dir),
        base_model=base_model,
        examples=len(examples),
        steps=len(step_losses),
        loss_before=round(loss_before, 5),
        loss_after=round(loss_after, 5),
        epoch_losses=epoch_losses,
        step_losses=step_losses,
        seconds=round(time.perf_counter() - started, 2),
        settings={**asdict(settings), "target_modules": list(settings.target_modules)},
        sources=sorted({e.run for e in examples}),
    )
    _write_meta(out_dir, result)
    return result


def _write_meta(out_dir: Path, result: TuneResult) -> None:
    import peft
    import transformers

    meta = {
        **asdict(result),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "versions": {"peft": peft.__version__, "transformers": transformers.__version__},
    }
    (out_dir / ADAPTER_META).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


def adapter_meta(adapter_dir: str | Path) -> dict[str, Any]:
    """``gpta_adapter.json`` of an adapter folder ({} for a foreign peft adapter)."""
    path = Path(adapter_dir) / ADAPTER_META
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def check_adapter_base(adapter_dir: str | Path, model_name: str) -> None:
    """Refuse an adapter trained on another base model than the TA it is loaded into."""
    base = adapter_meta(adapter_dir).get("base_model")
    if base is not None and base != model_name:
        raise GptaUserError(
            f"assistant.adapter {adapter_dir} was trained on {base}, not on {model_name}",
            hint=f"set assistant.model to {base}, or tune an adapter for {model_name}",
        )


# --------------------------------------------------------------------------------------------
# From run directories to a versioned adapter in the store
# --------------------------------------------------------------------------------------------


def collect(run_dirs: Sequence[str | Path], store: DialogueStore | None) -> list[DialogueExample]:
    """Examples of the runs, added to the store (deduplicated); returns the store's whole set
    (or, without a store, the runs' own examples)."""
    examples: list[DialogueExample] = []
    for run_dir in run_dirs:
        examples.extend(examples_from_run(run_dir))
    if store is None:
        unique = {e.key: e for e in examples}
        return list(unique.values())
    store.add(examples)
    return store.examples()


def tune_store(
    store: DialogueStore,
    *,
    base_model: str,
    settings: LoraSettings | None = None,
    seed: int = 0,
    device: str = "cpu",
    min_examples: int = 1,
) -> TuneResult | None:
    """Tune a new adapter version on every example of the store (``None``: too few)."""
    examples = store.examples()
    if len(examples) < min_examples:
        return None
    return tune_lora(
        examples,
        base_model=base_model,
        out_dir=store.next_adapter_dir(),
        settings=settings,
        seed=seed,
        device=device,
    )


def settings_from_config(config: AssistantConfig) -> LoraSettings:
    """The LoRA settings named in ``assistant.*``."""
    return LoraSettings(
        rank=config.lora_rank,
        alpha=2 * config.lora_rank,
        learning_rate=config.tune_learning_rate,
        epochs=config.tune_epochs,
    )


class DialogueGradient:
    """The dialogue gradient inside a run, around the synergy loop.

    - at the start: names the task's store, loads ``assistant.adapter`` into the local TA;
    - before the TA proposes for round r+1 (after round r, r+1 a multiple of
      ``assistant.tune_every``, another round to come): adds this run's positive dialogues to
      the store, LoRA-tunes a new adapter version on the store and loads it into the TA;
    - after each screening: logs the round's improvement rate (``ta_improvement``);
    - at the end: adds the run's positive dialogues to the store and returns the run's rates.

    ``assistant.frozen`` turns tuning off. A tuning failure is logged; the run goes on.
    """

    def __init__(
        self,
        config: GptaConfig,
        *,
        chat_model: Any,
        run_dir: str | Path,
        family: str,
        description: str,
        label_names: Sequence[str],
        history: History,
        device: str = "cpu",
    ) -> None:
        self.config = config.assistant
        self.chat_model = chat_model
        self.run_dir = Path(run_dir)
        self.rounds = config.training.rounds
        self.seed = config.seed
        self.device = device
        self.history = history
        self.key = task_key(family, description, label_names)
        root = self.config.dialogue_store or default_store_dir(config.output_dir, self.key)
        self.store = DialogueStore(root)
        self.adapter: str | None = None
        if self.config.adapter is not None:
            if not hasattr(chat_model, "load_adapter"):
                raise GptaUserError(
                    f"assistant.adapter needs the local backend, not {self.config.backend!r}",
                    hint="an API model tuned by `gpta assistant tune --backend openai --submit` "
                    "is used by its model id: set assistant.model to it",
                )
            adapter = resolve_adapter(self.config.adapter)
            check_adapter_base(adapter, self.config.model)
            chat_model.load_adapter(str(adapter))
            self.adapter = str(adapter)
        self.tunes = (
            not self.config.frozen
            and self.config.tune_every > 0
            and hasattr(chat_model, "load_adapter")
        )
        history.log(
            "dialogue",
            task_key=self.key,
            store=str(self.store.root),
            adapter=self.adapter,
            frozen=self.config.frozen,
            tune_every=self.config.tune_every if self.tunes else 0,
        )

    def due(self, round_index: int) -> bool:
        """After round r (0-based) when r+1 is a multiple of T, and another round follows."""
        every = self.config.tune_every
        return self.tunes and (round_index + 1) % every == 0 and round_index < self.rounds - 1

    def before_proposals(self, round_index: int) -> TuneResult | None:
        """Tune when due; a failure is logged and the run goes on with the current TA."""
        if not self.due(round_index):
            return None
        try:
            self.store.add(examples_from_run(self.run_dir, key=self.key))
            result = tune_store(
                self.store,
                base_model=self.config.model,
                settings=settings_from_config(self.config),
                seed=self.seed + round_index,
                device=self.device,
                min_examples=self.config.tune_min_examples,
            )
            if result is not None:
                self.chat_model.load_adapter(result.adapter_dir)
        except Exception as err:  # tuning the TA must never end the training run
            self.history.log("ta_tune", round=round_index, error=f"{type(err).__name__}: {err}")
            return None
        if result is None:
            self.history.log(
                "ta_tune",
                round=round_index,
                skipped=f"fewer than {self.config.tune_min_examples} dialogue-gradient examples",
                examples=len(self.store.examples()),
            )
            return None
        self.adapter = result.adapter_dir
        self.history.log(
            "ta_tune",
            round=round_index,
            adapter=result.adapter_dir,
            examples=result.examples,
            loss_before=result.loss_before,
            loss_after=result.loss_after,
            seconds=result.seconds,
        )
        return result

    def _events(self) -> list[dict[str, Any]]:
        path = self.run_dir / run_files.HISTORY
        if not path.is_file():
            return []
        return [json.loads(line) for line in path.open(encoding="utf-8") if line.strip()]

    def after_proposals(self, proposal_round: int) -> dict[str, Any] | None:
        """Log the improvement rate of the proposals screened for ``proposal_round``."""
        rates = improvement_rates(self._events())
        found = next((r for r in rates["rounds"] if r["round"] == proposal_round), None)
        if found is not None:
            self.history.log("ta_improvement", adapter=self.adapter, **found)
        return found

    def finish(self) -> dict[str, Any]:
        """Store the run's positive dialogues; the run's improvement rates (for metrics)."""
        try:
            examples = examples_from_run(self.run_dir, key=self.key)
            added = self.store.add(examples)
        except Exception as err:  # e.g. a read-only store: it must not fail a finished run
            self.history.log("dialogue_store_error", error=f"{type(err).__name__}: {err}")
            examples, added = [], 0
        rates = improvement_rates(self._events())
        summary = {
            "improvement_rate": rates["improvement_rate"],
            "validity_rate": rates["validity_rate"],
            "proposals": rates["proposals"],
            "improved": rates["improved"],
            "per_round": {r["round"]: r["improvement_rate"] for r in rates["rounds"]},
            "examples": len(examples),
            "examples_new_in_store": added,
            "store": str(self.store.root),
            "adapter": self.adapter,
        }
        self.history.log("ta_improvement_run", **summary)
        return summary
