"""The local backend: any causal LM through transformers (default: bundled SmolLM2)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch

from gpta.bundled import resolve_model_path
from gpta.chat.base import ChatResult, Message, Sampling, Usage
from gpta.chat.structured import OutputSchema
from gpta.modeling.loading import quiet_loading

if TYPE_CHECKING:
    from transformers import BatchEncoding


def _weights(path: str) -> dict[str, str]:
    """``from_pretrained`` arguments: a folder or hub id as is; a ``.gguf`` file (a
    ``fetched:`` model) as its folder plus ``gguf_file`` (transformers de-quantizes it)."""
    if path.endswith(".gguf") and Path(path).is_file():
        return {
            "pretrained_model_name_or_path": str(Path(path).parent),
            "gguf_file": Path(path).name,
        }
    return {"pretrained_model_name_or_path": path}


class LocalChatModel:
    """Samples the K candidates of a round in one ``generate`` call."""

    backend = "local"

    def __init__(self, model_name: str, *, device: str = "cpu") -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.model_name = model_name
        path = resolve_model_path(model_name)
        self.path = str(path)
        with quiet_loading():
            self.tokenizer = AutoTokenizer.from_pretrained(**_weights(self.path))
            self.model = AutoModelForCausalLM.from_pretrained(
                **_weights(self.path), dtype=torch.float32
            )
        self.model.to(device).eval()  # type: ignore[arg-type]  # transformers' @wraps(Module.to) reads as unbound
        self.device = device
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.context_window = int(getattr(self.model.config, "max_position_embeddings", 0) or 2048)
        self.adapter: str | None = None  # a LoRA adapter folder merged into the weights
        self._compiler: Any = None  # xgrammar's compiler for this tokenizer, made once
        self._grammars: dict[str, Any] = {}

    def identity(self) -> dict[str, str]:
        """Cache identity: the resolved weights folder (bundled names carry a file stamp)."""
        identity = {"backend": self.backend, "model": self.model_name, "path": self.path}
        if self.adapter is not None:
            identity["adapter"] = self.adapter
        return identity

    def load_adapter(self, adapter: str | None) -> None:
        """Reload the base weights and merge a peft LoRA adapter into them (``None``: none).

        Merged, generation runs at the base model's speed and the adapter can be swapped
        (a TA tuned during a run) without stacking one adapter on another.
        """
        from peft import PeftModel
        from transformers import AutoModelForCausalLM

        with quiet_loading():
            model = AutoModelForCausalLM.from_pretrained(**_weights(self.path), dtype=torch.float32)
        if adapter is not None:
            model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
        self.model = model.to(self.device).eval()  # type: ignore[arg-type]  # as in __init__
        self.adapter = str(adapter) if adapter is not None else None

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def count_message_tokens(self, messages: list[Message]) -> int:
        return int(self._prompt_ids(messages)["input_ids"].shape[1])

    def _prompt_ids(self, messages: list[Message]) -> dict[str, torch.Tensor]:
        if self.tokenizer.chat_template:
            encoded = cast(  # return_dict=True: a BatchEncoding
                "BatchEncoding[torch.Tensor]",
                self.tokenizer.apply_chat_template(
                    messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
                ),
            )
        else:  # a base model: plain transcript
            text = "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"
            encoded = self.tokenizer(text, return_tensors="pt")
        return {k: v.to(self.device) for k, v in encoded.items()}

    def _grammar(self, schema: OutputSchema) -> Any:
        """The schema compiled by xgrammar for this tokenizer (cached), or ``None`` when
        xgrammar is not installed (the answer is then free text).

        Why xgrammar (checked 2026-11 on Python 3.11, torch 2.13, transformers 5.24): it
        compiles this schema in ~0.02 s (a C++ grammar engine, maintained, the one vLLM and
        SGLang use) and plugs into ``generate`` as a LogitsProcessor; outlines 1.3 works too
        but built its index for the first request in ~80 s on 2 cores; lm-format-enforcer
        0.11 fails to import its transformers integration with transformers 5.
        """
        key = schema.key()
        if key not in self._grammars:
            try:
                import xgrammar
            except ImportError:
                return None
            if self._compiler is None:
                info = xgrammar.TokenizerInfo.from_huggingface(
                    self.tokenizer, vocab_size=int(self.model.config.vocab_size)
                )
                self._compiler = xgrammar.GrammarCompiler(info)
            self._grammars[key] = self._compiler.compile_json_schema(json.dumps(schema.schema))
        return self._grammars[key]

    @torch.inference_mode()
    def chat(
        self,
        messages: list[Message],
        sampling: Sampling,
        *,
        schema: OutputSchema | None = None,
    ) -> ChatResult:
        from transformers import LogitsProcessorList, TemperatureLogitsWarper, TopPLogitsWarper

        start = time.perf_counter()
        inputs = self._prompt_ids(messages)
        prompt_len = inputs["input_ids"].shape[1]
        grammar = self._grammar(schema) if schema is not None else None
        processors = LogitsProcessorList()
        if grammar is not None:
            import xgrammar

            processors.append(xgrammar.contrib.hf.LogitsProcessor(grammar))
        # temperature and top-p after the grammar mask: applied before it, top-p could cut
        # every token the grammar allows (top-k off, as in the other backends)
        processors += [
            TemperatureLogitsWarper(sampling.temperature),
            TopPLogitsWarper(sampling.top_p),
        ]
        # Sampling must not disturb the downstream model's random stream.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(sampling.seed)
            output = self.model.generate(
                **inputs,
                do_sample=True,
                temperature=1.0,
                top_p=1.0,
                top_k=0,
                logits_processor=processors,
                max_new_tokens=sampling.max_new_tokens,
                num_return_sequences=sampling.n,
                pad_token_id=self.tokenizer.pad_token_id,
            )
        completions = output[:, prompt_len:]
        texts = self.tokenizer.batch_decode(completions, skip_special_tokens=True)
        eos = self.tokenizer.eos_token_id
        pad = self.tokenizer.pad_token_id
        generated = int(((completions != pad) & (completions != eos)).sum().item())
        usage = Usage(prompt_tokens=prompt_len * sampling.n, completion_tokens=generated)
        structured = None if schema is None else ("grammar" if grammar is not None else "free_text")
        return ChatResult(
            texts=texts, usage=usage, seconds=time.perf_counter() - start, structured=structured
        )
