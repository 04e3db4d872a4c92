"""Abstractive summarization with a seq2seq model (T5/BART) or a decoder-only LM.

Rows hold a document and its reference summary (``document``/``summary`` by default;
``data.text_column`` / ``data.label_column`` rename them, e.g. ``article``/``highlights``
for CNN/DailyMail). The architecture is read from the model's config
(``is_encoder_decoder``).

Prefix placement:

- **seq2seq**: the encoder reads ``prefix + " " + document`` as one segment, truncated on
  the right to ``model.max_length``; the prefix is capped at half of that, so only document
  tokens are ever cut. The decoder is trained on the summary (``model.max_target_length``
  tokens, EOS included).
- **decoder-only**: the sequence is ``[prefix + "\\n\\n"] [document] ["\\nSummary:"]
  [" " + summary] [EOS]``, plain text (no chat template, so any causal LM works the same
  way). The four parts are tokenized *separately* and their ids concatenated, so the prefix
  is the same token prefix of every input, in training and at inference. The document is
  cut to fit ``model.max_length`` with room kept for ``max_target_length`` summary tokens
  and the EOS. Labels are -100 on every prompt token: the loss is on the summary tokens
  (and the EOS) only.

Scores: the round's dev score is ROUGE-L F1 (0-1, ``rouge-score`` with the Porter stemmer)
of generated summaries; ROUGE-1/2/Lsum are reported too. ROUGE-Lsum needs one sentence per
line: a text that already has line breaks (CNN/DailyMail highlights) keeps them, any other
is split offline with a regular expression at ``.``/``!``/``?`` followed by a space.
Candidate prefixes are screened without generation, on minus the mean loss per summary
token (forward passes only).

Generation (``model.num_beams``, ``model.max_new_tokens``, greedy when one beam): for a
decoder-only model the prefix's key/value cache is computed once per call and a copy is
reused for every batch; ``use_prefix_cache=False`` recomputes it, with identical outputs.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, cast

import torch

from gpta.data import Table, require_text
from gpta.errors import GptaUserError
from gpta.modeling.inference import forward_batches
from gpta.modeling.loading import load_pretrained
from gpta.tasks.base import Columns, Evaluation, LongCells, RowScoring, Screening, TaskIO
from gpta.tasks.common import TextWithAnswer, require_text_and_answer

if TYPE_CHECKING:
    from transformers import BatchEncoding, PretrainedConfig, PreTrainedTokenizerBase

    from gpta.config import GptaConfig
    from gpta.manifest import Manifest

SEQ2SEQ = "seq2seq"
DECODER = "decoder-only"
PREFIX_SEPARATOR = " "  # seq2seq: prefix + " " + document
PREFIX_END = "\n\n"  # decoder-only: the prefix part is prefix + "\n\n"
CUE = "\nSummary:"  # decoder-only: after the document, before the summary
ROUGE_TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")
PRIMARY = "rougeL"
IGNORE = -100
_SENTENCE_END = re.compile(r"([.!?][\"'”’)\]]*)\s+")


# --- ROUGE ------------------------------------------------------------------------------------
def split_sentences(text: str) -> str:
    """One sentence per line, as ROUGE-Lsum expects; done offline, without nltk data.

    A text with line breaks keeps them (CNN/DailyMail highlights are one per line); any other
    text is split after ``.``, ``!`` or ``?`` (and closing quotes/brackets) followed by space.
    """
    text = text.strip()
    if "\n" not in text:
        text = _SENTENCE_END.sub("\\1\n", text)
    lines = text.splitlines()
    return "\n".join(line.strip() for line in lines if line.strip())


def rouge_scores(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Mean ROUGE-1/2/L/Lsum F1 (0-1) over pairs, ``rouge-score`` with the Porter stemmer."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)
    totals = dict.fromkeys(ROUGE_TYPES, 0.0)
    for prediction, reference in zip(predictions, references, strict=True):
        scores = scorer.score(split_sentences(reference), split_sentences(prediction))
        for name in ROUGE_TYPES:
            totals[name] += scores[name].fmeasure
    n = max(len(predictions), 1)
    return {name: totals[name] / n for name in ROUGE_TYPES}


def model_architecture(name_or_path: str) -> str:
    """``seq2seq`` when the model's config says ``is_encoder_decoder``, else ``decoder-only``."""
    from transformers import AutoConfig

    from gpta.bundled import resolve_model_path

    try:
        config: PretrainedConfig = AutoConfig.from_pretrained(resolve_model_path(name_or_path))
    except (OSError, ValueError) as err:
        raise GptaUserError(
            f"model.name_or_path: could not load {name_or_path!r} ({err})",
            hint="give a local model folder, a model id already in the Hugging Face cache, "
            "or bundled:smollm2",
        ) from None
    return SEQ2SEQ if config.is_encoder_decoder else DECODER


@dataclass
class SummarizationTask(TextWithAnswer, RowScoring):
    """Input encoding, generation and ROUGE for abstractive summarization."""

    text_column: str
    label_column: str
    architecture: str  # SEQ2SEQ or DECODER
    max_length: int
    max_target_length: int
    max_new_tokens: int
    num_beams: int
    family: str = field(default="summarization", init=False)
    primary_metric: str = field(default=PRIMARY, init=False)
    default_columns: ClassVar[tuple[str, str]] = ("document", "summary")

    # --- building and validating -------------------------------------------------------------
    @staticmethod
    def long_cells(columns: Columns, max_chars: int, *, labelled: bool) -> LongCells:
        """Cut the document; refuse a long reference summary (cutting it changes it)."""
        refuse = {columns.label: (max_chars, "a reference summary")} if labelled else {}
        return [columns.text], refuse

    @classmethod
    def from_config(cls, config: GptaConfig, tables: dict[str, Table]) -> SummarizationTask:
        """Build from the run configuration; validates every split and the length budget."""
        columns = cls.columns_for(config)
        text_column, label_column = columns.text, columns.label
        require_text_and_answer(tables, text_column, label_column, require_text)
        model = config.model
        architecture = model_architecture(model.resolved_name("summarization"))
        if architecture == DECODER:
            # prefix (+ its line break) + cue + summary + EOS must leave the document room
            room = (
                model.max_length - config.assistant.max_prefix_tokens - model.max_target_length - 8
            )
            if room < 16:
                raise GptaUserError(
                    f"model.max_length ({model.max_length}) leaves {max(room, 0)} tokens for the "
                    f"document after the prefix (assistant.max_prefix_tokens "
                    f"{config.assistant.max_prefix_tokens}), the summary "
                    f"(model.max_target_length {model.max_target_length}) and the cue",
                    hint="raise model.max_length or lower model.max_target_length / "
                    "assistant.max_prefix_tokens",
                )
        return cls(
            text_column=text_column,
            label_column=label_column,
            architecture=architecture,
            max_length=model.max_length,
            max_target_length=model.max_target_length,
            max_new_tokens=model.max_new_tokens,
            num_beams=model.num_beams,
        )

    @property
    def seq2seq(self) -> bool:
        return self.architecture == SEQ2SEQ

    def _auto_class(self) -> Any:
        from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

        return AutoModelForSeq2SeqLM if self.seq2seq else AutoModelForCausalLM

    # --- row access with errors naming the row ---------------------------------------------------
    def _field(self, row: dict[str, Any], column: str, position: int) -> str:
        value = row.get(column)
        if not isinstance(value, str) or not value.strip():
            problem = (
                "no" if value is None else "an empty" if isinstance(value, str) else "a non-text"
            )
            raise GptaUserError(
                f"row {position}: {problem} value in column {column!r}",
                hint=f"give every row a {column!r} text, or name the column "
                "(--text-column / --label-column)",
            )
        return value

    def _documents(self, rows: Sequence[dict[str, Any]]) -> list[str]:
        return [self._field(r, self.text_column, i) for i, r in enumerate(rows, start=1)]

    def _summaries(self, rows: Sequence[dict[str, Any]]) -> list[str]:
        return [self._field(r, self.label_column, i) for i, r in enumerate(rows, start=1)]

    # --- model inputs -----------------------------------------------------------------------------
    def prefix_ids(self, tokenizer: PreTrainedTokenizerBase, prefix: str) -> list[int]:
        """Decoder-only: the constant start of every input (BOS if the tokenizer adds one)."""
        ids = (
            tokenizer(prefix + PREFIX_END, add_special_tokens=False)["input_ids"] if prefix else []
        )
        bos = tokenizer.bos_token_id
        if bos is not None and tokenizer("a")["input_ids"][:1] == [bos]:
            ids = [bos, *ids]
        return ids

    def prompt_parts(
        self, tokenizer: PreTrainedTokenizerBase, documents: Sequence[str], prefix: str
    ) -> tuple[list[int], list[list[int]]]:
        """Decoder-only: the constant prefix ids, and per document the rest of the prompt
        (document cut to fit, then the cue)."""
        head = self.prefix_ids(tokenizer, prefix)
        cue = tokenizer(CUE, add_special_tokens=False)["input_ids"]
        budget = max(self.max_length - len(head) - len(cue) - self.max_target_length - 1, 1)
        bodies = tokenizer(list(documents), add_special_tokens=False)["input_ids"]
        return head, [body[:budget] + cue for body in bodies]

    def _target_ids(
        self, tokenizer: PreTrainedTokenizerBase, summaries: Sequence[str]
    ) -> list[list[int]]:
        eos = tokenizer.eos_token_id
        if self.seq2seq:
            encoded: list[list[int]] = tokenizer(
                text_target=list(summaries), truncation=True, max_length=self.max_target_length
            )["input_ids"]
            if eos is None:
                return encoded
            return [
                ids if ids and ids[-1] == eos else [*ids[: self.max_target_length - 1], eos]
                for ids in encoded
            ]
        unended = tokenizer([" " + s.strip() for s in summaries], add_special_tokens=False)
        tail = [eos] if eos is not None else []
        return [ids[: self.max_target_length] + tail for ids in unended["input_ids"]]

    def encode_source(
        self, tokenizer: PreTrainedTokenizerBase, documents: Sequence[str], prefix: str
    ) -> BatchEncoding[torch.Tensor]:
        """Seq2seq: the encoder input ``prefix + " " + document``; only the document is cut."""
        texts = [f"{prefix}{PREFIX_SEPARATOR}{d}" if prefix else d for d in documents]
        batch: BatchEncoding[torch.Tensor] = tokenizer(
            texts, truncation=True, max_length=self.max_length, padding=True, return_tensors="pt"
        )
        return batch

    def collate(
        self, rows: Sequence[dict[str, Any]], tokenizer: PreTrainedTokenizerBase, prefix: str
    ) -> dict[str, Any]:
        """A training batch: ``input_ids``, ``attention_mask`` and ``labels`` (-100 = no loss)."""
        documents, summaries = self._documents(rows), self._summaries(rows)
        targets = self._target_ids(tokenizer, summaries)
        if self.seq2seq:
            batch = self.encode_source(tokenizer, documents, prefix)
            batch["labels"] = _pad(targets, IGNORE)
            return dict(batch)
        head, bodies = self.prompt_parts(tokenizer, documents, prefix)
        sequences = [head + body + target for body, target in zip(bodies, targets, strict=True)]
        labels = [
            [IGNORE] * (len(head) + len(body)) + target
            for body, target in zip(bodies, targets, strict=True)
        ]
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        return {
            "input_ids": _pad(sequences, pad_id),
            "attention_mask": _pad([[1] * len(s) for s in sequences], 0),
            "labels": _pad(labels, IGNORE),
        }

    # --- models -----------------------------------------------------------------------------------
    def load_model(self, name_or_path: str) -> tuple[torch.nn.Module, PreTrainedTokenizerBase]:
        """A pretrained seq2seq or causal LM (as its config says) and its tokenizer."""
        self.architecture = model_architecture(name_or_path)
        return load_pretrained(self._auto_class(), name_or_path)

    def load_trained(self, model_dir: str) -> tuple[torch.nn.Module, PreTrainedTokenizerBase]:
        """A model saved by a run."""
        return load_pretrained(self._auto_class(), model_dir)

    # --- loss (no generation) ---------------------------------------------------------------------
    def summary_loss(
        self,
        model: torch.nn.Module,
        tokenizer: PreTrainedTokenizerBase,
        rows: Sequence[dict[str, Any]],
        prefix: str,
        *,
        batch_size: int,
    ) -> float:
        """Mean cross-entropy per summary token (EOS included) over all rows."""
        losses = self.row_losses(model, tokenizer, rows, prefix, batch_size=batch_size)
        return _pooled_loss(losses)

    def row_losses(
        self,
        model: torch.nn.Module,
        tokenizer: PreTrainedTokenizerBase,
        rows: Sequence[dict[str, Any]],
        prefix: str,
        *,
        batch_size: int,
    ) -> list[tuple[float, int]]:
        """Per row: summed cross-entropy over its summary tokens, and their count."""
        out: list[tuple[float, int]] = []
        for batch, result in forward_batches(
            model,
            list(rows),
            lambda part: self.collate(part, tokenizer, prefix),
            batch_size=batch_size,
        ):
            logits = result.logits.float()
            labels = batch["labels"].to(logits.device)
            if not self.seq2seq:  # token t predicts token t+1
                logits, labels = logits[:, :-1], labels[:, 1:]
            per_token = torch.nn.functional.cross_entropy(
                logits.transpose(1, 2), labels, ignore_index=IGNORE, reduction="none"
            )
            sums = per_token.sum(dim=1).tolist()
            counts = (labels != IGNORE).sum(dim=1).tolist()
            out += [(float(a), int(b)) for a, b in zip(sums, counts, strict=True)]
        return out

    # --- generation -------------------------------------------------------------------------------
    def _generation_kwargs(self, tokenizer: PreTrainedTokenizerBase) -> dict[str, Any]:
        return {
            "do_sample": False,
            "num_beams": self.num_beams,
            "max_new_tokens": self.max_new_tokens,
            "pad_token_id": tokenizer.pad_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "temperature": None,
            "top_p": None,
            "top_k": None,
        }

    def generate_ids(
        self,
        model: Any,  # a transformers model: its generate() (typed as a union of outputs)
        tokenizer: PreTrainedTokenizerBase,
        documents: Sequence[str],
        prefix: str,
        *,
        batch_size: int,
        use_prefix_cache: bool = True,
    ) -> list[list[int]]:
        """Generated token ids per document (EOS and padding removed).

        Decoder-only: every prompt is ``head + body``, ``head`` being the prefix's constant
        ids. In a batch, padding sits between head and body (the attention mask hides it and
        positions count real tokens only), so each row sees exactly its unpadded prompt. With
        ``use_prefix_cache`` the head's key/value cache is computed once and a copy (repeated
        to the batch and beams) seeds every ``generate`` call.
        """
        if not documents:
            return []
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        kwargs = self._generation_kwargs(tokenizer)
        eos, pad_id = tokenizer.eos_token_id, tokenizer.pad_token_id
        out: list[list[int]] = []
        try:
            with torch.inference_mode():
                if self.seq2seq:
                    for start in range(0, len(documents), batch_size):
                        batch = self.encode_source(
                            tokenizer, documents[start : start + batch_size], prefix
                        ).to(device)
                        generated = model.generate(**batch, **kwargs)
                        # drop the decoder start token (pad for T5, EOS for BART)
                        out += [_strip(ids[1:], eos, pad_id) for ids in generated.tolist()]
                    return out
                head, bodies = self.prompt_parts(tokenizer, documents, prefix)
                head_cache = None
                if use_prefix_cache and head:
                    head_cache = model(
                        torch.tensor([head], device=device), use_cache=True
                    ).past_key_values
                for start in range(0, len(bodies), batch_size):
                    part = bodies[start : start + batch_size]
                    width = max(len(b) for b in part)
                    filler = pad_id if pad_id is not None else 0
                    ids = [head + [filler] * (width - len(b)) + b for b in part]
                    mask = [[1] * len(head) + [0] * (width - len(b)) + [1] * len(b) for b in part]
                    extra: dict[str, Any] = {}
                    if head_cache is not None:
                        cache = copy.deepcopy(head_cache)
                        cache.batch_repeat_interleave(len(part) * self.num_beams)
                        extra["past_key_values"] = cache
                    generated = model.generate(
                        input_ids=torch.tensor(ids, device=device),
                        attention_mask=torch.tensor(mask, device=device),
                        **kwargs,
                        **extra,
                    )
                    prompt_length = len(head) + width
                    out += [_strip(g[prompt_length:], eos, pad_id) for g in generated.tolist()]
                return out
        finally:
            model.train(was_training)

    def generate(
        self,
        model: torch.nn.Module,
        tokenizer: PreTrainedTokenizerBase,
        documents: Sequence[str],
        prefix: str,
        *,
        batch_size: int,
        use_prefix_cache: bool = True,
    ) -> list[str]:
        """Generated summaries, one per document."""
        ids = self.generate_ids(
            model,
            tokenizer,
            documents,
            prefix,
            batch_size=batch_size,
            use_prefix_cache=use_prefix_cache,
        )
        # one sequence of ids decodes to one str
        return [cast(str, tokenizer.decode(row, skip_special_tokens=True)).strip() for row in ids]

    # --- scoring ----------------------------------------------------------------------------------
    def outputs(
        self,
        model: torch.nn.Module,
        tokenizer: PreTrainedTokenizerBase,
        rows: Sequence[dict[str, Any]],
        prefix: str,
        *,
        batch_size: int,
        screening: bool = False,
    ) -> list[tuple[str | None, float, int]]:
        """Per row: the generated summary (none when screening: forward passes only), the
        summed loss over its summary tokens and their count."""
        rows = list(rows)
        losses = self.row_losses(model, tokenizer, rows, prefix, batch_size=batch_size)
        if screening:
            summaries: list[str | None] = [None] * len(rows)
        else:
            summaries = list(
                self.generate(
                    model, tokenizer, self._documents(rows), prefix, batch_size=batch_size
                )
            )
        return [(text, total, n) for text, (total, n) in zip(summaries, losses, strict=True)]

    def score(
        self, rows: Sequence[dict[str, Any]], outputs: Sequence[tuple[str | None, float, int]]
    ) -> Evaluation:
        """ROUGE-L F1 (primary) and ROUGE-1/2/Lsum of generated summaries; loss per summary
        token; mean summary lengths in words."""
        references = self._summaries(list(rows))
        predictions = [text or "" for text, _, _ in outputs]
        loss = _pooled_loss([(total, n) for _, total, n in outputs])
        metrics: dict[str, Any] = {
            name: round(value, 4) for name, value in rouge_scores(predictions, references).items()
        }
        metrics["loss"] = round(loss, 4)
        metrics["summary_words"] = round(_mean_words(predictions), 2)
        metrics["reference_words"] = round(_mean_words(references), 2)
        return Evaluation(
            score=metrics[PRIMARY], loss=loss, metrics=metrics, predictions=predictions
        )

    def screen_score(
        self,
        prefix: str,
        rows: Sequence[dict[str, Any]],
        outputs: Sequence[tuple[str | None, float, int]],
    ) -> Screening:
        """Minus the mean loss per summary token (forward passes only, no generation)."""
        loss = _pooled_loss([(total, n) for _, total, n in outputs])
        rows_loss = tuple(-total / n if n else 0.0 for _, total, n in outputs)
        return Screening(prefix, -loss, loss, rows_loss)

    def feedback(self, evaluation: Evaluation) -> tuple[str, dict[str, float]]:
        """ROUGE F1 and mean lengths in words: aggregate numbers only."""
        m = evaluation.metrics
        return "ROUGE F1 and mean summary length in words", {
            "ROUGE-1": m["rouge1"],
            "ROUGE-2": m["rouge2"],
            "ROUGE-L": m["rougeL"],
            "words per generated summary": m["summary_words"],
            "words per reference summary": m["reference_words"],
        }

    def predict(
        self,
        model: torch.nn.Module,
        tokenizer: PreTrainedTokenizerBase,
        rows: Sequence[dict[str, Any]],
        prefix: str,
        *,
        batch_size: int,
    ) -> list[dict[str, Any]]:
        """Per row: ``{"summary": text}``."""
        summaries = self.generate(
            model, tokenizer, self._documents(list(rows)), prefix, batch_size=batch_size
        )
        return [{"summary": s} for s in summaries]

    # --- what the TA and the saved model know ---------------------------------------------------
    def io(self) -> TaskIO:
        return TaskIO(
            family="abstractive summarization",
            reads="The network reads your instruction followed by one document and must write "
            "a short summary of it in its own words.",
            labels=[],
            metric="ROUGE-L F1 (0 to 1) of the generated summaries against reference summaries",
            screen_metric="score (minus the model's mean loss per reference-summary token; "
            "closer to 0 is better)",
            example="Summarize the news report in one sentence: who did what, where and when.",
        )

    def manifest(self) -> dict[str, Any]:
        return {
            **self.column_manifest(),
            "architecture": self.architecture,
            "max_length": self.max_length,
            "max_target_length": self.max_target_length,
            "max_new_tokens": self.max_new_tokens,
            "num_beams": self.num_beams,
        }

    @classmethod
    def from_manifest(cls, manifest: Manifest) -> SummarizationTask:
        from gpta.manifest import required

        manifest.require(
            "text_column",
            "label_column",
            "architecture",
            "max_target_length",
            "max_new_tokens",
            "num_beams",
        )
        return cls(
            text_column=required(manifest.text_column, "text_column"),
            label_column=required(manifest.label_column, "label_column"),
            architecture=required(manifest.architecture, "architecture"),
            max_length=manifest.max_length,
            max_target_length=required(manifest.max_target_length, "max_target_length"),
            max_new_tokens=required(manifest.max_new_tokens, "max_new_tokens"),
            num_beams=required(manifest.num_beams, "num_beams"),
        )


def _pad(sequences: Sequence[Sequence[int]], value: int) -> torch.Tensor:
    """Right-pad lists of ids into one tensor."""
    width = max((len(s) for s in sequences), default=0)
    return torch.tensor([[*s, *([value] * (width - len(s)))] for s in sequences], dtype=torch.long)


def _strip(ids: Sequence[int], eos: int | None, pad: int | None) -> list[int]:
    """Generated ids up to the first EOS, padding removed."""
    out = []
    for token in ids:
        if token == eos:
            break
        if token != pad:
            out.append(token)
    return out


def _mean_words(texts: Sequence[str]) -> float:
    return sum(len(t.split()) for t in texts) / max(len(texts), 1)


def _pooled_loss(losses: Sequence[tuple[float, int]]) -> float:
    """Mean loss per token over rows given as (summed loss, token count)."""
    return sum(total for total, _ in losses) / max(sum(n for _, n in losses), 1)
