"""Small helpers shared by the task families."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from gpta.data import Table, require_columns, require_text
from gpta.errors import GptaUserError
from gpta.modeling.loading import load_pretrained

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase

    from gpta.config import GptaConfig

#: the fix a row that leaves too little room next to the prefix can take, beside its own
PREFIX_ROOM_HINT = (
    "raise model.max_length, lower assistant.max_prefix_tokens (or shorten assistant.static_prefix)"
)


def require_distinct_columns(columns: dict[str, str]) -> None:
    """Refuse two options of a family that name one column (``{option: column}``): the model
    would read what it must produce (text = label), or one field twice (docs/meaning.md)."""
    seen: dict[str, str] = {}
    for option, column in columns.items():
        if column in seen:
            raise GptaUserError(
                f"{seen[column]} and {option} both name the column {column!r}: "
                + (
                    "the model would read the answer it must produce"
                    if "data.label_column" in (seen[column], option)
                    else "the model would read one field twice, in place of two"
                ),
                hint=f"set {seen[column]} and {option} to two different columns of the data",
            )
        seen[column] = option


def require_text_and_answer(
    tables: dict[str, Table],
    text_column: str,
    label_column: str,
    answer_check: Callable[[Table, str], None],
) -> None:
    """Every split of a family whose row is a text and its answer: the two columns, named
    apart, a text in each row, and an answer ``answer_check(table, label_column)`` accepts
    (naming the first bad row of the first bad split)."""
    require_distinct_columns({"data.text_column": text_column, "data.label_column": label_column})
    for table in tables.values():
        require_columns(table, [text_column], option="data.text_column")
        require_columns(table, [label_column], option="data.label_column")
        require_text(table, text_column)
        answer_check(table, label_column)


def load_tokenizer(name_or_path: str) -> PreTrainedTokenizerBase:
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


def prefix_budget(config: GptaConfig, tokenizer: PreTrainedTokenizerBase) -> int:
    """The most tokens a prefix of this run can take: ``assistant.max_prefix_tokens`` (the cap
    on the TA's proposals and on a warm start), or a static prefix's own length when the run
    starts from a longer one (it is used as written, not cut). The families whose inputs
    must leave room for a row's own text (QA, multiple choice) check every row against it
    before training."""
    assistant = config.assistant
    static = (assistant.static_prefix or "").strip() if assistant.initial == "static" else ""
    own = len(tokenizer(static, add_special_tokens=False)["input_ids"]) if static else 0
    return max(assistant.max_prefix_tokens, own)


def load_auto_model(
    auto_class: str, name_or_path: str
) -> tuple[torch.nn.Module, PreTrainedTokenizerBase]:
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

    def load_model(self, name_or_path: str) -> tuple[torch.nn.Module, PreTrainedTokenizerBase]:
        """A pretrained model with the family's head, and its tokenizer."""
        return load_auto_model(self.auto_class, name_or_path)

    def load_trained(self, model_dir: str) -> tuple[torch.nn.Module, PreTrainedTokenizerBase]:
        """A model saved by a run."""
        return load_auto_model(self.auto_class, model_dir)


class QuestionOnPassage:
    """What the two families whose row is a question on a passage (QA, multiple choice)
    share: a row is checked as a table (``check_table``) and for the room its question
    leaves the passage next to the longest prefix (``check_fits``) in every split of a run;
    and no exemplar shows one."""

    # the family's own: ``check_table(table, *, labelled=True)`` checks the columns, types
    # and (labelled) answers of every row; ``check_fits(rows, locations, source, tokenizer,
    # *, prefix_tokens)`` the room each row leaves its passage next to such a prefix
    check_table: Callable[..., None]
    check_fits: Callable[..., None]

    def check_splits(self, config: GptaConfig, tables: dict[str, Table]) -> None:
        """Every split of a run: its rows, and their room next to the run's longest prefix."""
        tokenizer = load_tokenizer(config.model.resolved_name(config.task))
        prefix_tokens = prefix_budget(config, tokenizer)
        for table in tables.values():
            self.check_table(table)
            self.check_fits(
                table.rows, table.locations, table.source, tokenizer, prefix_tokens=prefix_tokens
            )

    def exemplar_columns(self) -> tuple[str, str | None]:
        """None of a row's columns: exemplars show one text, and a row is a question on a
        passage. ``text`` (not a column here) makes ``privacy.exposure: exemplars`` stop at
        the first exemplar, naming the column; no label is shown."""
        return "text", None


class TextWithAnswer:
    """What the two families whose row is one text and its reference answer share
    (classification: a label, summarization: a summary): exemplars show the text with its
    answer, and the text is a saved model's one input column."""

    text_column: str
    label_column: str

    def exemplar_columns(self) -> tuple[str, str | None]:
        """A text, shown with its label (or reference summary)."""
        return self.text_column, self.label_column

    def column_manifest(self) -> dict[str, Any]:
        """The manifest's columns: the text is the one input."""
        return {
            "text_column": self.text_column,
            "label_column": self.label_column,
            "input_columns": [self.text_column],
        }
