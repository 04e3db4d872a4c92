"""The dialogue gradient: examples from improving proposals only, the per-task store, the
improvement rate, real LoRA tuning of the bundled TA (loss falls, adapter saved, loaded and
changing the weights), the OpenAI export and the "no fine-tuning API" path.

The run directories here are written by hand in the format synergy.py writes (history.jsonl +
exposure.jsonl): they are data, not a fake LLM. The tuning uses the real bundled SmolLM2."""

from __future__ import annotations

import http.server
import json
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import ClassVar

import pytest

from gpta.assistant.dialogue import (
    DialogueExample,
    DialogueStore,
    examples_from_run,
    improvement_rates,
    resolve_adapter,
    round_dialogues,
)
from gpta.assistant.export import write_openai_jsonl
from gpta.assistant.tuning import LoraSettings, encode_example, tune_lora
from gpta.cli import main
from gpta.errors import GptaUserError
from gpta.privacy.ledger import messages_hash

SYSTEM = "You write instructions for a small neural network. Reply with the instruction only."


def _conversation(round_index: int, current: str, score: float) -> list[dict]:
    user = (
        "Task: text classification.\nLabels: negative, neutral, positive\n"
        "Data: English tweets labelled with their sentiment.\n\n"
        f'Current instruction: "{current}", accuracy {score:.3f} (round {round_index}).\n'
        "Write one new instruction that should score higher."
    )
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


TWEETS = [
    ("the new phone battery died after two hours of light use today", "negative"),
    ("lunch at the harbour cafe was fine, nothing special either way", "neutral"),
    ("best concert of my life, the encore gave everyone goosebumps", "positive"),
]


def _write_config(run_dir: Path) -> None:
    """The run's config.yaml and the data file it names (what the upload check reads)."""
    data = run_dir / "train.jsonl"  # inside the run: tests keep their own data/ beside it
    data.write_text("".join(json.dumps({"text": t, "label": lab}) + "\n" for t, lab in TWEETS))
    config = {
        "task": "classification",
        "data": {"train": str(data), "description": "English tweets labelled with sentiment."},
    }
    (run_dir / "config.yaml").write_text(json.dumps(config))


def _write_run(run_dir: Path, *, with_hash: bool, copying: str | None = None) -> dict:
    """Round 0 (not screened) and rounds 1-2 with improving, tied, losing and invalid
    proposals (and, with ``copying``, one more improving proposal of that text in round 2);
    returns what the examples must be."""
    run_dir.mkdir(parents=True)
    _write_config(run_dir)
    ledger = []
    store = str(run_dir.parent / "dialogue" / "tweets")
    history = [{"event": "dialogue", "task_key": "tweets", "store": store}]
    rounds = {
        0: (None, [("Read the tweet.", None, False, "Read the tweet.")]),
        1: (
            ("Read the tweet.", 0.50, 0.90),
            [
                ("Decide the feeling the author shows.", 0.62, True, None),  # improves
                ("Read the tweet and decide.", 0.50, False, None),  # tie: not a target
                ("Just guess.", 0.40, False, None),  # loss: not a target
                ("The tweet is positive.", None, False, "names_label: 'positive'"),
            ],
        ),
        2: (
            ("Decide the feeling the author shows.", 0.62, 0.80),
            [
                ("Weigh the words of praise against the complaints.", 0.70, True, None),
                ("Note sarcasm, then decide the feeling.", 0.66, True, None),
                ("Look at emojis.", 0.55, False, None),
                *([(copying, 0.72, True, None)] if copying else []),
            ],
        ),
    }
    for request_id, (number, (current, proposals)) in enumerate(rounds.items(), start=1):
        prefix, score, loss = current or ("", 0.0, 1.0)
        messages = _conversation(number, prefix, score)
        raws = [f"Sure! {text}" if i % 2 else text for i, (text, *_rest) in enumerate(proposals)]
        ledger.append(
            {
                "event": "request",
                "id": request_id,
                "messages": messages,
                "sha256": messages_hash(messages),
                "row_ids": [],
            }
        )
        ledger.append({"event": "response", "id": request_id, "texts": raws})
        for raw, (text, screen, improved, reason) in zip(raws, proposals, strict=True):
            event = {
                "event": "proposal",
                "round": number,
                "raw": raw,
                "prefix": None if reason else text,
                "valid": reason is None,
                "reason": reason,
                "screen_score": screen,
                "screen_loss": 0.8 if screen is not None else None,
                "improved": improved,
            }
            if with_hash:
                event["messages_sha256"] = messages_hash(messages)
            history.append(event)
        if current:
            history.append(
                {
                    "event": "screen",
                    "round": number,
                    "current": {"prefix": prefix, "score": score, "loss": loss},
                    "candidates": [],
                }
            )
    (run_dir / "history.jsonl").write_text("".join(json.dumps(e) + "\n" for e in history))
    (run_dir / "exposure.jsonl").write_text("".join(json.dumps(e) + "\n" for e in ledger))
    return {
        "targets": {
            (1, "Decide the feeling the author shows."),
            (2, "Weigh the words of praise against the complaints."),
            (2, "Note sarcasm, then decide the feeling."),
        },
        "messages": {
            n: _conversation(n, *(c[:2] if c else ("", 0.0))) for n, (c, _) in rounds.items()
        },
    }


@pytest.mark.parametrize("with_hash", [True, False])
def test_examples_are_the_improving_proposals_with_their_conversation(tmp_path, with_hash):
    expected = _write_run(tmp_path / "run", with_hash=with_hash)
    examples = examples_from_run(tmp_path / "run", key="tweets")
    assert {(e.round, e.target) for e in examples} == expected["targets"]
    for example in examples:
        # the conversation exactly as the TA saw it at that round (from the ledger)
        assert example.messages == expected["messages"][example.round]
        assert example.target_score > example.current_score
        assert example.chat()[-1] == {"role": "assistant", "content": example.target}
    dialogues = round_dialogues(tmp_path / "run")
    assert [d.round for d in dialogues] == [0, 1, 2]
    assert all(d.messages == expected["messages"][d.round] for d in dialogues)


def test_store_deduplicates_across_runs_and_versions_adapters(tmp_path):
    _write_run(tmp_path / "a", with_hash=True)
    store = DialogueStore(tmp_path / "store")
    assert store.add(examples_from_run(tmp_path / "a", key="tweets")) == 3
    assert store.add(examples_from_run(tmp_path / "a", key="tweets")) == 0  # same run again
    assert len(store.examples()) == 3
    assert store.next_adapter_dir().name == "v001"
    (store.next_adapter_dir()).mkdir(parents=True)
    assert store.next_adapter_dir().name == "v002"
    with pytest.raises(GptaUserError, match="no LoRA adapter"):
        resolve_adapter(tmp_path / "store")  # v001 holds no adapter yet


def test_improvement_rate_per_round_and_over_the_run(tmp_path):
    _write_run(tmp_path / "run", with_hash=True)
    events = [json.loads(x) for x in (tmp_path / "run" / "history.jsonl").open()]
    rates = improvement_rates(events)
    by_round = {r["round"]: r for r in rates["rounds"]}
    assert set(by_round) == {1, 2}  # round 0 is never screened
    assert by_round[1]["improvement_rate"] == 0.25  # 1 of 4 (the invalid one counts)
    assert by_round[1]["validity_rate"] == 0.75
    assert by_round[2]["improvement_rate"] == pytest.approx(2 / 3, abs=1e-4)
    assert rates["improvement_rate"] == pytest.approx(3 / 7, abs=1e-4)


def test_export_writes_openai_chat_finetuning_jsonl(tmp_path, capsys):
    _write_run(tmp_path / "run", with_hash=False)
    out = tmp_path / "ft.jsonl"
    main(["assistant", "export", "--from", str(tmp_path / "run"), "--output", str(out)])
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(lines) == 3
    for line in lines:
        assert [m["role"] for m in line["messages"]] == ["system", "user", "assistant"]
    summary = json.loads(capsys.readouterr().out)
    assert summary["examples_in_store"] == 3
    # the store the run recorded: <parent of the run>/dialogue/<task key>
    assert summary["store"] == str(tmp_path / "dialogue" / "tweets")
    assert len(DialogueStore(tmp_path / "dialogue" / "tweets").examples()) == 3


class _NoFineTuning(http.server.BaseHTTPRequestHandler):
    """An OpenAI-compatible server without files / fine-tuning endpoints."""

    bodies: ClassVar[list[bytes]] = []  # what reached the server

    def do_POST(self):
        self.bodies.append(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        body = json.dumps({"error": {"message": "Not Found", "type": "not_found"}}).encode()
        self.send_response(404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST

    def log_message(self, *args):
        pass


def test_submit_to_a_server_without_finetuning_says_unsupported(tmp_path, monkeypatch, capsys):
    _write_run(tmp_path / "run", with_hash=True, copying=TWEETS[2][0])
    _NoFineTuning.bodies = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NoFineTuning)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("GPTA_TEST_KEY", "sk-test-not-a-real-key")
    try:
        with pytest.raises(SystemExit) as exit_info:
            main(["assistant", "tune", "--backend", "openai", "--submit",
                  "--from", str(tmp_path / "run"), "--store", str(tmp_path / "store"),
                  "--base-model", "gpt-4o-mini-2024-07-18",
                  "--base-url", f"http://127.0.0.1:{server.server_port}/v1",
                  "--api-key-env", "GPTA_TEST_KEY"])  # fmt: skip
    finally:
        server.shutdown()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "has no fine-tuning API" in err and "404" in err and "no tuned model exists" in err
    assert not (tmp_path / "store" / "api_models.jsonl").exists()  # no model id recorded
    # the upload attempt was ledgered before it was sent; the key never was
    ledger = (tmp_path / "store" / "exposure.jsonl").read_text()
    assert "openai-fine-tuning" in ledger and "sk-test" not in ledger
    # the prefix that copies a data row was held back: recorded as blocked, never sent
    events = [json.loads(line) for line in ledger.splitlines()]
    assert [e["copied_row_ids"] for e in events if e["event"] == "blocked"] == [
        ["train.jsonl:line 3"]
    ]
    assert sum(e["event"] == "request" for e in events) == 3
    sent = b"".join(_NoFineTuning.bodies)
    assert b"Weigh the words of praise" in sent  # the upload did reach the server
    assert b"encore gave everyone goosebumps" not in sent and b"sk-test" not in sent
    assert "left out 1 example(s) that copy words of a data row" in err


class _FakeJobs:
    """The fine-tuning jobs of a fake OpenAI client: queued, running, then succeeded."""

    def __init__(self) -> None:
        self.created: list[dict] = []
        self.states = iter(["running", "succeeded"])

    def create(self, **params):
        self.created.append(params)
        return SimpleNamespace(id="ftjob-1", status="queued", error=None, fine_tuned_model=None)

    def retrieve(self, job_id):
        status = next(self.states)
        model = "ft:gpt-4o-mini:gpta" if status == "succeeded" else None
        return SimpleNamespace(id=job_id, status=status, error=None, fine_tuned_model=model)


class _FakeFiles:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def create(self, *, file, purpose):
        assert purpose == "fine-tune"
        self.sent.append(file.read())
        return SimpleNamespace(id="file-1")


def test_submit_finetune_uploads_the_checked_file_and_polls_the_job_to_its_end(tmp_path):
    """The file is recorded then uploaded, the job created from it and polled until it ends."""
    from gpta.assistant.export import Upload, submit_finetune
    from gpta.privacy.ledger import ExposureLedger

    chats = [_conversation(1, "Read the tweet.", 0.5), _conversation(2, "Weigh it.", 0.6)]
    upload = Upload(chats=chats, removed=[{}, {"secret": 1}])
    client = SimpleNamespace(files=_FakeFiles(), fine_tuning=SimpleNamespace(jobs=_FakeJobs()))
    said: list[str] = []
    record = submit_finetune(
        upload,
        tmp_path / "ft.jsonl",
        base_model="gpt-4o-mini",
        base_url=None,
        api_key_env="GPTA_UNSET_KEY",
        ledger=ExposureLedger(tmp_path / "exposure.jsonl"),
        poll_seconds=0.0,
        on_status=said.append,
        client=client,
    )
    assert said == [
        "uploaded ft.jsonl as file-1",
        "fine-tuning job ftjob-1: queued",
        "fine-tuning job ftjob-1: running",
        "fine-tuning job ftjob-1: succeeded",
    ]
    assert client.fine_tuning.jobs.created == [
        {"training_file": "file-1", "model": "gpt-4o-mini", "suffix": "gpta"}
    ]
    assert client.files.sent == [(tmp_path / "ft.jsonl").read_bytes()]
    assert {k: v for k, v in record.items() if k != "time"} == {
        "job_id": "ftjob-1",
        "status": "succeeded",
        "fine_tuned_model": "ft:gpt-4o-mini:gpta",
        "base_model": "gpt-4o-mini",
        "base_url": "https://api.openai.com/v1",
        "training_file": "file-1",
        "examples": 2,
        "error": None,
    }
    events = [json.loads(line) for line in (tmp_path / "exposure.jsonl").read_text().splitlines()]
    assert [e["event"] for e in events] == ["request", "request"]


def test_submit_finetune_with_nothing_to_upload_is_a_user_error(tmp_path):
    from gpta.assistant.export import Upload, submit_finetune
    from gpta.privacy.ledger import ExposureLedger

    with pytest.raises(GptaUserError, match="no example may be uploaded: none given"):
        submit_finetune(
            Upload(),
            tmp_path / "ft.jsonl",
            base_model="gpt-4o-mini",
            base_url=None,
            api_key_env="GPTA_UNSET_KEY",
            ledger=ExposureLedger(tmp_path / "exposure.jsonl"),
            client=object(),
        )
    assert not (tmp_path / "ft.jsonl").exists()


def _example(run: Path, target: str) -> DialogueExample:
    return DialogueExample(
        messages=_conversation(1, "Read the tweet.", 0.5),
        target=target,
        task_key="tweets",
        run=str(run),
        round=1,
        current_prefix="Read the tweet.",
        current_score=0.5,
        target_score=0.6,
    )


def test_upload_check_cleans_secrets_and_blocks_rows_as_the_channel_does(tmp_path):
    """Each conversation is cleaned as a TA request is and held to its own run's rows; a run
    whose data cannot be read is left out, not sent unchecked."""
    from gpta.assistant.export import check_upload

    run = tmp_path / "run"
    run.mkdir()
    _write_config(run)
    orphan = tmp_path / "orphan"  # no config.yaml: nothing says which rows it read
    orphan.mkdir()
    key = "sk-proj-" + "Q7w" * 12
    examples = [
        _example(run, f"Weigh praise against complaints; mail ops@example.com, key {key}."),
        _example(run, "Note that " + TWEETS[0][0].upper() + "!"),  # a row, case changed
        _example(run, "Decide the feeling the author shows."),
        _example(orphan, "Decide how the writer feels."),
    ]
    upload = check_upload(examples)
    assert len(upload.chats) == 2 and upload.skipped == 1
    text = json.dumps(upload.chats)
    assert key not in text and "[SECRET]" in text and "ops@example.com" not in text
    assert upload.removed[0]["secret"] == 1 and upload.removed[1] == {}
    assert [r.row_ids for _chat, r in upload.blocked] == [["train.jsonl:line 1"]]
    assert list(upload.unchecked) == [str(orphan)]
    assert "config.yaml is missing" in upload.unchecked[str(orphan)]
    assert len(upload.warnings()) == 2


def test_target_tokens_only_carry_the_loss():
    from transformers import AutoTokenizer

    from gpta.bundled import resolve_model_path

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path("bundled:smollm2"))
    messages = _conversation(1, "Read the tweet.", 0.5)
    ids, labels = encode_example(tokenizer, messages, "Decide the feeling the author shows.")
    reply = [t for t, lab in zip(ids, labels, strict=True) if lab != -100]
    assert labels[: len(ids) - len(reply)] == [-100] * (len(ids) - len(reply))
    text = tokenizer.decode(reply)
    assert text.startswith("Decide the feeling the author shows.") and "<|im_end|>" in text
    assert "Current instruction" not in text


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory) -> Path:
    """A randomly initialised 2-layer Llama with SmolLM2's tokenizer and chat template."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from gpta.bundled import resolve_model_path

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path("bundled:smollm2"))
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        initializer_range=0.3,  # large enough that a rank-8 LoRA moves the logits visibly
    )
    path = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.mark.slow
def test_lora_tuning_lowers_loss_saves_and_loads_an_adapter(tmp_path, capsys, tiny_llama):
    import torch

    from gpta.llm.local import LocalChatModel

    _write_run(tmp_path / "run", with_hash=True)
    main(["assistant", "tune", "--from", str(tmp_path / "run"), "--store",
          str(tmp_path / "store"), "--base-model", str(tiny_llama), "--epochs", "6",
          "--learning-rate", "1e-2", "--device", "cpu"])  # fmt: skip
    result = json.loads(capsys.readouterr().out)
    adapter = Path(result["adapter"])
    assert adapter == tmp_path / "store" / "adapters" / "v001"
    assert (adapter / "adapter_config.json").is_file()
    assert (adapter / "adapter_model.safetensors").is_file()
    assert result["examples"] == 3 and result["steps"] == 18
    # the loss on its own training set falls
    assert result["loss_after"] < result["loss_before"] * 0.8
    meta = json.loads((adapter / "gpta_adapter.json").read_text())
    assert meta["base_model"] == str(tiny_llama) and len(meta["step_losses"]) == 18

    base = LocalChatModel(str(tiny_llama))
    tuned = LocalChatModel(str(tiny_llama))
    tuned.load_adapter(resolve_adapter(tmp_path / "store"))  # the store -> its latest version
    assert tuned.adapter == str(adapter) and tuned.identity()["adapter"] == str(adapter)
    base_q = base.model.model.layers[0].self_attn.q_proj.weight
    tuned_q = tuned.model.model.layers[0].self_attn.q_proj.weight
    assert not torch.equal(base_q, tuned_q)  # merged LoRA weights differ
    base_mlp = base.model.model.layers[0].mlp.up_proj.weight
    assert torch.equal(base_mlp, tuned.model.model.layers[0].mlp.up_proj.weight)  # not targeted
    # a second tuning is a new version; the first stays loadable
    main(["assistant", "tune", "--from", str(tmp_path / "run"), "--store",
          str(tmp_path / "store"), "--base-model", str(tiny_llama), "--epochs", "1",
          "--device", "cpu"])  # fmt: skip
    assert json.loads(capsys.readouterr().out)["adapter"].endswith("v002")
    assert resolve_adapter(tmp_path / "store").name == "v002"


@pytest.mark.slow
def test_real_bundled_ta_tunes_and_loads_its_adapter(tmp_path):
    import torch

    from gpta.chat.base import Sampling
    from gpta.llm.local import LocalChatModel

    _write_run(tmp_path / "run", with_hash=True)
    examples = examples_from_run(tmp_path / "run", key="tweets")[:1]
    result = tune_lora(
        examples, base_model="bundled:smollm2", out_dir=tmp_path / "adapter",
        settings=LoraSettings(epochs=2, learning_rate=1e-3),
    )  # fmt: skip
    assert result.steps == 2 and result.loss_after < result.loss_before
    base = LocalChatModel("bundled:smollm2")
    q_before = base.model.model.layers[0].self_attn.q_proj.weight.clone()
    base.load_adapter(result.adapter_dir)
    assert not torch.equal(q_before, base.model.model.layers[0].self_attn.q_proj.weight)
    reply = base.chat(
        examples[0].messages, Sampling(n=2, temperature=0.7, top_p=0.9, max_new_tokens=8, seed=0)
    )
    assert len(reply.texts) == 2
    base.load_adapter(None)  # back to the untuned TA
    assert torch.equal(q_before, base.model.model.layers[0].self_attn.q_proj.weight)


def test_tune_with_no_positive_dialogue_is_a_user_error(tmp_path):
    with pytest.raises(GptaUserError, match="no dialogue-gradient examples"):
        tune_lora([], base_model="bundled:smollm2", out_dir=tmp_path / "a")
    write_openai_jsonl([], tmp_path / "empty.jsonl")
    assert (tmp_path / "empty.jsonl").read_text() == ""


def _run_config(tmp_path: Path, name: str, ta_model: Path, **assistant) -> dict:
    from conftest import shared_rows, write_jsonl

    rows = shared_rows("twitter", "train", limit=120)
    data = tmp_path / "data"
    if not (data / "train.jsonl").exists():
        write_jsonl(data / "train.jsonl", rows[:48])
        write_jsonl(data / "dev.jsonl", rows[48:72])
        write_jsonl(data / "test.jsonl", rows[72:96])
    return {
        "output_dir": str(tmp_path / "runs" / name),
        "device": "cpu",
        "data": {
            "train": str(data / "train.jsonl"),
            "dev": str(data / "dev.jsonl"),
            "test": str(data / "test.jsonl"),
            "description": "English tweets labelled with the sentiment of their author.",
        },
        "model": {"max_length": 48},
        "training": {"rounds": 2, "steps_per_round": 2, "batch_size": 8},
        "assistant": {
            "warmup_rounds": 0,
            "model": str(ta_model),
            "candidates": 2,
            "max_new_tokens": 12,
            "max_prefix_tokens": 16,
            "screen_size": 8,
            "cache": False,
            **assistant,
        },
    }


def _events(run_dir: Path) -> list[dict]:
    return [json.loads(x) for x in (run_dir / "history.jsonl").open(encoding="utf-8")]


@pytest.mark.slow
def test_a_run_tunes_its_ta_every_t_rounds_then_a_frozen_run_gets_no_feedback(tmp_path, tiny_llama):
    """Two real runs (MiniLM downstream, the tiny Llama as TA, real twitter rows): the first
    tunes the TA after round 0 on the store's examples and loads the new adapter; the second,
    frozen, loads that adapter from the store but gets no feedback and is never tuned."""
    from gpta.config import build_config
    from gpta.run import train

    store = DialogueStore(tmp_path / "store")
    _write_run(tmp_path / "old-run", with_hash=True)
    store.add(examples_from_run(tmp_path / "old-run", key="tweets"))
    config = _run_config(
        tmp_path, "tuned", tiny_llama, dialogue_store=str(store.root), tune_every=1,
        tune_min_examples=3, tune_epochs=1,
    )  # fmt: skip
    train(build_config(config), quiet=True)
    run_dir = tmp_path / "runs" / "tuned"
    events = _events(run_dir)
    assert next(e for e in events if e["event"] == "dialogue")["store"] == str(store.root)
    tune = next(e for e in events if e["event"] == "ta_tune")
    assert tune["round"] == 0 and tune["examples"] == 3 and tune["adapter"].endswith("v001")
    rate = next(e for e in events if e["event"] == "ta_improvement")
    assert rate["round"] == 1 and rate["adapter"] == tune["adapter"]
    assert rate["proposals"] == 2 and 0 <= rate["improvement_rate"] <= 1
    ledger = [json.loads(x) for x in (run_dir / "exposure.jsonl").open(encoding="utf-8")]
    requests = [r for r in ledger if r["event"] == "request"]
    assert "Current instruction" in requests[1]["messages"][-1]["content"]  # feedback
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["ta_improvement"]["store"] == str(store.root)
    assert metrics["ta_improvement"]["proposals"] == 2

    frozen = _run_config(
        tmp_path, "frozen", tiny_llama, dialogue_store=str(store.root), tune_every=1,
        tune_min_examples=1, frozen=True, adapter=str(store.root),
    )  # fmt: skip
    train(build_config(frozen), quiet=True)
    run_dir = tmp_path / "runs" / "frozen"
    events = _events(run_dir)
    assert next(e for e in events if e["event"] == "dialogue")["adapter"].endswith("v001")
    assert not [e for e in events if e["event"] == "ta_tune"]
    assert len(store.adapter_versions()) == 1  # no new version
    ledger = [json.loads(x) for x in (run_dir / "exposure.jsonl").open(encoding="utf-8")]
    requests = [r for r in ledger if r["event"] == "request"]
    assert len(requests) == 2  # it still proposes after round 0 ...
    assert requests[1]["messages"] == requests[0]["messages"]  # ... from the description only
    assert [e["round"] for e in events if e["event"] == "screen"] == [1]
