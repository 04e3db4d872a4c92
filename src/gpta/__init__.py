"""gpta: make small NLP models better with an LLM as a teaching assistant.

    from gpta import load_config, train, load_pipeline

    config = load_config("run.yaml")
    result = train(config)
    classify = load_pipeline(result.run_dir)
    classify(["the soup was cold"])

Names are imported on first use, so ``import gpta`` (and ``gpta --help``) stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from gpta._version import __version__

_EXPORTS = {
    "GptaConfig": "gpta.config",
    "load_config": "gpta.config",
    "GptaUserError": "gpta.errors",
    "GptaPipeline": "gpta.downstream.pipeline",
    "load_pipeline": "gpta.downstream.pipeline",
    "RunResult": "gpta.run",
    "train": "gpta.run",
}

if TYPE_CHECKING:
    from gpta.config import GptaConfig, load_config
    from gpta.downstream.pipeline import GptaPipeline, load_pipeline
    from gpta.errors import GptaUserError
    from gpta.run import RunResult, train


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'gpta' has no attribute {name!r}")


__all__ = [
    "GptaConfig",
    "GptaPipeline",
    "GptaUserError",
    "RunResult",
    "__version__",
    "load_config",
    "load_pipeline",
    "train",
]
