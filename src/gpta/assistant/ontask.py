"""Is a proposal an instruction for the task, or talk about the job?

Small TAs often answer *about* the job instead of doing it: "Your task is to create a new
instruction that ...", "Please provide the dataset. I will provide the algorithm ...",
"To improve the accuracy of the chatbot, the new instruction should ...". One rule, a
function returning a reason (``None``: the proposal passes) that the parser records as the
rejection reason, so every rejection is counted in ``history.jsonl``.

:func:`meta_talk` -> ``meta_talk: <kind>: '<words>'``, the kinds being
``about_instructions`` (an instruction about writing instructions or prompts),
``asks_for_data`` ("please provide ...", "send me the data"), ``first_person`` (the TA
speaking of itself: "I will", "let me") and ``about_the_system`` (the model, the algorithm,
the dataset, the network, the chatbot or its accuracy as the subject). A sentence that is
merely off the point ("The best news for today is a story ...") passes: no rule told it from
short hints such as "Weigh emojis heavily." without rejecting those too.

Measured on recorded answers of the bundled SmolLM2-135M-Instruct
(``tests/data/ta_outputs_smollm2.json``): see docs/teaching-assistant.md.
"""

from __future__ import annotations

import re

_META_RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "about_instructions",
        re.compile(
            r"\b(?:instructions?|prompts?|prefix(?:es)?|template\s+sentences?)\b"
            r"|\bwrite\s+(?:a|an|one|the)\s+(?:new\s+)?(?:task|rule|sentence)\b",
            re.IGNORECASE,
        ),
    ),
    (
        "asks_for_data",
        re.compile(
            r"\bplease\s+(?:provide|give|send|share|upload|paste|enter|specify|attach)\b"
            r"|\b(?:provide|give|send|share|upload|show)\s+(?:me|us)\b"
            r"|\b(?:provide|share|send|upload|attach)\s+(?:the|your|a|some|more)\s+"
            r"(?:data|dataset|data\s*set|examples?|texts?|inputs?|files?|information|details)\b",
            re.IGNORECASE,
        ),
    ),
    (
        "first_person",
        re.compile(
            r"(?-i:\bI\b)\s*(?:will|would|can|could|am|have|need|think|hope|suggest|"
            r"recommend|want|propose|provide)\b|\b(?:should|shall|can|may|do)\s+(?-i:I)\b"
            r"|\bI['’](?:ll|d|m|ve)\b|\blet\s+me\b"
            r"|\bwe\s+(?:will|need|can|could|should|are\s+going)\b"
            r"|\bmy\s+(?:answer|suggestion|task)\b",
            re.IGNORECASE,
        ),
    ),
    (
        "about_the_system",
        re.compile(
            # "the model", "this classification network", "the CNN-MIBA model" (up to two
            # words between; a social network is not the system)
            r"\b(?:the|this|that|our|your)\s+(?:[\w-]+\s+){0,2}?"
            r"(?:models?|algorithms?|(?<!social\s)networks?|datasets?|data\s+sets?|chatbots?|"
            r"classifiers?|ai|training\s+data)\b"
            r"|\b(?:language|machine\s+learning|learning)\s+models?\b|\bneural\s+networks?\b"
            r"|\b(?:improve|increase|maximi[sz]e|boost|raise|optimi[sz]e)\s+(?:the\s+)?"
            r"(?:accuracy|performance|score|results?)\b",
            re.IGNORECASE,
        ),
    ),
)


def meta_talk(text: str) -> str | None:
    """``meta_talk: <kind>: '<words>'`` when ``text`` talks about the job instead of doing
    it (see the module doc for the kinds), else ``None``."""
    for kind, pattern in _META_RULES:
        found = pattern.search(text)
        if found is not None:
            return f"meta_talk: {kind}: {' '.join(found.group(0).split())!r}"
    return None
