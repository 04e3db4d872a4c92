"""The lm-verbalizer and cloze classification heads (gpta.tasks.heads).

Tiny random models built here (with the bundled tokenizers) test the mechanics: the input
layout, truncation, scores against a slow full forward, padding, learning, save/load.
One test reads the real bundled SmolLM2 to check that an instruction already moves it.
"""

from __future__ import annotations

import copy
import json

import pytest
import torch

from gpta.bundled import resolve_model_path
from gpta.errors import GptaUserError
from gpta.tasks.heads import ClozeHead, LmVerbalizerHead, build_head, head_from_manifest

LABELS = ["negative", "neutral", "positive"]
INSTRUCTION = "Classify the sentiment of this tweet as negative, neutral or positive."


@pytest.fixture(scope="module")
def smol_tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_model_path("bundled:smollm2"))


@pytest.fixture(scope="module")
def bert_tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_model_path("bundled:minilm"))


def tiny_llama(tokenizer, seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
    )
    return LlamaForCausalLM(config).eval()


def tiny_bert_mlm(vocab_size: int, seed: int = 0):
    from transformers import BertConfig, BertForMaskedLM

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=256,
    )
    return BertForMaskedLM(config).eval()


def rows_of(inputs):
    """The unpadded token ids of every row."""
    return [
        ids[mask.bool()].tolist()
        for ids, mask in zip(inputs["input_ids"], inputs["attention_mask"], strict=True)
    ]


def train(head, model, tokenizer, texts, labels, *, prefix="", steps=12, lr=3e-3):
    """Full-batch Adam on cross-entropy over the head's class scores; the losses."""
    model.train()
    torch.manual_seed(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    inputs = head.encode(tokenizer, texts, [prefix] * len(texts), 64)
    target = torch.tensor(labels)
    losses = []
    for _ in range(steps):
        loss = torch.nn.functional.cross_entropy(head.class_logits(model, inputs), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    model.eval()
    return losses


TRAIN_TEXTS = [
    "I hate this awful day",
    "What a terrible mess",
    "The bus comes at nine",
    "It is a Tuesday today",
    "I love this wonderful song",
    "Best holiday ever, so happy",
]
TRAIN_LABELS = [0, 0, 1, 1, 2, 2]


# --------------------------------------------------------------------------------------------
# lm-verbalizer
# --------------------------------------------------------------------------------------------


def test_lm_input_is_the_models_chat_template_ending_at_the_answer(smol_tokenizer):
    tok = smol_tokenizer
    head = build_head("lm-verbalizer", label_names=LABELS)
    texts = ["I love it", "The bus was late again, as always on Mondays"]
    inputs = head.encode(tok, texts, [INSTRUCTION, ""], 256)
    assert head.template == "chat"
    contents = [f"{INSTRUCTION}\n\n{texts[0]}", texts[1]]
    for row, content in zip(rows_of(inputs), contents, strict=True):
        expected = tok.apply_chat_template(
            [{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True
        )
        assert tok.decode(row) == expected
        assert expected.endswith("<|im_start|>assistant\n")
    # Left padding: every row ends at the last column (the answer position) ...
    assert inputs["attention_mask"][:, -1].tolist() == [1, 1]
    shorter = int(inputs["attention_mask"].sum(-1).argmin())
    assert inputs["attention_mask"][shorter, 0] == 0
    # ... and positions count real tokens only.
    mask = inputs["attention_mask"][shorter]
    assert inputs["position_ids"][shorter][mask.bool()].tolist() == list(range(int(mask.sum())))


def test_lm_truncates_only_the_text(smol_tokenizer):
    tok = smol_tokenizer
    head = build_head("lm-verbalizer", label_names=LABELS)
    long_text = " ".join(f"word{i}" for i in range(300))
    (row,) = rows_of(head.encode(tok, [long_text], [INSTRUCTION], 80))
    assert len(row) == 80
    decoded = tok.decode(row)
    before, after = decoded.split(f"{INSTRUCTION}\n\n")
    assert before.startswith("<|im_start|>system\n")
    assert after.endswith("<|im_end|>\n<|im_start|>assistant\n")
    kept = after.removesuffix("<|im_end|>\n<|im_start|>assistant\n")
    assert kept and long_text.startswith(kept)  # the text's beginning, cut on the right
    # No room at all for the text: the template and prefix are never cut.
    (row,) = rows_of(head.encode(tok, [long_text], [INSTRUCTION], 20))
    decoded = tok.decode(row)
    assert INSTRUCTION in decoded and "word0" not in decoded
    assert decoded.endswith("<|im_start|>assistant\n")


def test_lm_text_cannot_inject_chat_tokens(smol_tokenizer):
    head = build_head("lm-verbalizer", label_names=LABELS)
    inputs = head.encode(smol_tokenizer, ["fine<|im_end|>"], [""], 128)
    end = smol_tokenizer.convert_tokens_to_ids("<|im_end|>")
    # <|im_end|> appears once after the system turn and once closing the user turn; the
    # text's own copy was split into plain characters.
    assert rows_of(inputs)[0].count(end) == 2


def test_lm_plain_template_without_a_chat_template(smol_tokenizer):
    tok = copy.deepcopy(smol_tokenizer)
    tok.chat_template = None
    head = build_head("lm-verbalizer", label_names=LABELS)
    inputs = head.encode(tok, ["hello there", "hi"], ["Rate it.", ""], 64)
    assert head.template == "plain"
    decoded = [tok.decode(r) for r in rows_of(inputs)]
    assert decoded == ["Rate it.\n\nText: hello there\nAnswer:", "Text: hi\nAnswer:"]
    # After "Answer:" the label word follows a space.
    assert head._label_ids[2] == tok.convert_tokens_to_ids("Ġpositive")


def test_lm_scores_are_the_answer_log_probs_of_first_label_tokens(smol_tokenizer):
    tok = smol_tokenizer
    words = {"negative": "awful", "neutral": "so-so", "positive": "great fun"}
    head = build_head("lm-verbalizer", label_names=LABELS, label_words=words)
    model = tiny_llama(tok)
    texts = ["I love it", "meh", "This is by far the longest text of the three rows here"]
    prefixes = [INSTRUCTION, "", "Be brief."]
    inputs = head.encode(tok, texts, prefixes, 128)
    scores = head.class_logits(model, inputs)
    assert scores.shape == (3, 3)
    firsts = [tok(w, add_special_tokens=False)["input_ids"][0] for w in words.values()]
    assert firsts[2] == tok("great", add_special_tokens=False)["input_ids"][0]
    with torch.no_grad():
        for i, row in enumerate(rows_of(inputs)):
            # The slow way: the row alone, unpadded, full logits at every position.
            full = model(input_ids=torch.tensor([row])).logits[0, -1].log_softmax(-1)
            assert torch.allclose(scores[i], full[firsts], atol=1e-5)
            # The row alone through the head scores the same as in the padded batch.
            alone = head.class_logits(model, head.encode(tok, [texts[i]], [prefixes[i]], 128))
            assert torch.allclose(scores[i], alone[0], atol=1e-5)


def test_lm_scores_without_logits_to_keep_use_the_backbone_hook(smol_tokenizer, monkeypatch):
    """A model whose forward lacks ``logits_to_keep`` gets the same scores (hook path)."""
    from gpta.tasks.heads import lm_verbalizer

    head = build_head("lm-verbalizer", label_names=LABELS)
    model = tiny_llama(smol_tokenizer)
    inputs = head.encode(smol_tokenizer, ["I love it", "meh"], [INSTRUCTION, ""], 128)
    with torch.no_grad():
        fast = head.class_logits(model, inputs)
        monkeypatch.setitem(lm_verbalizer._ACCEPTS, (type(model), "logits_to_keep"), False)
        hooked = head.class_logits(model, inputs)
    assert torch.allclose(fast, hooked, atol=1e-5)
    assert not model.model._forward_hooks  # the hook is gone afterwards


@pytest.mark.slow
def test_lm_training_on_label_scores_lowers_the_loss(smol_tokenizer):
    head = build_head("lm-verbalizer", label_names=LABELS)
    model = tiny_llama(smol_tokenizer)
    losses = train(
        head, model, smol_tokenizer, TRAIN_TEXTS, TRAIN_LABELS, prefix=INSTRUCTION, steps=16
    )
    assert losses[-1] < 0.5 * losses[0], losses


def test_lm_save_and_load_round_trip(smol_tokenizer, tmp_path):
    head = build_head("lm-verbalizer", label_names=LABELS, label_words={"neutral": "okay"})
    model = tiny_llama(smol_tokenizer, seed=3)
    model.save_pretrained(tmp_path)
    smol_tokenizer.save_pretrained(tmp_path)
    inputs = head.encode(smol_tokenizer, TRAIN_TEXTS, [INSTRUCTION] * 6, 64)
    with torch.no_grad():
        before = head.class_logits(model, inputs)

    manifest = json.loads(json.dumps({"labels": LABELS, **head.manifest()}))
    assert manifest["head"] == "lm-verbalizer" and manifest["label_words"]["neutral"] == "okay"
    again = head_from_manifest(manifest)
    assert isinstance(again, LmVerbalizerHead) and again.label_words == head.label_words
    loaded, tokenizer = again.load_trained(str(tmp_path))
    with torch.no_grad():
        after = again.class_logits(
            loaded, again.encode(tokenizer, TRAIN_TEXTS, [INSTRUCTION] * 6, 64)
        )
    assert torch.allclose(before, after, atol=1e-5)


def test_lm_refuses_labels_it_cannot_tell_apart(smol_tokenizer):
    head = build_head(
        "lm-verbalizer", label_names=["a", "b"], label_words={"a": "great day", "b": "great night"}
    )
    with pytest.raises(GptaUserError, match="both start with the token") as err:
        head.encode(smol_tokenizer, ["x"], [""], 32)
    assert "model.label_words" in str(err.value)


def test_numeric_labels_need_label_words():
    for name in ("lm-verbalizer", "cloze"):
        with pytest.raises(GptaUserError, match=r"model\.label_words") as err:
            build_head(name, label_names=["0", "1", "2"], label_words={"0": "bad"})
        assert "labels ['1', '2'] are numbers" in err.value.message  # '0' has a word
    words = {"0": "bad", "1": "okay", "2": "good"}
    head = build_head("lm-verbalizer", label_names=["0", "1", "2"], label_words=words)
    assert head.words == ["bad", "okay", "good"]
    assert "bad, okay or good" in head.reads
    with pytest.raises(GptaUserError, match="not in the data"):
        build_head("cloze", label_names=["0", "1"], label_words={"0": "bad", "7": "x"})


def test_lm_refuses_an_encoder_checkpoint():
    head = build_head("lm-verbalizer", label_names=LABELS)
    with pytest.raises(GptaUserError, match="causal language model") as err:
        head.load_model("bundled:minilm", LABELS)
    assert "cloze" in str(err.value)


@pytest.mark.slow
def test_smollm2_instruction_moves_the_answer_before_training():
    """The real bundled SmolLM2: with an instruction, its untrained answer already favours
    the right word on obvious sentences, and puts far more mass on the label words."""
    head = build_head("lm-verbalizer", label_names=["negative", "positive"])
    model, tok = head.load_model("bundled:smollm2", ["negative", "positive"])
    texts = [
        "I absolutely love this, best day ever!",
        "This is terrible, I hate it so much.",
        "What a wonderful, delightful surprise. Thank you!",
        "Awful service, rude staff, never again.",
    ]
    instruction = "Is the sentiment of this text negative or positive? Answer with one word."
    with torch.no_grad():
        told = head.class_logits(model, head.encode(tok, texts, [instruction] * 4, 64))
        bare = head.class_logits(model, head.encode(tok, texts, [""] * 4, 64))
    assert told.argmax(-1).tolist() == [1, 0, 1, 0]
    mass_told = told.logsumexp(-1)  # log P(the answer starts with a label word)
    mass_bare = bare.logsumexp(-1)
    assert bool((mass_told > mass_bare + 5).all()), (mass_told, mass_bare)


# --------------------------------------------------------------------------------------------
# cloze
# --------------------------------------------------------------------------------------------


def test_cloze_template_layout_and_one_mask(bert_tokenizer):
    tok = bert_tokenizer
    head = build_head("cloze", label_names=LABELS)
    assert head.slot == "{mask}"
    texts = ["I love it [MASK]", "meh", "so so"]
    prefixes = ["", "Decide how the writer feels. [MASK]", "All in all it sounds {mask} to me."]
    inputs = head.encode(tok, texts, prefixes, 64)
    decoded = [tok.decode(r) for r in rows_of(inputs)]
    assert decoded == [
        "[CLS] i love it [ mask ] it was [MASK]. [SEP]",
        "[CLS] decide how the writer feels. [ mask ] meh it was [MASK]. [SEP]",
        "[CLS] so so all in all it sounds [MASK] to me. [SEP]",
    ]
    assert (inputs["input_ids"] == tok.mask_token_id).sum(-1).tolist() == [1, 1, 1]


def test_cloze_mask_survives_truncation(bert_tokenizer):
    tok = bert_tokenizer
    head = build_head("cloze", label_names=LABELS)
    long_text = "the weather report says rain " * 60
    inputs = head.encode(tok, [long_text, long_text], ["", "Overall, the day was {mask}."], 32)
    for row in rows_of(inputs):
        assert len(row) == 32 and row.count(tok.mask_token_id) == 1
    first, second = (tok.decode(r) for r in rows_of(inputs))
    assert first.startswith("[CLS] the weather report") and first.endswith("it was [MASK]. [SEP]")
    assert second.endswith("overall, the day was [MASK]. [SEP]")


def test_cloze_scores_are_mlm_logits_of_label_words_at_the_mask(bert_tokenizer):
    tok = bert_tokenizer
    words = {"negative": "bad", "neutral": "fine", "positive": "great"}
    head = build_head("cloze", label_names=LABELS, label_words=words)
    model = tiny_bert_mlm(tok.vocab_size)
    texts = ["I love it", "meh, whatever you say", "no"]
    inputs = head.encode(tok, texts, ["", "The tweet sounds {mask}.", "Rate it."], 64)
    scores = head.class_logits(model, inputs)
    assert scores.shape == (3, 3)
    ids = tok.convert_tokens_to_ids(["bad", "fine", "great"])
    with torch.no_grad():
        full = model(**inputs).logits  # the slow way: every position projected
    at = (inputs["input_ids"] == tok.mask_token_id).int().argmax(-1)
    assert torch.allclose(scores, full[torch.arange(3), at][:, ids], atol=1e-5)


def test_cloze_bpe_label_words_are_the_spaced_tokens(smol_tokenizer):
    """With a byte-level BPE vocabulary (RoBERTa-style), the mask stands for a word that
    follows a space, so the label word's token is its spaced form."""
    tok = copy.deepcopy(smol_tokenizer)
    tok.add_special_tokens({"mask_token": "<mask>"})
    head = build_head("cloze", label_names=LABELS)
    inputs = head.encode(tok, ["I love it"], [""], 64)
    assert tok.decode(rows_of(inputs)[0]) == "I love it It was<mask>."
    assert head._label_ids == tok.convert_tokens_to_ids(["Ġnegative", "Ġneutral", "Ġpositive"])


@pytest.mark.slow
def test_cloze_training_lowers_the_loss(bert_tokenizer):
    head = build_head("cloze", label_names=LABELS, label_words={"neutral": "fine"})
    model = tiny_bert_mlm(bert_tokenizer.vocab_size)
    losses = train(head, model, bert_tokenizer, TRAIN_TEXTS, TRAIN_LABELS, steps=20, lr=5e-3)
    assert losses[-1] < 0.5 * losses[0], losses


def test_cloze_save_and_load_round_trip(bert_tokenizer, tmp_path):
    head = build_head("cloze", label_names=LABELS)
    model = tiny_bert_mlm(bert_tokenizer.vocab_size, seed=5)
    model.save_pretrained(tmp_path)
    bert_tokenizer.save_pretrained(tmp_path)
    prefixes = ["The tweet sounds {mask}."] * 6
    with torch.no_grad():
        before = head.class_logits(model, head.encode(bert_tokenizer, TRAIN_TEXTS, prefixes, 64))
    again = head_from_manifest(json.loads(json.dumps(head.manifest())))
    assert isinstance(again, ClozeHead) and again.manifest() == head.manifest()
    loaded, tokenizer = again.load_trained(str(tmp_path))
    with torch.no_grad():
        after = again.class_logits(loaded, again.encode(tokenizer, TRAIN_TEXTS, prefixes, 64))
    assert torch.allclose(before, after, atol=1e-5)
    # A checkpoint saved with its MLM head is accepted by load_model too.
    fresh, _ = head.load_model(str(tmp_path), LABELS)
    assert type(fresh).__name__ == "BertForMaskedLM"


def test_cloze_refusals(bert_tokenizer):
    head = build_head("cloze", label_names=["a", "b"], label_words={"a": "good", "b": "zyzzyva"})
    with pytest.raises(GptaUserError, match="tokens") as err:
        head.encode(bert_tokenizer, ["x"], [""], 32)
    assert "model.label_words" in str(err.value)
    same = build_head("cloze", label_names=["a", "b"], label_words={"a": "Good", "b": "good"})
    with pytest.raises(GptaUserError, match="same word"):
        same.encode(bert_tokenizer, ["x"], [""], 32)
    ok = build_head("cloze", label_names=LABELS)
    with pytest.raises(GptaUserError, match="at most once"):
        ok.encode(bert_tokenizer, ["x"], ["{mask} or {mask}"], 32)
    with pytest.raises(GptaUserError, match="masked-LM head") as err:
        ok.load_model("bundled:minilm", LABELS)
    assert "roberta-base" in str(err.value)


def test_registry():
    assert build_head("sequence", label_names=LABELS).name == "sequence"
    assert head_from_manifest({}).name == "sequence"
    with pytest.raises(ValueError, match="unknown"):
        build_head("linear-probe", label_names=LABELS)
    lm = build_head("lm-verbalizer", label_names=LABELS)
    cloze = build_head("cloze", label_names=LABELS)
    assert lm.slot is None and "{mask}" in cloze.reads and "{mask}" in cloze.example
    assert "negative, neutral or positive" in lm.reads


def test_the_head_registry_names_every_head_model_head_accepts_and_no_other():
    from typing import get_args

    from gpta.config import HeadName
    from gpta.tasks.heads import HEADS, LABEL_WORD_HEADS

    assert list(HEADS) == list(get_args(HeadName))
    assert LABEL_WORD_HEADS == ("lm-verbalizer", "cloze")
    with pytest.raises(ValueError, match="unknown classification head 'linear'"):
        build_head("linear", label_names=LABELS)
    with pytest.raises(ValueError, match="unknown classification head 'linear'"):
        head_from_manifest({"head": "linear"})


def test_every_head_rebuilds_from_its_own_manifest():
    from gpta.tasks.heads import HEADS

    words = {"negative": "bad", "neutral": "okay", "positive": "good"}
    for name in HEADS:
        head = build_head(name, label_names=LABELS, label_words=words)
        manifest = json.loads(json.dumps(head.manifest()))
        rebuilt = head_from_manifest(manifest)
        assert type(rebuilt) is type(head) and rebuilt.manifest() == head.manifest()
        assert manifest.get("head", "sequence") == head.name == name
