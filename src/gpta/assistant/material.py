"""One shape for what the TA writes: a prefix, a word per label, a set of class cards.

Each kind of teaching material is proposed from the description and aggregate feedback,
screened (a :class:`~gpta.tasks.base.Screening`: a score, a loss, and one score per
screening row), adopted or refused by one rule (:func:`choose`, which is
:func:`gpta.selection.adopt` with the run's ``selection.margin`` and
``selection.adopt_confidence``), and recorded in one common shape (:meth:`Material.record`:
``kind``, ``name``, ``screen_score``, ``screen_loss``, then what only that kind has).

The kinds, and where their code lives:

- ``prefix``: :class:`gpta.assistant.prefix.PrefixCandidate`, chosen at round boundaries
  by :class:`gpta.synergy.SynergyLoop`;
- ``label_words``: :class:`gpta.assistant.label_words.WordCandidate`, chosen once before
  training;
- ``cards``: :class:`gpta.assistant.card_choice.CardCandidate`, chosen once before
  training by cross-validation on the user's rows.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar

from gpta.selection import adopt, best_of

if TYPE_CHECKING:
    from gpta.config import SelectionConfig
    from gpta.tasks.base import Screening

Kind = Literal["prefix", "label_words", "cards"]
KINDS: tuple[Kind, ...] = ("prefix", "label_words", "cards")


class Material(ABC):
    """A candidate piece of teaching material: what it is, what it holds, how it screened."""

    kind: ClassVar[Kind]

    @property
    @abstractmethod
    def name(self) -> str:
        """How the material is named in the history, the report and the terminal."""

    @property
    @abstractmethod
    def content(self) -> Any:
        """What the model is taught with: the prefix text, the words, the card set."""

    @property
    @abstractmethod
    def screening(self) -> Screening | None:
        """Its screened score (None: refused before screening, or not screened)."""

    @abstractmethod
    def details(self) -> dict[str, Any]:
        """What only this kind records (added to :meth:`record`'s common keys)."""

    def record(self) -> dict[str, Any]:
        """As written to ``history.jsonl`` (and ``cards.json``): the common keys ``kind``,
        ``name``, ``screen_score``, ``screen_loss``, then :meth:`details` (which may give
        the score keys in its own rounding)."""
        screening = self.screening
        return {
            "kind": self.kind,
            "name": self.name,
            "screen_score": None if screening is None else screening.score,
            "screen_loss": None if screening is None else screening.loss,
            **self.details(),
        }


M = TypeVar("M", bound=Material)


def choose(
    current: Material | None,
    challengers: Sequence[M],
    config: SelectionConfig,
    *,
    paired_test: bool = True,
) -> M | None:
    """The challenger that replaces ``current``, or None (``current`` stays).

    The one rule of every material (:func:`gpta.selection.adopt`): the best screened
    challenger must score higher than ``current`` by more than ``config.margin`` and pass a
    one-sided paired test on the same rows at ``config.adopt_confidence`` (Bonferroni over
    the challengers); ``current`` wins every tie. ``paired_test=False`` leaves the margin
    alone (the label-word step, as it was before the materials shared this function).
    With no screened ``current`` (nothing usable yet) the best screened challenger is
    taken. Challengers that were not screened never win.
    """
    screened = [(c, s) for c, s in ((c, c.screening) for c in challengers) if s is not None]
    if not screened:
        return None
    screenings = [s for _, s in screened]
    held = None if current is None else current.screening
    if held is None:
        winner = best_of(screenings)
    else:
        winner = adopt(
            held,
            screenings,
            margin=config.margin,
            confidence=config.adopt_confidence if paired_test else 0.0,
        )
    return next((c for c, s in screened if s is winner), None)
