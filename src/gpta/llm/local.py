"""The local backend: any causal LM through transformers (default: bundled SmolLM2)."""

from __future__ import annotations

import time

import torch

from gpta.bundled import resolve_model_path
from gpta.downstream.model import quiet_loading
from gpta.llm.base import ChatResult, Message, Usage


class LocalChatModel:
    """Samples the K candidates of a round in one ``generate`` call."""

    backend = "local"

    def __init__(self, model_name: str, *, device: str = "cpu") -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.model_name = model_name
        path = resolve_model_path(model_name)
        self.path = str(path)
        with quiet_loading():
            self.tokenizer = AutoTokenizer.from_pretrained(path)
            self.model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
        self.model.to(device).eval()
        self.device = device
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.context_window = int(getattr(self.model.config, "max_position_embeddings", 0) or 2048)
        self.adapter: str | None = None  # a LoRA adapter folder merged into the weights

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
            model = AutoModelForCausalLM.from_pretrained(self.path, dtype=torch.float32)
        if adapter is not None:
            model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
        self.model = model.to(self.device).eval()
        self.adapter = str(adapter) if adapter is not None else None

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def count_message_tokens(self, messages: list[Message]) -> int:
        return int(self._prompt_ids(messages)["input_ids"].shape[1])

    def _prompt_ids(self, messages: list[Message]) -> dict[str, torch.Tensor]:
        if self.tokenizer.chat_template:
            encoded = self.tokenizer.apply_chat_template(
                messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
            )
        else:  # a base model: plain transcript
            text = "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"
            encoded = self.tokenizer(text, return_tensors="pt")
        return {k: v.to(self.device) for k, v in encoded.items()}

    @torch.inference_mode()
    def chat(
        self,
        messages: list[Message],
        *,
        n: int,
        temperature: float,
        top_p: float,
        max_new_tokens: int,
        seed: int,
    ) -> ChatResult:
        start = time.perf_counter()
        inputs = self._prompt_ids(messages)
        prompt_len = inputs["input_ids"].shape[1]
        # Sampling must not disturb the downstream model's random stream.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            output = self.model.generate(
                **inputs,
                do_sample=True,
                temperature=temperature,
                top_p=top_p,
                max_new_tokens=max_new_tokens,
                num_return_sequences=n,
                pad_token_id=self.tokenizer.pad_token_id,
            )
        completions = output[:, prompt_len:]
        texts = self.tokenizer.batch_decode(completions, skip_special_tokens=True)
        eos = self.tokenizer.eos_token_id
        pad = self.tokenizer.pad_token_id
        generated = int(((completions != pad) & (completions != eos)).sum().item())
        usage = Usage(prompt_tokens=prompt_len * n, completion_tokens=generated)
        return ChatResult(texts=texts, usage=usage, seconds=time.perf_counter() - start)
