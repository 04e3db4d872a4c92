"""Small helpers shared by the task families."""

from __future__ import annotations

from typing import Any, ClassVar

from gpta.errors import GptaUserError
from gpta.modeling.loading import load_pretrained


def load_tokenizer(name_or_path: str) -> Any:
    """The tokenizer of a model (bundled name, local folder or cached hub id), to validate
    input lengths before any model is loaded."""
    from transformers import AutoTokenizer

    from gpta.bundled import resolve_model_path

    try:
        return AutoTokenizer.from_pretrained(resolve_model_path(name_or_path))
    except OSError as err:
        raise GptaUserError(
            f"model.name_or_path: could not load the tokenizer of {name_or_path!r} ({err})",
            hint="give a local model folder, a model id already in the Hugging Face cache, "
            "or a bundled model (bundled:minilm)",
        ) from None


def load_auto_model(auto_class: str, name_or_path: str) -> tuple[Any, Any]:
    """A model of the transformers auto class named ``auto_class`` (e.g.
    ``AutoModelForQuestionAnswering``; named, so that transformers is imported only when a
    model loads) and its tokenizer, from a pretrained checkpoint or a saved run alike."""
    import transformers

    return load_pretrained(getattr(transformers, auto_class), name_or_path)


class AutoModelLoading:
    """``load_model`` and ``load_trained`` of a family whose model is one transformers auto
    class, ``auto_class``: a pretrained checkpoint (with a fresh task head where it has none)
    and a model saved by a run load the same way."""

    auto_class: ClassVar[str]

    def load_model(self, name_or_path: str) -> tuple[Any, Any]:
        """A pretrained model with the family's head, and its tokenizer."""
        return load_auto_model(self.auto_class, name_or_path)

    def load_trained(self, model_dir: str) -> tuple[Any, Any]:
        """A model saved by a run."""
        return load_auto_model(self.auto_class, model_dir)
