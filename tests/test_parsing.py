"""Tests for gpta.assistant.parsing: cleaning TA completions into prefixes."""

from __future__ import annotations

import dataclasses

import pytest

from gpta.assistant.parsing import (
    ParsedProposal,
    default_count_tokens,
    normalize_prefix,
    parse_proposal,
    parse_proposals,
)

LABELS = ("negative", "neutral", "positive")


def parse(raw: str, **kwargs: object) -> ParsedProposal:
    kwargs.setdefault("label_names", LABELS)
    return parse_proposal(raw, **kwargs)  # type: ignore[arg-type]


def accepted(raw: str, **kwargs: object) -> str:
    result = parse(raw, **kwargs)
    assert result.valid, f"rejected: {result.reason!r} for {raw!r}"
    assert result.reason is None
    assert result.prefix is not None
    return result.prefix


def rejected(raw: str, **kwargs: object) -> str:
    result = parse(raw, **kwargs)
    assert not result.valid, f"accepted {result.prefix!r} for {raw!r}"
    assert result.prefix is None
    assert result.reason is not None
    return result.reason


# ------------------------------------------------------------------------------------------
# ParsedProposal
# ------------------------------------------------------------------------------------------


def test_parsed_proposal_valid_and_code() -> None:
    ok = ParsedProposal(raw="x", prefix="Classify it.", reason=None)
    bad = ParsedProposal(raw="x", prefix=None, reason="names_label: 'positive'")
    assert ok.valid is True
    assert ok.code is None
    assert ok.truncated is False
    assert bad.valid is False
    assert bad.code == "names_label"


def test_parsed_proposal_is_frozen() -> None:
    result = ParsedProposal(raw="x", prefix="Classify it.", reason=None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.prefix = "other"  # type: ignore[misc]


def test_raw_is_kept_verbatim() -> None:
    raw = "  Sure! Here's the prefix:\n**Classify the tweet's sentiment.**<|im_end|>junk"
    result = parse(raw)
    assert result.raw == raw
    assert result.prefix == "Classify the tweet's sentiment."


# ------------------------------------------------------------------------------------------
# Real SmolLM2-135M-Instruct outputs
# ------------------------------------------------------------------------------------------


def test_real_output_make_positive_is_a_label_leak() -> None:
    raw = (
        "Here's an example of how to prepend a sentence to each tweet:\n\n"
        "Sentence Preposition to Pre-Process:\nMake positive, make positive\n\n"
        "This sentence prepends a sentence that helps the model to create a prediction"
    )
    assert rejected(raw) == "names_label: 'positive'"


def test_real_output_numbered_preprocess_takes_first_item_then_is_meta_talk() -> None:
    raw = (
        "1. Preprocess the data: Remove any features that are not relevant to the task, and use "
        "this as an initial pre-processing step to pre-process the data for the model.\n"
        "2. Preprocess the data: Preprocess"
    )
    # the first item is what is checked (the second would be too short), and it talks
    # about the model: meta-talk
    assert rejected(raw) == "meta_talk: about_the_system: 'the model'"


def test_real_output_listing_labels_is_legal() -> None:
    raw = (
        "The model should classify tweets as either positive, negative, or neutral based on the "
        "given dataset."
    )
    assert parse(raw).code == "meta_talk"  # not names_label: listing the labels is fine
    plain = "Classify tweets as either positive, negative, or neutral based on their wording."
    assert accepted(plain) == plain


def test_real_output_prepend_hint_drops_examples() -> None:
    raw = (
        'Prepend to each tweet a "positive sentiment" or "negative sentiment" as a hint to the '
        'model.\n\nExample: "Positive sentiment"\n\nHere is an example of how to add a tweet to '
        "the model:\n\n"
    )
    assert rejected(raw) == "meta_talk: about_the_system: 'the model'"
    assert accepted(raw.replace(" as a hint to the model", "")) == (
        'Prepend to each tweet a "positive sentiment" or "negative sentiment".'
    )


# ------------------------------------------------------------------------------------------
# Rule 1: special tokens and markdown
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            "<|im_start|>assistant\nClassify the tweet's sentiment.<|im_end|>",
            "Classify the tweet's sentiment.",
        ),
        (
            "Classify the tweet's sentiment.<|im_end|>\n<|im_start|>user\nThanks!",
            "Classify the tweet's sentiment.",
        ),
        (
            "Classify the tweet's sentiment.<|endoftext|>Tweet: I love it",
            "Classify the tweet's sentiment.",
        ),
        ("<s>[INST] Read the tweet carefully. [/INST]</s>", "Read the tweet carefully."),
        ("<|im_end|>\nFocus on the emotional tone.", "Focus on the emotional tone."),
        (
            "<|start_header_id|>assistant<|end_header_id|>\n\nFocus on the tone.<|eot_id|>",
            "Focus on the tone.",
        ),
        ("<start_of_turn>model\nFocus on the tone.<end_of_turn>", "Focus on the tone."),
        (
            "Focus on the <|reserved_special_token_3|> emotional tone.",
            "Focus on the emotional tone.",
        ),
    ],
)
def test_special_tokens_are_stripped(raw: str, expected: str) -> None:
    assert accepted(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            "**Classify the emotional tone of the tweet.**",
            "Classify the emotional tone of the tweet.",
        ),
        ("__Read the tweet closely.__", "Read the tweet closely."),
        ("_Read the tweet closely._", "Read the tweet closely."),
        ("*Read the tweet closely.*", "Read the tweet closely."),
        ("`Read the tweet closely.`", "Read the tweet closely."),
        ("Read the `tweet` closely.", "Read the tweet closely."),
        ("# Read the tweet closely", "Read the tweet closely"),
        ("### Read the tweet closely", "Read the tweet closely"),
        ("- Read the tweet closely", "Read the tweet closely"),
        ("* Read the tweet closely", "Read the tweet closely"),
        ("• Read the tweet closely", "Read the tweet closely"),
        ("+ Read the tweet closely", "Read the tweet closely"),
        ("1. Read the tweet closely", "Read the tweet closely"),
        ("12) Read the tweet closely", "Read the tweet closely"),
        ("(1) Read the tweet closely", "Read the tweet closely"),
        ("> Read the tweet closely", "Read the tweet closely"),
        ("- **1.** Read the tweet closely", "Read the tweet closely"),
        ("```\nRead the tweet closely.\n```", "Read the tweet closely."),
        ("```text\nRead the tweet closely.\n```", "Read the tweet closely."),
        ("---\nRead the tweet closely.\n---", "Read the tweet closely."),
    ],
)
def test_markdown_is_stripped(raw: str, expected: str) -> None:
    assert accepted(raw) == expected


def test_numbers_inside_text_are_kept() -> None:
    assert (
        accepted("Rate the tweet on a 1. to 5. scale of tone")
        == "Rate the tweet on a 1. to 5. scale of tone"
    )
    assert (
        accepted("Give 2 reasons, then decide the tone.") == "Give 2 reasons, then decide the tone."
    )


# ------------------------------------------------------------------------------------------
# Rule 2: lead-ins and reasoning
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "Prefix: Focus on the emotional tone.",
        "prefix : Focus on the emotional tone.",
        "Instruction: Focus on the emotional tone.",
        "New prefix: Focus on the emotional tone.",
        "Improved instruction: Focus on the emotional tone.",
        "New Prefix 2: Focus on the emotional tone.",
        "Prompt: Focus on the emotional tone.",
        "Prompt - Focus on the emotional tone.",
        "Answer: Focus on the emotional tone.",
        "Instruction for the model: Focus on the emotional tone.",
        "Prefix to prepend: Focus on the emotional tone.",
        "Here is an improved prefix: Focus on the emotional tone.",
        "Here's a better instruction: Focus on the emotional tone.",
        "Here’s my new prompt: Focus on the emotional tone.",
        "Here is the prefix you asked for: Focus on the emotional tone.",
        "Sure! Here's an improved prefix: Focus on the emotional tone.",
        "Certainly! Here is a new instruction: Focus on the emotional tone.",
        "Of course. New prefix: Focus on the emotional tone.",
        "**New prefix:** Focus on the emotional tone.",
        "- **Prefix:** Focus on the emotional tone.",
        'Prefix: "Focus on the emotional tone."',
        "I suggest: Focus on the emotional tone.",
    ],
)
def test_lead_ins_are_dropped(raw: str) -> None:
    assert accepted(raw) == "Focus on the emotional tone."


@pytest.mark.parametrize(
    "raw",
    [
        "Sure!\nFocus on the emotional tone.",
        "Sure! I can help with that.\nFocus on the emotional tone.",
        "Certainly, I'd be happy to help.\n\nFocus on the emotional tone.",
        "Of course! Here is what I came up with.\nFocus on the emotional tone.",
        'Absolutely!\n\n"Focus on the emotional tone."',
        "Okay, let's improve it.\nFocus on the emotional tone.",
        "Here's a better prefix.\nFocus on the emotional tone.",
        "Here is an improved prefix:\nFocus on the emotional tone.",
        "Sure, here's a revised prefix for the tweet sentiment classifier:\n\n"
        "Focus on the emotional tone.",
        "New instruction for the model:\n\n- Focus on the emotional tone.",
    ],
)
def test_chatter_lines_are_skipped(raw: str) -> None:
    assert accepted(raw) == "Focus on the emotional tone."


@pytest.mark.parametrize(
    "raw",
    [
        "Focus on the emotional tone.\nExplanation: tone carries the sentiment.",
        "Focus on the emotional tone.\n\nReasoning: the model misses sarcasm.\nMore text here.",
        "Focus on the emotional tone.\nNote: this is short.",
        "Focus on the emotional tone.\n**Explanation:** tone matters.",
        "Focus on the emotional tone.\nThis prefix tells the model what to look for.",
        "Focus on the emotional tone.\nThis instruction helps with sarcasm.",
        "Focus on the emotional tone. Explanation: tone carries the sentiment.",
        "Focus on the emotional tone. (Note: keep it short)",
        "Focus on the emotional tone. This prefix helps the model.",
        "Focus on the emotional tone. I hope this helps!",
    ],
)
def test_reasoning_is_dropped(raw: str) -> None:
    assert accepted(raw) == "Focus on the emotional tone."


@pytest.mark.parametrize(
    "raw",
    [
        "Explanation: Focus on the emotional tone.",
        "Note:\nFocus on the emotional tone.",
        "This prefix tells the model to focus on the emotional tone.\nFocus on the emotional tone.",
        "Reasoning: the model is confused.\n\nPrefix: Focus on the emotional tone.",
    ],
)
def test_everything_after_reasoning_is_dropped(raw: str) -> None:
    assert rejected(raw) == "empty"


def test_reasoning_after_the_instruction_does_not_leak_labels() -> None:
    raw = "Focus on the emotional tone.\nExplanation: the answer is positive."
    assert accepted(raw) == "Focus on the emotional tone."


def test_words_like_note_inside_an_instruction_are_kept() -> None:
    raw = "Take note of sarcasm and irony in the tweet."
    assert accepted(raw) == raw


def test_this_tweet_is_not_reasoning() -> None:
    raw = "This tweet may be sarcastic; read it twice."
    assert accepted(raw) == raw


# ------------------------------------------------------------------------------------------
# Rule 3: choosing a line
# ------------------------------------------------------------------------------------------


def test_first_plausible_line_wins() -> None:
    raw = "\n\n  \n-\n??\nFocus on the emotional tone.\nLook for sarcasm."
    assert accepted(raw) == "Focus on the emotional tone."


def test_lead_in_line_ending_in_colon_takes_next_line() -> None:
    raw = "Sentence Preposition to Pre-Process:\nLook for sarcasm and irony."
    assert accepted(raw) == "Look for sarcasm and irony."


def test_several_lead_in_lines_are_skipped() -> None:
    raw = "Here's my answer:\nThe new prefix would be:\n\n  Look for sarcasm and irony.\n"
    assert accepted(raw) == "Look for sarcasm and irony."


def test_lone_colon_line_is_kept_when_nothing_follows() -> None:
    raw = "Classify the sentiment of the following tweet:"
    assert accepted(raw) == raw


def test_data_lines_are_not_chosen() -> None:
    raw = "Tweet: I love this phone so much\nFocus on the emotional tone."
    assert accepted(raw) == "Focus on the emotional tone."


def test_improved_prefix_after_original_is_chosen() -> None:
    raw = (
        "Original prefix: Classify the tweet.\n"
        "Improved prefix: Classify the tweet, paying attention to sarcasm."
    )
    assert accepted(raw) == "Classify the tweet, paying attention to sarcasm."


def test_bulleted_list_takes_first_item() -> None:
    raw = "- Look for sarcasm.\n- Weigh emojis heavily.\n- Ignore hashtags."
    assert accepted(raw) == "Look for sarcasm."


def test_example_lines_are_skipped() -> None:
    raw = "For example, a tweet with hearts is happy.\nWeigh emojis heavily."
    assert accepted(raw) == "Weigh emojis heavily."


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   \n\n\t",
        "<|im_end|>",
        "```\n```",
        "**",
        "Sure!",
        "Here's a better prefix:\n\n",
        "- \n1.\n",
    ],
)
def test_nothing_left_is_empty(raw: str) -> None:
    assert rejected(raw) == "empty"


def test_line_with_fewer_than_three_word_chars_is_skipped() -> None:
    raw = "OK\nah\nWeigh emojis heavily."
    assert accepted(raw) == "Weigh emojis heavily."


# ------------------------------------------------------------------------------------------
# Rule 4: quotes and whitespace
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('"Weigh emojis heavily."', "Weigh emojis heavily."),
        ("'Weigh emojis heavily.'", "Weigh emojis heavily."),
        ("“Weigh emojis heavily.”", "Weigh emojis heavily."),
        ("‘Weigh emojis heavily.’", "Weigh emojis heavily."),
        ("«Weigh emojis heavily.»", "Weigh emojis heavily."),
        ('"Weigh emojis heavily".', "Weigh emojis heavily."),
        ('"Weigh emojis heavily.', "Weigh emojis heavily."),
        ('Weigh emojis heavily."', "Weigh emojis heavily."),
        ("“Weigh emojis heavily.", "Weigh emojis heavily."),
        ("Weigh emojis heavily.”", "Weigh emojis heavily."),
        ('""Weigh emojis heavily.""', "Weigh emojis heavily."),
        ("\"'Weigh emojis heavily.'\"", "Weigh emojis heavily."),
        ("'Weigh the tweet's emojis heavily.'", "Weigh the tweet's emojis heavily."),
        ("‘Weigh the tweet’s emojis heavily.’", "Weigh the tweet’s emojis heavily."),
        ("  Weigh   emojis \t heavily.  ", "Weigh emojis heavily."),
    ],
)
def test_surrounding_quotes_and_whitespace(raw: str, expected: str) -> None:
    assert accepted(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        'Treat "lol" and "lmao" as signs of humour.',
        '"lol" and "lmao" are signs of humour.',
        "“lol” and “lmao” are signs of humour.",
        "Don't ignore the user's emojis.",
    ],
)
def test_inner_quotes_are_kept(raw: str) -> None:
    assert accepted(raw) == raw


# ------------------------------------------------------------------------------------------
# Rule 5: token cap
# ------------------------------------------------------------------------------------------


def test_default_count_tokens_counts_words() -> None:
    assert default_count_tokens("one two  three\nfour") == 4
    assert default_count_tokens("") == 0


def test_under_the_cap_is_not_truncated() -> None:
    result = parse("Weigh emojis heavily and look for sarcasm.", max_tokens=7)
    assert result.prefix == "Weigh emojis heavily and look for sarcasm."
    assert result.truncated is False


def test_cap_keeps_whole_sentences() -> None:
    raw = "Weigh emojis heavily. Look for sarcasm in every tweet. Ignore hashtags."
    result = parse(raw, max_tokens=9)
    assert result.valid
    assert result.prefix == "Weigh emojis heavily. Look for sarcasm in every tweet."
    assert result.truncated is True


def test_cap_exactly_at_sentence_boundary() -> None:
    raw = "Weigh emojis heavily. Look for sarcasm."
    result = parse(raw, max_tokens=3)
    assert result.prefix == "Weigh emojis heavily."
    assert result.truncated is True


def test_cap_cuts_first_sentence_at_word_boundary() -> None:
    raw = "Read the tweet slowly, weigh every emoji, and then decide. Ignore hashtags."
    result = parse(raw, max_tokens=5)
    assert result.prefix == "Read the tweet slowly, weigh"
    assert result.truncated is True


def test_cap_with_custom_token_counter() -> None:
    def count_chars(text: str) -> int:
        return len(text)

    raw = "Weigh emojis. Look for sarcasm in every tweet."
    result = parse(raw, max_tokens=20, count_tokens=count_chars)
    assert result.prefix == "Weigh emojis."
    assert result.truncated is True

    result = parse("Weigh every emoji heavily", max_tokens=17, count_tokens=count_chars)
    assert result.prefix == "Weigh every emoji"
    assert result.truncated is True


def test_custom_counter_decides_truncation_not_word_count() -> None:
    def subwords(text: str) -> int:
        return sum(1 + len(word) // 4 for word in text.split())

    raw = "Consider sarcasm. Consider emojis."
    assert parse(raw, max_tokens=48, count_tokens=subwords).truncated is False
    assert subwords(raw) == 11
    result = parse(raw, max_tokens=6, count_tokens=subwords)
    assert result.prefix == "Consider sarcasm."
    assert result.truncated is True


def test_cap_default_is_48_words() -> None:
    words = [f"word{i}" for i in range(60)]  # distinct words: "word word ..." is repetitive
    result = parse(" ".join(words))
    assert result.truncated is True
    assert result.prefix == " ".join(words[:48])


def test_cut_removes_dangling_punctuation() -> None:
    result = parse("Read the tweet slowly, weigh every emoji and decide", max_tokens=4)
    assert result.prefix == "Read the tweet slowly"


def test_first_word_over_the_cap_is_too_long() -> None:
    result = parse("Supercalifragilistic emojis", max_tokens=5, count_tokens=len)
    assert result.valid is False
    assert result.code == "too_long"
    assert result.truncated is True


def test_max_tokens_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_tokens"):
        parse("Weigh emojis heavily.", max_tokens=0)


def test_truncation_is_reported_on_rejection_too() -> None:
    raw = "The tweet is positive. " + " ".join(["filler"] * 60)
    result = parse(raw, max_tokens=10)
    assert result.code == "names_label"
    assert result.truncated is True


# ------------------------------------------------------------------------------------------
# Rule 6: rejections
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["Consider.", "Sarcasm", "  'Think!'  ", "Prefix: Tone"])
def test_too_short(raw: str) -> None:
    assert rejected(raw) == "too_short: 1 word"


def test_two_words_is_enough() -> None:
    assert accepted("Consider sarcasm.") == "Consider sarcasm."


@pytest.mark.parametrize(
    ("raw", "junk"),
    [
        ("Classify the sentiment: {text}", "{text}"),
        ("Tweet: {tweet}\nSentiment: {label}", None),
        ("Classify {{ tweet }} carefully", "{{"),
        ("Read {} and decide.", "{}"),
        ("Use ```python``` to decide", "```"),
        ("Look for sarcasm <|im_", "<|"),
        ("Classify the tweet <text> carefully", "<text>"),
        ("Classify the tweet [TEXT] carefully", "[TEXT]"),
        ("Classify the tweet ${input} carefully", "${"),
    ],
)
def test_template_junk(raw: str, junk: str | None) -> None:
    reason = parse(raw).reason
    assert reason is not None
    assert reason.startswith("template_junk")
    if junk is not None:
        assert reason == f"template_junk: {junk!r}"


@pytest.mark.parametrize(
    ("raw", "label"),
    [
        ("positive", "positive"),
        ("Positive.", "positive"),
        ('"NEGATIVE"', "negative"),
        ("Positive sentiment.", "positive"),
        ("It's negative!", "negative"),
        ("Answer: positive", "positive"),
        ("Sentiment: Negative", "negative"),
        ("Label = neutral", "neutral"),
        ("The answer is positive.", "positive"),
        ("The sentiment is clearly negative.", "negative"),
        ("Output: 'neutral'", "neutral"),
        ("The prediction should be positive.", "positive"),
        ("The tweet is positive.", "positive"),
        ("This tweet is negative.", "negative"),
        ("Most tweets are positive, so keep that in mind.", "positive"),
        ("Read the tweet. It's definitely negative.", "negative"),
        ("The text seems neutral overall.", "neutral"),
        ("Tweets about sports -> positive", "positive"),
        ("Tweets about sports => positive", "positive"),
        ("Classify the following tweet: positive", "positive"),
        ("Tweet mood: negative. Classify it.", "negative"),
        ("Classify the tweet as positive.", "positive"),
        ("Label it neutral.", "neutral"),
        ("Always answer negative.", "negative"),
        ("Say positive.", "positive"),
        ("Make positive, make positive", "positive"),
        ("Is the tweet happy? The answer is positive.", "positive"),
        ("Sentiment: very positive", "very positive"),
    ],
)
def test_names_label(raw: str, label: str) -> None:
    labels = (*LABELS, "very positive")
    assert rejected(raw, label_names=labels) == f"names_label: {label!r}"


@pytest.mark.parametrize(
    "raw",
    [
        "Classify the sentiment as negative, neutral or positive.",
        "Classify the sentiment as negative, neutral, or positive.",
        "Is this review positive or negative?",
        "Is this tweet positive?",
        "Is the tone negative, or is it something else?",
        "Decide whether the tweet is positive.",
        "Check if the text is negative before answering.",
        "If the tweet is negative, look for sarcasm first.",
        "Answer positive if the tweet praises something.",
        "Pay attention to negative words and sarcasm.",
        "Positive emojis can hide sarcasm.",
        "Label negative tweets carefully.",
        "Choose one of: positive/negative/neutral.",
        "Answer with positive, negative or neutral.",
        "The label is one of positive | negative | neutral.",
        "Sentiment can be positive, neutral and negative.",
        "Decide between 'positive' and 'negative' sentiment.",
        "Rate the mood from negative to positive.",
        "Stay neutral and read the tweet twice.",
        "Positively charged words matter; weigh them.",
        "Treat non-negative numbers as neutral information.",
    ],
)
def test_label_mentions_that_are_legal(raw: str) -> None:
    assert accepted(raw) == raw


STAR_IDS = ["0", "1", "2", "3", "4"]


@pytest.mark.parametrize(
    "raw",
    [
        # the yelp description's own mapping, as the TA copies it
        "Rate the review: 0 = 1 star, 1 = 2 stars, 2 = 3 stars, 3 = 4 stars, 4 = 5 stars.",
        "Give the star rating as an id: 0 means 1 star and 4 means 5 stars.",
        "Answer 0 for a terrible review, 1 for bad, 2 for okay, 3 for good and 4 for great.",
        "Use 0: terrible, 1: bad, 2: okay, 3: good, 4: great.",
    ],
)
def test_opaque_labels_may_be_defined(raw: str) -> None:
    """An instruction that explains what the ids mean is what opaque labels need."""
    assert accepted(raw, label_names=STAR_IDS) == raw


@pytest.mark.parametrize(
    ("raw", "labels", "label"),
    [
        ("The answer is 1.", STAR_IDS, "1"),
        ("Rating: 4 stars.", STAR_IDS, "4"),
        ("The tweet is positive: it praises the phone.", LABELS, "positive"),
        ("Classify it as positive (happy).", LABELS, "positive"),
    ],
)
def test_a_definition_marker_does_not_excuse_a_giveaway(
    raw: str, labels: list[str], label: str
) -> None:
    assert rejected(raw, label_names=labels) == f"names_label: {label!r}"


def test_label_matching_is_case_insensitive_and_whole_word() -> None:
    assert rejected("THE TWEET IS POSITIVE.") == "names_label: 'positive'"
    assert accepted("The tweet is positively wild; read it twice.")


def test_label_reason_uses_label_as_given() -> None:
    assert rejected("The answer is pos.", label_names=["Neg", "Pos"]) == "names_label: 'Pos'"


def test_multi_word_and_underscore_labels() -> None:
    labels = ["not_sarcastic", "sarcastic"]
    assert (
        rejected("The answer is not sarcastic.", label_names=labels)
        == "names_label: 'not_sarcastic'"
    )
    assert rejected("Answer: not-sarcastic", label_names=labels) == "names_label: 'not_sarcastic'"
    assert rejected("The answer is sarcastic.", label_names=labels) == "names_label: 'sarcastic'"
    assert accepted("Decide if the tweet is sarcastic or not sarcastic.", label_names=labels)


def test_other_label_sets() -> None:
    nli = ["entailment", "neutral", "contradiction"]
    assert (
        rejected("The answer is contradiction.", label_names=nli) == "names_label: 'contradiction'"
    )
    assert accepted("Decide between entailment, neutral and contradiction.", label_names=nli)
    yes_no = ["yes", "no"]
    assert rejected("Answer: yes", label_names=yes_no) == "names_label: 'yes'"
    assert accepted("Answer yes or no.", label_names=yes_no) == "Answer yes or no."


def test_no_labels_means_no_label_check() -> None:
    assert accepted("The tweet is positive.", label_names=[]) == "The tweet is positive."


def test_label_names_must_not_be_a_string() -> None:
    with pytest.raises(TypeError):
        parse_proposal("Consider sarcasm.", label_names="positive")


def test_label_check_runs_after_cleaning() -> None:
    raw = "Sure! Here's the prefix:\n**Answer:** `positive`\n\nExplanation: it is happy."
    assert rejected(raw) == "names_label: 'positive'"


def test_duplicate_of_previous() -> None:
    previous = ["Weigh emojis heavily.", "Look for sarcasm."]
    assert rejected("weigh   EMOJIS heavily", previous=previous) == "duplicate: of previous"
    assert rejected('Prefix: "Look for sarcasm!"', previous=previous) == "duplicate: of previous"
    assert accepted("Look for irony.", previous=previous) == "Look for irony."


def test_previous_can_be_a_generator_and_skips_empty() -> None:
    previous = (p for p in ["", "Weigh emojis heavily."])
    assert rejected("Weigh emojis heavily.", previous=previous) == "duplicate: of previous"


def test_rejection_order_prefers_label_leak_over_length() -> None:
    assert rejected("Positive") == "names_label: 'positive'"
    assert rejected("{text} is positive") == "template_junk: '{text}'"


# ------------------------------------------------------------------------------------------
# normalize_prefix
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("Classify the Tweet.", "classify the tweet"),
        ('  "Classify   the\ttweet!"  ', "classify the tweet"),
        ("“Classify the tweet…”", "classify the tweet"),
        ("`Classify the tweet`", "classify the tweet"),
        ("(Classify the tweet)", "classify the tweet"),
        ("Classify the tweet's tone.", "classify the tweet's tone"),
        ("STRASSE", "strasse"),
        ("Straße", "strasse"),
        ("...", ""),
        ("", ""),
    ],
)
def test_normalize_prefix(text: str, key: str) -> None:
    assert normalize_prefix(text) == key


def test_normalize_prefix_keeps_inner_punctuation() -> None:
    assert normalize_prefix("Read, then decide.") == "read, then decide"
    assert normalize_prefix("Read, then decide.") != normalize_prefix("Read then decide.")


# ------------------------------------------------------------------------------------------
# parse_proposals (batch)
# ------------------------------------------------------------------------------------------


def test_batch_rejects_duplicates_of_earlier_items() -> None:
    raws = [
        "Prefix: Weigh emojis heavily.",
        "Look for sarcasm.",
        '"weigh emojis HEAVILY!"',
        "Sure! Here's one:\nLook for sarcasm.",
        "Ignore hashtags.",
    ]
    results = parse_proposals(raws, label_names=LABELS)
    assert [r.raw for r in results] == raws
    assert [r.prefix for r in results] == [
        "Weigh emojis heavily.",
        "Look for sarcasm.",
        None,
        None,
        "Ignore hashtags.",
    ]
    assert results[2].reason == "duplicate: of batch item 0"
    assert results[3].reason == "duplicate: of batch item 1"


def test_batch_checks_previous_too() -> None:
    results = parse_proposals(
        ["Look for sarcasm.", "Ignore hashtags."],
        label_names=LABELS,
        previous=["look for sarcasm"],
    )
    assert results[0].reason == "duplicate: of previous"
    assert results[1].valid


def test_batch_rejected_items_do_not_block_later_ones() -> None:
    raws = ["The tweet is positive.", "The tweet is positive.", "Look for sarcasm."]
    results = parse_proposals(raws, label_names=LABELS)
    assert [r.code for r in results] == ["names_label", "names_label", None]


def test_batch_generator_previous_is_read_once() -> None:
    previous = (p for p in ["Ignore hashtags."])
    results = parse_proposals(
        ["Ignore hashtags.", "Look for sarcasm.", "Ignore hashtags!"],
        label_names=LABELS,
        previous=previous,
    )
    assert [r.reason for r in results] == ["duplicate: of previous", None, "duplicate: of previous"]


def test_batch_duplicate_after_truncation() -> None:
    raws = ["Weigh emojis heavily. Look for sarcasm.", "Weigh emojis heavily. Ignore hashtags."]
    results = parse_proposals(raws, label_names=LABELS, max_tokens=4)
    assert results[0].prefix == "Weigh emojis heavily."
    assert results[0].truncated is True
    assert results[1].reason == "duplicate: of batch item 0"


def test_batch_custom_counter_is_used() -> None:
    calls: list[str] = []

    def counter(text: str) -> int:
        calls.append(text)
        return len(text.split())

    results = parse_proposals(
        ["Look for sarcasm.", "Ignore hashtags."], label_names=LABELS, count_tokens=counter
    )
    assert all(r.valid for r in results)
    assert "Look for sarcasm." in calls
    assert "Ignore hashtags." in calls


def test_batch_empty() -> None:
    assert parse_proposals([], label_names=LABELS) == []


def test_batch_matches_single_parse() -> None:
    raws = [
        "<|im_start|>assistant\nNew prefix: Consider emojis.<|im_end|>",
        "Answer: negative",
        "Classify the sentiment: {text}",
        "?!",
    ]
    batch = parse_proposals(raws, label_names=LABELS)
    single = [parse_proposal(r, label_names=LABELS) for r in raws]
    assert batch == single
    assert [r.code for r in batch] == [None, "names_label", "template_junk", "empty"]


# ------------------------------------------------------------------------------------------
# More realistic tiny-TA outputs
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            "Sure, here's a revised prefix for the tweet sentiment classifier:\n\n"
            '"Analyze the emotional tone of the tweet and decide whether it is positive, negative '
            'or neutral."\n\nThis prefix encourages the model to consider tone.',
            "Analyze the emotional tone of the tweet and decide whether it is positive, negative "
            "or neutral.",
        ),
        (
            "<|im_start|>assistant\nPrefix: Read the tweet and tell whether it's happy or sad."
            "<|im_end|>\n<|im_start|>user",
            "Read the tweet and tell whether it's happy or sad.",
        ),
        (
            "  **Instruction:** _Classify the sentiment of this tweet._  ",
            "Classify the sentiment of this tweet.",
        ),
        (
            "Here is an improved prefix:\n\n1. Pay close attention to sarcasm and emojis.\n"
            "2. Consider the context.\n\nI hope this helps!",
            "Pay close attention to sarcasm and emojis.",
        ),
        (
            "### New Prefix\n\n> Focus on words that express feelings, such as love or hate.",
            "Focus on words that express feelings, such as love or hate.",
        ),
        (
            "Certainly!\n\nPrompt: `Identify the overall mood of the tweet.`",
            "Identify the overall mood of the tweet.",
        ),
        ("new prefix - Read between the lines.", "Read between the lines."),
    ],
)
def test_realistic_accepted(raw: str, expected: str) -> None:
    assert accepted(raw) == expected


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("Tweet: I love it!\nSentiment: positive", "names_label"),
        ("The answer is: negative<|im_end|>", "names_label"),
        ("Sure! Here's the prefix:\n\nPositive\n\nExplanation: the tweet is happy", "names_label"),
        ("Prefix: {tweet} Sentiment:", "template_junk"),
        ("```python\nprefix = f'{text}'\n```", "template_junk"),
        ("Sure! I'd be happy to help you with that.", "empty"),
        ("Here's an example of how to prepend a sentence to each tweet:\n\n", "empty"),
        ("1.\n2.\n3.", "empty"),
        ("Prefix: Hmm", "too_short"),
    ],
)
def test_realistic_rejected(raw: str, code: str) -> None:
    assert parse(raw).code == code


def test_runaway_repetition_is_rejected_but_ordinary_text_is_not():
    from gpta.assistant.parsing import parse_proposal

    runaway = parse_proposal("word " * 40, label_names=["negative", "positive"], max_tokens=12)
    assert runaway.prefix is None and runaway.reason.startswith("repetitive")
    looped = parse_proposal("the the the the review the the", label_names=["negative", "positive"])
    assert looped.prefix is None and looped.code == "repetitive"
    fine = parse_proposal(
        "Read the review and judge how the writer feels about the product.",
        label_names=["negative", "positive"],
    )
    assert fine.prefix is not None


# --------------------------------------------------------------------------------------------
# The slot (cloze head): a template sentence must hold {mask} exactly once
# --------------------------------------------------------------------------------------------

SLOT = "{mask}"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("It was {mask}.", "It was {mask}."),
        (
            'Sure! Here is the template: "All in all, it sounds [MASK]."',
            "All in all, it sounds {mask}.",
        ),
        ("Sentence: The writer feels <mask> about it.", "The writer feels {mask} about it."),
        (
            "**Template sentence:** Honestly, the author sounds {mask}.",
            "Honestly, the author sounds {mask}.",
        ),
        ("The tweet is ___ overall.", "The tweet is {mask} overall."),
        ("Overall the mood is {{mask}} here.", "Overall the mood is {mask} here."),
        ("Overall the mood is { MASK }.", "Overall the mood is {mask}."),
    ],
)
def test_slot_kept_and_blank_spellings_become_the_slot(raw: str, expected: str) -> None:
    result = parse(raw, slot=SLOT)
    assert result.valid and result.prefix == expected and not result.repaired


def test_a_proposal_without_the_slot_is_repaired():
    result = parse("Classify the sentiment of this tweet", slot=SLOT)
    assert result.valid and result.repaired
    assert result.prefix == "Classify the sentiment of this tweet. It was {mask}."
    colon = parse("Overall sentiment of the tweet:", slot=SLOT)
    assert colon.prefix == "Overall sentiment of the tweet: {mask}." and colon.repaired
    # Without a slot the same text is left alone.
    plain = parse("Classify the sentiment of this tweet")
    assert plain.prefix == "Classify the sentiment of this tweet" and not plain.repaired


def test_the_repair_fits_under_the_token_cap():
    raw = "Read the tweet slowly and think about how the author feels about the topic today"
    result = parse(raw, slot=SLOT, max_tokens=10)
    assert result.valid and result.repaired and result.truncated
    assert result.prefix.endswith(". It was {mask}.")
    assert default_count_tokens(result.prefix) <= 10
    # No room for the repair at all: rejected, not cut into the slot.
    assert parse("Classify the tweet", slot=SLOT, max_tokens=3).code == "too_long"


def test_slot_rejections():
    assert parse("{mask} or {mask}, which fits?", slot=SLOT).code == "slot"
    assert parse("Use {text} to fill {mask}.", slot=SLOT).code == "template_junk"
    # The TA's own words are still checked: giving the answer away is no template.
    assert parse("positive", slot=SLOT).code == "names_label"
    assert parse("The tweet is positive.", slot=SLOT).code == "names_label"
    assert parse("{mask}.", slot=SLOT).code == "too_short"
    # Without a slot, {mask} stays template junk (the sequence head's behaviour).
    assert parse("It was {mask}.").code == "template_junk"


def test_slot_duplicates_compare_the_normalised_template():
    results = parse_proposals(
        ["It was {mask}.", "it was [MASK]", "Classify the tweet."],
        label_names=LABELS,
        previous=["Classify the tweet. It was {mask}."],
        slot=SLOT,
    )
    assert [r.code for r in results] == [None, "duplicate", "duplicate"]
