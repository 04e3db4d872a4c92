"""The one run configuration: typed, validated once.

The CLI flags, the Python API and YAML/TOML config files all produce a
:class:`GptaConfig`. Unknown keys are errors (a typo must not be silently
ignored), and every validation error names the option (``training.rounds``)
and the file it came from.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast, get_args

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo

from gpta import safe_yaml
from gpta.chat.base import count_tokens_approx
from gpta.data import DataFormat
from gpta.errors import GptaUserError
from gpta.limits import (
    CONFIG_BYTES,
    DESCRIPTION_BYTES_PER_TOKEN,
    DESCRIPTION_TOKENS,
    read_file_bounded,
)

if TYPE_CHECKING:
    from gpta.chat.base import Sampling

# the task families (``task:``); gpta.tasks.TASKS maps each to the class implementing it
TaskName = Literal["classification", "qa", "multiple_choice", "summarization"]
BUNDLED_ENCODER = "bundled:minilm"
BUNDLED_TA = "bundled:smollm2"
# The Trainer's logging integrations (transformers.integrations), and "all" / "none".
REPORT_TO_NAMES = (
    "none", "all", "tensorboard", "mlflow", "wandb", "comet_ml", "neptune", "clearml",
    "dvclive", "azure_ml", "codecarbon", "dagshub", "flyte", "swanlab", "trackio", "kubeflow",
)  # fmt: skip


# Upper bounds of the counts: far above any sane run, low enough that a typo (an extra
# zero run, 1e20) or a platform-overflowing integer is an error naming the bound, not a
# traceback or a run that never ends.
MAX_ROWS = 100_000_000
MAX_SEED = 2**32 - 1  # numpy's seeds

# The choices that other modules and commands offer too: named once, here (the input
# formats in gpta.data, which reads them).
Device = Literal["auto", "cpu", "cuda", "mps"]
DEVICES: tuple[str, ...] = get_args(Device)
# The data options that name files: relative to a config file's folder when read from one
DATA_PATH_KEYS = ("train", "dev", "test", "description_file")


class _Section(BaseModel):
    # inf / nan are never a sane learning rate, price or timeout
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class DataConfig(_Section):
    """Where the data is and how to split and sample it."""

    train: str | None = Field(
        None,
        description="Training data: CSV/TSV/JSONL/Parquet file, "
        "a datasets save_to_disk folder, or a hub dataset name.",
    )
    dev: str | None = Field(None, description="Dev (validation) data; split from train if absent.")
    test: str | None = Field(None, description="Test data; split from train if absent.")
    format: DataFormat = Field(
        "auto",
        description="Input format. auto: from the file extension; a folder is a datasets "
        "folder, a name that is not an existing path a hub dataset.",
    )
    text_column: str | None = Field(
        None,
        description="What the model reads: the text (classification), document "
        "(summarization), context (QA) or article (multiple choice). Default per task: "
        "text, document, context, article.",
    )
    label_column: str | None = Field(
        None,
        description="What it must produce: the label (classification), summary, answers "
        "(QA: {text: [...], answer_start: [...]}) or answer letter (multiple choice). Default "
        "per task: label, summary, answers, answer.",
    )
    question_column: str = Field("question", description="QA and multiple choice: the question.")
    options_column: str = Field("options", description="Multiple choice: the list of options.")
    description: str | None = Field(None, description="What the data is: the TA reads this.")
    description_file: str | None = Field(None, description="A file holding the description.")
    train_size: int | float | None = Field(
        None, description="Low-resource sampling: a row count (int) or a fraction in (0, 1]."
    )
    dev_fraction: float = Field(
        0.15, gt=0, lt=1, description="Share of train split off as dev when dev is absent."
    )
    test_fraction: float = Field(
        0.15, gt=0, lt=1, description="Share of train split off as test when test is absent."
    )
    domain: str | None = Field(
        None,
        description="A domain tag for the prefix library (e.g. 'sentiment', 'reviews'); "
        "default: the task family.",
    )

    @field_validator("train_size", mode="before")
    @classmethod
    def _check_train_size(cls, size: Any) -> Any:
        if isinstance(size, bool):
            raise ValueError("must be a row count or a fraction, not a boolean")
        if isinstance(size, float) and not 0 < size <= 1:
            raise ValueError("as a fraction it must be in (0, 1]; use an int for a row count")
        if isinstance(size, int) and size <= 0:
            raise ValueError("as a row count it must be positive")
        if isinstance(size, int) and size > MAX_ROWS:
            raise ValueError(f"as a row count it must be at most {MAX_ROWS:,}")
        return size

    @model_validator(mode="after")
    def _check_description(self) -> DataConfig:
        if self.description is not None and self.description_file is not None:
            raise ValueError("give data.description or data.description_file, not both")
        return self


class ModelConfig(_Section):
    """The downstream model that is fine-tuned."""

    name_or_path: str | None = Field(
        None,
        description=f"HF model id or local folder. Default: '{BUNDLED_ENCODER}' "
        f"(all-MiniLM-L6-v2) for classification, QA and multiple choice; '{BUNDLED_TA}' "
        "(SmolLM2-135M-Instruct, decoder-only) for summarization.",
    )
    max_length: int = Field(128, ge=16, le=8192, description="Max input tokens, prefix included.")
    doc_stride: int = Field(
        64, ge=8, le=4096, description="QA: overlap between windows of long contexts."
    )
    max_target_length: int = Field(
        64, ge=4, le=8192, description="Summarization: max summary tokens in training."
    )
    max_new_tokens: int = Field(64, ge=1, le=4096, description="Summarization: generated tokens.")
    num_beams: int = Field(1, ge=1, le=64, description="Summarization: beams at generation.")
    head: Literal["sequence", "lm-verbalizer", "cloze"] = Field(
        "sequence",
        description="Classification: how the model scores a class. sequence: a new "
        "classification head on the encoder (AutoModelForSequenceClassification). "
        "lm-verbalizer: a causal LM scores each label's words after the prefix and the text "
        f"(default model '{BUNDLED_TA}'). cloze: a masked LM scores the label words at a "
        "mask slot of a template (pass a real MLM checkpoint, e.g. roberta-base).",
    )
    label_words: dict[str, str] | None = Field(
        None,
        description="lm-verbalizer/cloze: the word(s) the model says for each label, "
        "{label: words}; default: the label names, or words the TA proposes for opaque "
        "labels (see propose_label_words). Words given here always win.",
    )
    propose_label_words: Literal["auto", "always", "never"] = Field(
        "auto",
        description="lm-verbalizer/cloze: let the TA propose one word per label from the "
        "description before training, screened zero-shot on dev. auto: when a label without "
        "a word in label_words is opaque (digits, ids, codes: see docs/heads.md); always: for "
        "every label without a given word; never: use the label names (numeric ones are an "
        "error).",
    )

    @field_validator("label_words", mode="before")
    @classmethod
    def _label_words_keys(cls, words: Any) -> Any:
        # YAML reads `label_words: {0: terrible}` with int keys; labels compare as strings
        if isinstance(words, dict):
            return {str(k): v for k, v in words.items()}
        return words

    def resolved_name(self, task: str) -> str:
        """The model to load for ``task`` when none was named."""
        if self.name_or_path:
            return self.name_or_path
        if task == "summarization" or self.head == "lm-verbalizer":
            return BUNDLED_TA
        return BUNDLED_ENCODER


# The default budget (training.min_steps / min_epochs): how they were chosen is in
# docs/never-worse.md (dev curves of plain fine-tuning, never the test split).
MIN_STEPS = 100
MIN_EPOCHS = 3.0


class TrainingConfig(_Section):
    """The downstream training: rounds of ordinary fine-tuning."""

    rounds: int = Field(
        5, ge=1, le=1000, description="Synergy rounds; the TA may change the prefix between rounds."
    )
    epochs_per_round: int | None = Field(
        None,
        ge=1,
        le=1000,
        description="If set, a round is this many passes over the training rows. With neither "
        "this nor steps_per_round set, the budget is the default rule: "
        "max(min_steps, min_epochs epochs) optimizer steps, split evenly into the rounds.",
    )
    steps_per_round: int | None = Field(
        None,
        ge=1,
        le=1_000_000,
        description="If set, a round is this many optimizer steps (overrides the default rule).",
    )
    min_steps: int = Field(
        MIN_STEPS,
        ge=1,
        le=1_000_000,
        description="Default budget rule: at least this many optimizer steps in all.",
    )
    min_epochs: float = Field(
        MIN_EPOCHS,
        gt=0,
        le=1000,
        description="Default budget rule: at least this many passes over the training rows.",
    )
    patience: int = Field(
        2,
        ge=0,
        le=1000,
        description="Early stopping: end the run after this many rounds in a row without a "
        "better dev score (0: never stop early). The best round's model is the one saved.",
    )
    empty_prefix_share: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Once the loop adopts a prefix, this share of the training batches (drawn "
        "per batch) still trains with no prefix, so the model keeps working without one and "
        "the final prefix-or-empty choice on dev stays fair (0: every batch gets the prefix). "
        "With augment_prefixes the pool already holds the empty prefix: this is not applied.",
    )
    learning_rate: float = Field(
        1e-4,
        gt=0,
        le=10,
        description="Peak learning rate (AdamW, linear warm-up and decay over the budget).",
    )
    batch_size: int = Field(16, ge=1, le=4096, description="Training batch size.")
    eval_batch_size: int = Field(
        64, ge=1, le=4096, description="Batch size for scoring dev, test and screening rows."
    )
    weight_decay: float = Field(0.01, ge=0, le=10, description="AdamW weight decay.")
    warmup_ratio: float = Field(
        0.06,
        ge=0,
        lt=1,
        description="Share of all training steps (every round) over which the learning rate "
        "rises linearly to its peak.",
    )
    gradient_accumulation_steps: int = Field(
        1, ge=1, le=1024, description="Batches per optimizer step."
    )
    mixed_precision: Literal["no", "fp16", "bf16"] = Field(
        "no",
        description="Mixed-precision training through the Trainer/Accelerate autocast: fp16 "
        "(CUDA; loss scaling) or bf16 (Ampere+ GPUs, recent CPUs). Evaluation and screening "
        "run in the weights' own precision.",
    )
    augment_prefixes: int = Field(
        0,
        ge=0,
        le=16,
        description="Classification: prefix variety as augmentation. Train each row with a "
        "prefix drawn from the top-M screened prefixes of the run so far and the empty "
        "prefix (M = this value; 0 = off, every row gets the round's prefix).",
    )
    augment_predict: Literal["final", "mean"] = Field(
        "final",
        description="With augment_prefixes: predict with the final prefix, or average the "
        "class probabilities over the top-M prefixes.",
    )
    report_to: list[str] = Field(
        default_factory=lambda: ["none"],
        description="The Trainer's logging integrations (e.g. tensorboard, mlflow; all: every "
        "one installed; none: nowhere). Logs go to output_dir/logs.",
    )

    @field_validator("report_to")
    @classmethod
    def _check_report_to(cls, names: list[str]) -> list[str]:
        unknown = [n for n in names if n not in REPORT_TO_NAMES]
        if unknown:
            raise ValueError(
                f"unknown integration(s) {', '.join(unknown)}; known: {', '.join(REPORT_TO_NAMES)}"
            )
        return names or ["none"]

    keep_checkpoints: bool = Field(
        False, description="Keep the round checkpoints (for --resume) after a run finishes."
    )


class PriceConfig(_Section):
    """A model's price in dollars per million tokens."""

    input: float = Field(ge=0, le=1_000_000, description="Dollars per million prompt tokens.")
    output: float = Field(ge=0, le=1_000_000, description="Dollars per million completion tokens.")


class AssistantConfig(_Section):
    """The teaching assistant (TA): the LLM that writes prefixes."""

    backend: Literal["local", "llamacpp", "openai"] = Field(
        "local",
        description="local: a causal LM run here with transformers; llamacpp: a GGUF file "
        "(or bundled:smollm2) run here by llama-cpp-python (pip install 'gpta[llamacpp]'); "
        "openai: any OpenAI-compatible chat-completions server (OpenAI, Azure, vLLM, Ollama, "
        "llama.cpp, ...).",
    )
    model: str = Field(
        BUNDLED_TA,
        description="Causal LM id or folder, or "
        f"'{BUNDLED_TA}' (SmolLM2-135M-Instruct GGUF from its wheel).",
    )
    threads: int | None = Field(
        None,
        ge=1,
        le=1024,
        description="llamacpp backend: CPU threads (default: the physical cores this process "
        "may use, at most 8).",
    )
    structured_output: bool = Field(
        True,
        description="Ask for the TA's answer as JSON under a schema: a grammar for local "
        "backends (llama.cpp's; xgrammar for transformers), response_format for servers "
        "(the form each server honours is learned). Off: the prompt still asks for JSON, "
        "nothing enforces it.",
    )
    candidates: int = Field(4, ge=1, le=32, description="K proposals per round.")
    temperature: float = Field(
        0.5,
        gt=0,
        le=2,
        description="TA sampling temperature. 0.5: the bundled 135M TA writes usable "
        "instructions far more often than at 0.8 (docs/teaching-assistant.md).",
    )
    top_p: float = Field(0.95, gt=0, le=1, description="TA nucleus sampling (top-p).")
    max_new_tokens: int = Field(
        64, ge=8, le=1024, description="Tokens the TA may write per completion."
    )
    max_prefix_tokens: int = Field(
        48, ge=4, le=4096, description="Cap on prefix length in downstream tokens."
    )
    history_top_m: int = Field(5, ge=1, le=100, description="Scored prefixes shown to the TA.")
    warm_start: str | None = Field(
        None,
        description="Round-0 prefix transferred from a prefix library entry id (`gpta prefixes "
        "list`) or a finished run directory, instead of the TA's round-0 proposal.",
    )
    library: bool = Field(
        True,
        description="Add the run's best prefix to the local prefix library when it finishes.",
    )
    initial: Literal["first", "empty", "static"] = Field(
        "first",
        description="Round-0 prefix: the TA's first valid proposal, none, or "
        "assistant.static_prefix (a fixed human-written instruction).",
    )
    static_prefix: str | None = Field(
        None, description="assistant.initial=static: the round-0 prefix, used as written."
    )
    fixed_prefix: bool = Field(
        False,
        description="Keep the round-0 prefix for every round: no TA proposals or screening "
        "after round 0 (benchmark baselines). With initial empty/static or a warm start the "
        "TA is then not loaded at all.",
    )
    background: bool | None = Field(
        None,
        description="Ask the TA in a background thread while a round trains: the "
        "description-only request is answered during the warm-up round, and the "
        "conversation of round boundary r during round r+1 (its proposals are screened at "
        "boundary r+1: one round of lag). Hides the TA's latency. Default (null): on for the "
        "openai backend, whose compute is on another machine; off for local backends, which "
        "would compete with training for the same cores.",
    )
    warmup_rounds: int = Field(
        1,
        ge=0,
        le=1000,
        description="The loop's first rounds train with no prefix, so the model learns the "
        "task before any prefix exists; the TA's first proposals are screened against the "
        "empty prefix at the end of the warm-up (0: train round 0 with the TA's first "
        "proposal, the paper's order). Not applied with fixed_prefix.",
    )
    frozen: bool = Field(
        False,
        description="Ablation: freeze the TA. Every round it gets the round-0 conversation "
        "(description only: no scores, no feedback) and it is never tuned (tune_every is "
        "ignored); its proposals are still screened, so the improvement rate stays comparable.",
    )
    adapter: str | None = Field(
        None,
        description="Local TA: a LoRA adapter folder made by `gpta assistant tune`, or a "
        "dialogue store folder (its latest adapter version).",
    )
    dialogue_store: str | None = Field(
        None,
        description="Folder of this task's dialogue-gradient examples and adapters, kept "
        "across runs. Default: <parent of output_dir>/dialogue/<task key>.",
    )
    tune_every: int = Field(
        4,
        ge=0,
        le=1000,
        description="Local TA: LoRA-tune it on the dialogue-gradient examples after every T "
        "rounds and use the new adapter for the rounds that follow (0: never). Runs of at most "
        "T rounds never tune.",
    )
    tune_min_examples: int = Field(
        4,
        ge=1,
        le=MAX_ROWS,
        description="Tune only when the store holds at least this many examples.",
    )
    tune_epochs: int = Field(3, ge=1, le=1000, description="Passes over the examples per tuning.")
    tune_learning_rate: float = Field(5e-4, gt=0, le=1, description="LoRA learning rate (AdamW).")
    lora_rank: int = Field(8, ge=1, le=1024, description="LoRA rank of the TA adapter.")
    # --- the openai backend ------------------------------------------------------------------
    base_url: str | None = Field(
        None,
        description="openai backend: the server's base URL, e.g. http://127.0.0.1:8000/v1 "
        "(default: OpenAI's API).",
    )
    api_key_env: str = Field(
        "OPENAI_API_KEY",
        description="Name of the environment variable holding the API key (never the key).",
    )
    extra_headers: dict[str, str] = Field(
        default_factory=dict,
        description="Extra HTTP headers; a value 'env:NAME' is read from the environment.",
    )
    request_timeout: float = Field(60.0, gt=0, le=86_400, description="Seconds per HTTP request.")
    max_retries: int = Field(
        5, ge=0, le=20, description="Retries on 429/5xx/timeouts/connection errors."
    )
    retry_backoff: float = Field(
        1.0, gt=0, le=3600, description="Base of the exponential backoff between retries, seconds."
    )
    retry_max_wait: float = Field(
        60.0,
        gt=0,
        le=86_400,
        description="Longest wait between retries (Retry-After is capped to it).",
    )
    max_in_flight: int = Field(4, ge=1, le=256, description="Most TA requests in flight at once.")
    token_param: Literal["max_tokens", "max_completion_tokens"] = Field(
        "max_tokens",
        description="Name of the completion-length parameter (newer OpenAI models: "
        "max_completion_tokens).",
    )
    context_window: int | None = Field(
        None,
        ge=256,
        le=100_000_000,
        description="The TA's context window in tokens (default: the local model's; 8192 "
        "for the openai backend).",
    )
    history_recent: int = Field(
        2,
        ge=0,
        le=100,
        description="Recent rounds' prefixes always shown to the TA besides the top M.",
    )
    # --- cache and budget ----------------------------------------------------------------------
    cache: bool = Field(True, description="Reuse identical TA answers from the response cache.")
    cache_path: str | None = Field(
        None, description="The response cache file (default: llm-cache.sqlite in the cache dir)."
    )
    prices: dict[str, PriceConfig] = Field(
        default_factory=dict,
        description="Dollars per million tokens by model name (or name prefix): "
        "{input: 0.15, output: 0.6}.",
    )
    max_cost_usd: float | None = Field(
        None, gt=0, le=1_000_000, description="Stop asking the TA once this many dollars are spent."
    )
    max_total_tokens: int | None = Field(
        None, ge=1, le=10**12, description="Stop asking the TA once this many tokens are used."
    )

    def in_background(self) -> bool:
        """Whether TA requests run while a round trains (``background``, or by backend)."""
        if self.background is not None:
            return self.background
        return self.backend == "openai"

    @model_validator(mode="after")
    def _check_static(self) -> AssistantConfig:
        if self.initial == "static" and not (self.static_prefix or "").strip():
            raise ValueError("assistant.initial=static needs assistant.static_prefix")
        return self

    @field_validator("api_key_env")
    @classmethod
    def _check_key_env(cls, name: str) -> str:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ValueError(
                "must be the NAME of an environment variable (like OPENAI_API_KEY), "
                "never the key itself"
            )
        return name

    @field_validator("extra_headers")
    @classmethod
    def _check_headers(cls, headers: dict[str, str]) -> dict[str, str]:
        for name, value in headers.items():
            secret = re.search(r"auth|key|token|secret", name, re.IGNORECASE)
            if secret and not value.startswith("env:"):
                raise ValueError(
                    f"header {name!r} looks like a credential: write 'env:NAME' and export NAME, "
                    "so the secret never sits in a config file"
                )
        return headers

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, url: str | None) -> str | None:
        """No credential in the URL: it would sit in config.yaml, error messages and logs."""
        from urllib.parse import parse_qsl, urlsplit

        from gpta.secrets import scrub

        if url is None:
            return url
        parts = urlsplit(url)
        names = [n for n, _ in parse_qsl(f"{parts.query}&{parts.fragment}", keep_blank_values=True)]
        credential = re.compile(r"key|token|secret|passw|pwd|auth|sig|credential|session|^code$")
        found = (
            "a user name or password before '@'"
            if "@" in parts.netloc
            else next(
                (f"query parameter {n!r}" for n in names if credential.search(n.lower())), None
            )
            or ("a key-shaped string" if scrub(url) != url else None)
        )
        if found:
            raise ValueError(
                f"holds a credential ({found}), and the URL is written to config.yaml, "
                "error messages and logs: put the API key in the environment variable named "
                "by assistant.api_key_env (default OPENAI_API_KEY) and any other credential "
                "in a header read from the environment, assistant.extra_headers.NAME: env:VAR "
                "(e.g. --set assistant.extra_headers.api-key=env:AZURE_OPENAI_KEY)"
            )
        return url

    def sampling(self, *, seed: int) -> Sampling:
        """``candidates`` completions under these sampling settings, seeded ``seed``."""
        from gpta.chat.base import Sampling

        return Sampling(
            n=self.candidates,
            temperature=self.temperature,
            top_p=self.top_p,
            max_new_tokens=self.max_new_tokens,
            seed=seed,
        )


class PrivacyConfig(_Section):
    """What may leave the machine towards the TA."""

    exposure: Literal["none", "exemplars"] = Field(
        "none",
        description="none: the TA sees the description and aggregate scores only. exemplars: "
        "also k redacted training rows, listed in the run's exemplars.jsonl.",
    )
    exemplars: int | None = Field(
        None,
        ge=1,
        le=64,
        description="exposure=exemplars: how many rows to sample (default 4; or the number of "
        "privacy.exemplar_ids).",
    )
    exemplar_ids: list[str] | None = Field(
        None,
        description="exposure=exemplars: the training rows to show, by row id "
        "('<file name>:line N' / ':row N', or the value of privacy.id_column).",
    )
    id_column: str | None = Field(
        None, description="A column holding a unique id per row, used as the row id."
    )
    redact_names: list[str] = Field(
        default_factory=list,
        description="Names (people, companies, places) replaced by [NAME] in exemplars.",
    )
    guard_ngram: int = Field(
        8,
        ge=3,
        le=64,
        description="The leak guard blocks a request holding this many consecutive words of "
        "any data row (beyond the allowed exemplars).",
    )

    @model_validator(mode="after")
    def _check_exemplars(self) -> PrivacyConfig:
        if self.exposure == "none" and (self.exemplars or self.exemplar_ids):
            raise ValueError(
                "privacy.exemplars / privacy.exemplar_ids need privacy.exposure: exemplars "
                "(the default, none, sends no row)"
            )
        if self.exemplar_ids is not None:
            if not self.exemplar_ids:
                raise ValueError("privacy.exemplar_ids is empty; list row ids or leave it out")
            if len(set(self.exemplar_ids)) != len(self.exemplar_ids):
                raise ValueError("privacy.exemplar_ids lists a row twice")
            if self.exemplars is not None and self.exemplars != len(self.exemplar_ids):
                raise ValueError(
                    f"privacy.exemplars ({self.exemplars}) differs from the number of "
                    f"privacy.exemplar_ids ({len(self.exemplar_ids)}); give one of them"
                )
        return self


class CardsConfig(_Section):
    """Class cards (classification): example inputs per class that the TA writes from the
    description alone, added to training only where cross-validation on your rows says so."""

    source: Literal["none", "names", "ta"] = Field(
        "none",
        description="What teaches with examples: none; names (the label names templated into "
        "rows, no TA: the control); ta (the TA writes a card per class from the description).",
    )
    examples: int = Field(
        6, ge=1, le=16, description="Examples the TA writes per class and request."
    )
    weights: list[float] = Field(
        default_factory=lambda: [1.0],
        min_length=1,
        max_length=8,
        description="Loss weights w tried for the card rows (a real row weighs 1); w = 0, "
        "the plain run, is always a candidate and wins ties. Each extra weight is one more "
        "candidate, and the adoption test is Bonferroni-corrected over the candidates.",
    )
    rounds: int = Field(
        0,
        ge=0,
        le=5,
        description="Dialogue rounds: the TA gets per-class recall and the confused class "
        "pairs over the cross-validated rows and writes new examples for the weak classes.",
    )
    filter_confident: bool = Field(
        False,
        description="Also try the card set without the examples that a probe trained on the "
        "fold's real rows assigns to another class with twice the probability (ZeroGen/"
        "SuperGen filtering); one more candidate for the adoption test.",
    )
    seed: int = Field(
        0,
        ge=0,
        le=MAX_SEED,
        description="The TA's seed for the cards (not the run's: the same description gets "
        "the same cards, from the cache, whatever the run's seed).",
    )

    @field_validator("weights")
    @classmethod
    def _check_weights(cls, value: list[float]) -> list[float]:
        if any(not 0 <= w <= 10 for w in value):
            raise ValueError("every cards.weights value must be between 0 and 10")
        return value


class SelectionConfig(_Section):
    """How the run chooses among teaching materials and rounds, all from your own labelled
    rows: which rows screen the prefix and choose the round kept (the dev rows, or
    cross-validation over every labelled row), and the one adoption rule of every material
    (margin and paired test: :func:`gpta.selection.adopt`; docs/selection.md)."""

    prefix: Literal["auto", "dev", "cv"] = Field(
        "auto",
        description="How prefix candidates are screened. dev: forward passes of the model in "
        "training on dev rows; cv: stratified k-fold cross-validation over all labelled rows "
        "(train + dev) with logistic regression on the embeddings the model in training gives "
        "to prefix + text (classification only); auto: cv when the dev rows would be split "
        "off your only labelled rows (no dev file, no train rows left unsampled) and those "
        "number at most selection.cv_max_rows, else dev.",
    )
    best_round: Literal["auto", "dev", "cv", "last"] = Field(
        "dev",
        description="How the round the run keeps is chosen. dev: the best dev score; last: the "
        "last round; cv: k fold trainings (no TA) pick the round count with the best "
        "out-of-fold accuracy, then the model trains on all labelled rows for that many rounds "
        "(classification only; about selection.folds + 1 times the training time); auto: as for "
        "selection.prefix. dev by default: cv did not beat it in the cards profile "
        "(docs/selection.md).",
    )
    cv_max_rows: int = Field(
        128,
        ge=0,
        le=1_000_000,
        description="auto cross-validates only up to this many labelled rows (train + dev); "
        "above it the dev rows split off them number 20 or more and choose (cross-validating "
        "the round count trains selection.folds extra models).",
    )
    screen_size: int = Field(
        64, ge=4, le=MAX_ROWS, description="Dev rows used to screen prefix candidates."
    )
    margin: float = Field(
        0.0,
        ge=0,
        le=100,
        description="A candidate (prefix, label words, class cards) must beat the current "
        "material's screened score by more than this.",
    )
    adopt_confidence: float = Field(
        0.95,
        ge=0,
        lt=1,
        description="A candidate replaces the current material only when a one-sided paired "
        "t-test over the screening rows says it is better at this confidence (and by more "
        "than margin), Bonferroni-corrected over the candidates; 0: any improvement is "
        "adopted.",
    )
    folds: int = Field(
        4,
        ge=2,
        le=20,
        description="Stratified cross-validation folds over the labelled rows (cut to the "
        "rows of the rarest class): class cards, selection.prefix cv, selection.best_round cv.",
    )


#: Options that moved: (old section, key) -> their name now.
MOVED_OPTIONS: dict[tuple[str, str], str] = {
    ("assistant", "screen_size"): "selection.screen_size",
    ("assistant", "margin"): "selection.margin",
    ("assistant", "adopt_confidence"): "selection.adopt_confidence",
    ("cards", "folds"): "selection.folds",
}


class GptaConfig(_Section):
    """A whole GPTA run."""

    task: TaskName = Field(
        "classification",
        description="The task family: classification, qa (extractive question answering), "
        "multiple_choice or summarization.",
    )
    output_dir: str = Field("runs/gpta", description="Run directory.")
    seed: int = Field(0, ge=0, le=MAX_SEED, description="Random seed.")
    device: Device = Field(
        "auto", description="The downstream model's device; auto: CUDA, then MPS, then CPU."
    )
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    assistant: AssistantConfig = Field(default_factory=AssistantConfig)
    privacy: PrivacyConfig = Field(default_factory=PrivacyConfig)
    cards: CardsConfig = Field(default_factory=CardsConfig)
    selection: SelectionConfig = Field(default_factory=SelectionConfig)

    @model_validator(mode="before")
    @classmethod
    def _moved_options(cls, data: Any) -> Any:
        """Options that moved to the ``selection`` section are still read where they were
        (a saved run's config.yaml, an older config file); set in both places, they must
        agree."""
        if not isinstance(data, dict):
            return data
        for (section, key), new in MOVED_OPTIONS.items():
            old = data.get(section)
            if not isinstance(old, dict) or key not in old:
                continue
            old = dict(old)
            value = old.pop(key)
            target = data.get("selection")
            target = dict(target) if isinstance(target, dict) else {}
            leaf = new.split(".")[1]
            if leaf in target and target[leaf] != value:
                raise ValueError(
                    f"{section}.{key} is now {new}; it is set in both places, to "
                    f"{_shown(value)} and {_shown(target[leaf])}: keep one"
                )
            target.setdefault(leaf, value)
            data = {**data, section: old, "selection": target}
        return data

    @model_validator(mode="after")
    def _check_prefix_fits(self) -> GptaConfig:
        if self.task != "classification":
            if self.model.head != "sequence":
                raise ValueError(
                    f"model.head={self.model.head} applies to task classification only "
                    f"(task is {self.task}); leave model.head at sequence"
                )
            if self.training.augment_prefixes:
                raise ValueError(
                    "training.augment_prefixes applies to task classification only; set it to 0"
                )
            if self.cards.source != "none":
                raise ValueError(
                    f"cards.source={self.cards.source} applies to task classification only "
                    f"(task is {self.task}); leave cards.source at none"
                )
            for name in ("prefix", "best_round"):
                if getattr(self.selection, name) == "cv":
                    raise ValueError(
                        f"selection.{name}=cv applies to task classification only "
                        f"(task is {self.task}); use auto or dev"
                    )
        if self.assistant.max_prefix_tokens > self.model.max_length // 2:
            raise ValueError(
                f"assistant.max_prefix_tokens ({self.assistant.max_prefix_tokens}) must be at most "
                f"half of model.max_length ({self.model.max_length}) so the text keeps room"
            )
        return self

    def description_text(self) -> str:
        """The dataset description the TA reads (from the string or the file)."""
        if self.data.description_file is not None:
            path = Path(self.data.description_file)
            if not path.exists():  # a pipe (--description-file <(...)) is read within the bound
                raise GptaUserError(
                    f"description file not found: {path}",
                    hint="set data.description_file to an existing UTF-8 text file",
                )
            tokens = DESCRIPTION_TOKENS.value()
            raw = read_file_bounded(
                path,
                what="description file",
                bound=DESCRIPTION_TOKENS,
                limit=tokens * DESCRIPTION_BYTES_PER_TOKEN,
                fix=_DESCRIPTION_FIX,
            )
            try:
                text = raw.decode("utf-8-sig").strip()
            except UnicodeDecodeError:
                raise GptaUserError(
                    f"description file {path} is not UTF-8", hint="re-save it as UTF-8"
                ) from None
            if not text:
                raise GptaUserError(
                    f"description file {path} is empty",
                    hint="describe the data in a sentence or two",
                )
            return bounded_description(text, f"description file {path}")
        if self.data.description and self.data.description.strip():
            return bounded_description(self.data.description.strip(), "data.description")
        raise GptaUserError(
            "no dataset description: the teaching assistant writes prefixes from it",
            hint="set data.description (--description) or data.description_file "
            "(--description-file)",
        )


_DESCRIPTION_FIX = "describe the data in a few sentences (what a row is, what the labels mean)"


def bounded_description(text: str, where: str) -> str:
    """``text``, refused when gpta's estimate of its tokens passes ``DESCRIPTION_TOKENS``
    (every TA request carries it whole; cutting it could drop what the labels mean)."""
    limit = DESCRIPTION_TOKENS.value()
    tokens = count_tokens_approx(text)
    if tokens > limit:
        raise DESCRIPTION_TOKENS.error(
            where,
            f"about {tokens:,} tokens ({len(text):,} characters)",
            limit,
            fix=_DESCRIPTION_FIX,
        )
    return text


def config_field(dotted: str) -> FieldInfo:
    """The field of :class:`GptaConfig` at a dotted path (``training.rounds``): its type,
    default and description (the help of the `gpta train` flag that sets it)."""
    model: type[BaseModel] = GptaConfig
    *sections, leaf = dotted.split(".")
    for name in sections:  # each section's annotation is its model class
        model = cast("type[BaseModel]", model.model_fields[name].annotation)
    return model.model_fields[leaf]


def _format_validation_error(err: ValidationError, source: str) -> str:
    lines = [f"invalid configuration ({source}):"]
    for item in err.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(top level)"
        if item["type"] == "extra_forbidden":
            lines.append(f"  {where}: unknown option (check the spelling; see `gpta train --help`)")
        else:
            msg = item["msg"].removeprefix("Value error, ")
            secret = where.startswith(
                ("assistant.api_key_env", "assistant.extra_headers", "assistant.base_url")
            )
            # a cross-option rule names its options itself; its input is the whole config
            whole = not item["loc"] or isinstance(item.get("input"), dict)
            got = "" if secret or whole else f" (got {_shown(item.get('input'))})"  # may be a key
            bounds = _bounds(item["loc"])
            said = "less than" in msg or "greater than" in msg
            allowed = f"; allowed: {bounds}" if bounds and not said else ""
            lines.append(f"  {where}: {msg}{got}{allowed}")
    return "\n".join(lines)


def _bounds(loc: tuple[int | str, ...]) -> str | None:
    """The bounds of the option at ``loc`` (``1 to 1000``), if it has any."""
    model: Any = GptaConfig
    field = None
    for part in loc:
        fields = getattr(model, "model_fields", None)
        if not isinstance(fields, dict) or part not in fields:
            return None
        field = fields[part]
        model = field.annotation
    if field is None:
        return None
    shown = []
    for rule in field.metadata:
        for name, sign in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
            value = getattr(rule, name, None)
            if value is not None:
                shown.append(f"{sign} {value:,}")
    return " and ".join(shown) or None


def _shown(value: Any, width: int = 80) -> str:
    """``repr(value)``, cut to ``width`` characters (a pasted file must not flood the
    terminal)."""
    text = repr(value)
    return text if len(text) <= width else f"{text[: width - 1]}… ({len(text):,} characters)"


def build_config(data: dict[str, Any], *, source: str = "options") -> GptaConfig:
    """Validate a nested dict into a :class:`GptaConfig`, turning errors into user errors."""
    try:
        return GptaConfig.model_validate(data)
    except ValidationError as err:
        raise GptaUserError(
            _format_validation_error(err, source),
            hint="correct the option(s) named above (`gpta train --help` lists every option "
            "with its config name; the bounds are in the messages)",
        ) from None


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML or TOML config file into a nested dict (not yet validated)."""
    path = Path(path)
    if not path.is_file():
        raise GptaUserError(f"config file not found: {path}")
    raw = read_file_bounded(path, what="config file", bound=CONFIG_BYTES)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise GptaUserError(
            f"config file {path} is not UTF-8", hint="re-save it as UTF-8"
        ) from None
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else safe_yaml.safe_load(text)
    except (yaml.YAMLError, tomllib.TOMLDecodeError, RecursionError) as err:
        raise GptaUserError(
            f"config file {path} could not be parsed: {err}",
            hint="fix the YAML/TOML syntax at the line named above",
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise GptaUserError(
            f"config file {path} must hold a mapping of options at the top level",
            hint="write one option per line, e.g. `seed: 0` or a section like `training:`",
        )
    return data


def set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``data['a']['b'] = value`` for ``dotted == 'a.b'``, creating sections as needed."""
    *sections, leaf = dotted.split(".")
    node = data
    for name in sections:
        child = node.setdefault(name, {})
        if not isinstance(child, dict):
            raise GptaUserError(
                f"option {dotted}: {name} is not a section",
                hint=f"set {dotted} or {name}, not both (`gpta train --help` lists the options)",
            )
        node = child
    section = GptaConfig.model_fields.get(leaf) if not sections else None
    if (
        section is not None
        and isinstance(section.annotation, type)
        and issubclass(section.annotation, BaseModel)
        and isinstance(value, dict)
        and isinstance(node.get(leaf), dict)
    ):  # a section as a mapping sets its options, not drops the others (docs/meaning.md)
        node[leaf].update(value)
        return
    node[leaf] = value


def split_override(
    item: str, *, option: str = "--set", example: str = "training.rounds=5"
) -> tuple[str, str]:
    """``KEY=VALUE`` -> ``(KEY, VALUE)``, both as text (the key stripped of spaces).

    The one reader of ``KEY=VALUE`` items: ``gpta train --set``, ``gpta llm-check --set`` and
    the benchmarks' ``--set`` all use it (with :func:`read_override_value`). A malformed item
    is a :class:`GptaUserError` naming ``option`` and showing ``example``.
    """
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise GptaUserError(f"{option} {item!r}: expected KEY=VALUE, e.g. {option} {example}")
    return key.strip(), value


def read_override_value(key: str, text: str, *, option: str = "--set") -> Any:
    """The value of an override as YAML reads it, as if written in a config file: ``5`` is
    a number, ``[a, b]`` a list, ``{k: v}`` a mapping; nothing at all is the empty text."""
    limit, size = CONFIG_BYTES.value(), len(text.encode("utf-8", "replace"))
    if size > limit:
        raise CONFIG_BYTES.error(f"{option} {key}", f"a value of {size:,} bytes", limit)
    try:
        return safe_yaml.safe_load(text) if text else ""
    except (yaml.YAMLError, RecursionError) as err:
        problem = getattr(err, "problem", None) or type(err).__name__
        raise GptaUserError(
            f"{option} {key}: the value {text!r} is not valid YAML ({problem})",
            hint=f"quote a text value: {option} '{key}=\"...\"'; lists are written "
            "[a, b], mappings {k: v}",
        ) from None


def parse_overrides(items: Iterable[str], *, option: str = "--set") -> dict[str, Any]:
    """``KEY=VALUE`` items -> the ``{dotted key: value}`` overrides :func:`load_config`
    applies (a later item beats an earlier one of the same key)."""
    overrides = {}
    for item in items:
        key, text = split_override(item, option=option)
        overrides[key] = read_override_value(key, text, option=option)
    return overrides


def load_config(
    path: str | Path | None = None, overrides: dict[str, Any] | None = None
) -> GptaConfig:
    """Read a config file (optional), apply dotted overrides, validate once."""
    data = read_config_file(path) if path is not None else {}
    for dotted, value in (overrides or {}).items():
        set_dotted(data, dotted, value)
    source = f"{path} + command-line options" if path is not None else "command-line options"
    config = build_config(data, source=source)
    if path is not None:
        _resolve_relative_paths(config, Path(path).parent, overrides or {})
    return config


def _resolve_relative_paths(config: GptaConfig, base: Path, overrides: dict[str, Any]) -> None:
    """Paths written in a config file are relative to that file, not to the working directory."""
    for key in DATA_PATH_KEYS:
        value = getattr(config.data, key)
        if value is None or f"data.{key}" in overrides:
            continue
        candidate = base / value
        if not Path(value).is_absolute() and candidate.exists():
            setattr(config.data, key, str(candidate))


def dump_config(config: GptaConfig, path: str | Path) -> None:
    """Write the resolved configuration as YAML."""
    Path(path).write_text(
        yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False), encoding="utf-8"
    )
