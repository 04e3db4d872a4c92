"""Structured output: the TA's JSON answer under a schema, from the real bundled model.

- llama.cpp in process (``assistant.backend: llamacpp``) and transformers with xgrammar
  decode under a grammar compiled from the schema;
- the real llama.cpp server (``python -m llama_cpp.server`` on the bundled GGUF) is asked
  in OpenAI's form first, then in llama-cpp-python's: which one it honours is learned and
  remembered; in front of it, a proxy that refuses ``response_format`` (HTTP 400) and one
  that drops it (HTTP 200, nothing enforced) exercise the fallback to free text;
- the path each answer took is in the exposure ledger.

Scripted chat models appear only where the plumbing itself is tested (cache, ledger).
"""

from __future__ import annotations

import http.client
import json
import threading
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from ta_server import start_llama_server, stop_process

from gpta.assistant import TaskBrief, TeachingAssistant
from gpta.assistant.freetext import clean_completion as free_text
from gpta.assistant.ontask import meta_talk
from gpta.assistant.parsing import parse_proposal
from gpta.assistant.prompts import initial_messages
from gpta.assistant.schema import proposal_schema, read_answer
from gpta.chat.base import ChatResult, Sampling, Usage
from gpta.chat.structured import ServerForms, json_spans, response_format
from gpta.config import AssistantConfig, build_config
from gpta.llm.cache import CachedChatModel, ResponseCache
from gpta.privacy import ExposureChannel, ExposureLedger

BRIEF = TaskBrief(
    family="text classification",
    reads="The network reads your instruction followed by one input text and must predict "
    "one label.",
    description="English tweets from the SemEval-2017 sentiment task, each labelled with the "
    "overall sentiment of the message: negative, neutral or positive.",
    label_names=["negative", "neutral", "positive"],
    metric="accuracy",
    max_words=48,
)
SCHEMA = proposal_schema(48)
RECORDED = Path(__file__).with_name("data") / "ta_outputs_smollm2.json"
PLAIN = [{"role": "user", "content": "Reply with the word OK."}]


def _ledger(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# --- reading an answer ------------------------------------------------------------------------


def test_an_answer_is_read_by_the_schema_then_by_the_free_text_fallback():
    assert read_answer('{"instruction": "Read the tweet."}', SCHEMA) == ("Read the tweet.", "json")
    # cut off by the token limit: up to the last whole sentence, or nothing
    cut = '{"instruction": "Read the tweet. Then decide wh'
    assert read_answer(cut, SCHEMA) == ("Read the tweet.", "json_partial")
    assert read_answer('{"instruction": "Read the tw', SCHEMA) == (None, "json_partial")
    assert read_answer("Read the tweet.", SCHEMA) == (None, "not_json")

    def parsed(raw):
        return parse_proposal(raw, label_names=BRIEF.label_names, schema=SCHEMA)

    good = parsed('{"instruction": "Decide how the author of the tweet feels."}')
    assert (good.prefix, good.source) == ("Decide how the author of the tweet feels.", "json")
    assert parsed('{"instruction": "Read the tw').reason.startswith("unfinished")
    free = parsed("Sure! Here's the instruction: **Decide how the author feels.**")
    assert (free.prefix, free.source) == ("Decide how the author feels.", "free_text")
    # the validity checks hold on the JSON path too
    assert parsed('{"instruction": "The tweet is positive."}').code == "names_label"
    assert parsed('{"instruction": "Please provide the dataset."}').code == "meta_talk"


def test_a_string_the_grammar_closed_at_the_length_cap_keeps_whole_words():
    cap = SCHEMA.schema["properties"]["instruction"]["maxLength"]
    words = "Read the tweet and judge the overall sentiment of the message, the words"
    text = (words + " again and again" * 20)[:cap]
    parsed = parse_proposal(
        json.dumps({"instruction": text}), label_names=BRIEF.label_names, schema=SCHEMA
    )
    assert parsed.truncated and parsed.prefix.endswith(".")
    assert parsed.prefix[:-1] in text and len(parsed.prefix) < cap


def test_check_tells_an_answer_cut_off_from_one_that_is_not_json_of_the_schema():
    assert SCHEMA.check('{"instruction": "Read the tweet."}') == "valid"
    assert SCHEMA.check('{"instruction": "Read the {tweet} and') == "cut"
    assert SCHEMA.check('{"instruction": "Read the tweet.", "extra": [1]}') == "invalid"
    assert SCHEMA.check("Read the tweet.") == "invalid"


def test_json_spans_are_the_balanced_objects_and_lists_of_a_text_string_aware():
    text = 'Sure: {"a": "}]"} then [1, [2, {"b": 3}]] and {"cut": '
    assert json_spans(text) == ['{"a": "}]"}', '[1, [2, {"b": 3}]]']
    assert json_spans('no JSON "{here}"') == ["{here}"]  # quotes outside a span are text


# --- the meta-talk rule ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("Your task is to create a new instruction that is specifically tailored", "about_inst"),
        ("To improve the accuracy of the chatbot, the new instruction should", "about_inst"),
        ("Please provide the dataset. I will provide the algorithm.", "asks_for_data"),
        ("Send me more examples of tweets.", "asks_for_data"),
        ("I will read every tweet carefully.", "first_person"),
        ("The model should classify tweets by sentiment.", "about_the_system"),
        ("Boost the accuracy by reading slowly.", "about_the_system"),
    ],
)
def test_meta_talk_names_its_kind(text, kind):
    assert meta_talk(text).startswith(f"meta_talk: {kind}")


@pytest.mark.parametrize(
    "text",
    [
        "Read the tweet and decide whether its author is negative, neutral or positive.",
        "Weigh emojis heavily.",
        "Read the tweet from the social network and judge its tone.",
        "Find the shortest span of the passage that answers the question.",
        "Summarize the article in one sentence: who did what, where and when.",
        "In short, I found this film {mask}.",
    ],
)
def test_meta_talk_passes_instructions(text):
    assert meta_talk(text) is None


def test_the_meta_talk_rule_on_recorded_real_outputs():
    """The rule flags every answer a person read as meta-talk (but the one known miss, noted
    in the file) and no answer read as a usable instruction, on the text the parser checks
    (a JSON answer's instruction, else the free-text cleanup's line); in a run such an answer
    is rejected as meta_talk unless another reason came first."""
    records = json.loads(RECORDED.read_text(encoding="utf-8"))["records"]
    assert len(records) >= 50
    labels = ["negative", "neutral", "positive", "0", "1", "2", "3", "4"]
    flags = []
    for record in records:
        value, how = read_answer(record["raw"], SCHEMA)
        if how == "not_json":
            value = free_text(record["raw"])
        elif value is None:  # cut off before a whole sentence: the string as far as it went
            value = record["raw"].split(":", 1)[1]
        flags.append((record, meta_talk(value)))
    missed = [
        r["raw"]
        for r, flag in flags
        if r["reading"] == "meta_talk" and flag is None and not r.get("rule_misses")
    ]
    wrong = [r["raw"] for r, flag in flags if r["reading"] == "instruction" and flag]
    assert missed == [] and wrong == []
    old = [bool(flag) for r, flag in flags if r["prompt"] == "old_prompt"]
    new = [bool(flag) for r, flag in flags if r["prompt"] == "new_prompt"]
    assert sum(old) >= 9 and sum(new) == 0  # the worked examples ended the meta-talk
    parsed = [
        parse_proposal(r["raw"], label_names=labels, schema=SCHEMA if r["structured"] else None)
        for r, flag in flags
        if r["reading"] == "meta_talk"
    ]
    assert sum(p.code == "meta_talk" for p in parsed) >= 6
    assert all(p.code in ("meta_talk", "names_label") or p.valid for p in parsed)


# --- plumbing: cache, server findings, ledger (scripted models) --------------------------------


class GrammarChat:
    backend, model_name = "scripted", "grammar"

    def __init__(self):
        self.calls = 0

    def chat(self, messages, sampling, *, schema=None):
        self.calls += 1
        n = sampling.n
        texts = ['{"instruction": "Decide how the author feels."}'] * n
        return ChatResult(texts, Usage(10, 5 * n), 0.1, structured="grammar" if schema else None)


def test_the_cache_keys_on_the_schema_and_keeps_the_path(tmp_path):
    chat = GrammarChat()
    path = tmp_path / "c.sqlite"
    params = Sampling(n=2, temperature=0.5, top_p=0.95, max_new_tokens=48, seed=1)
    CachedChatModel(chat, ResponseCache(path)).chat(PLAIN, params, schema=SCHEMA)
    again = CachedChatModel(chat, ResponseCache(path)).chat(PLAIN, params, schema=SCHEMA)
    assert chat.calls == 1 and again.cached and again.structured == "grammar"
    plain = CachedChatModel(chat, ResponseCache(path)).chat(PLAIN, params)
    assert chat.calls == 2 and plain.structured is None  # no schema: another key
    other = CachedChatModel(chat, ResponseCache(path)).chat(
        PLAIN, params, schema=proposal_schema(64)
    )
    assert chat.calls == 3 and other.structured == "grammar"


def test_server_findings_persist_per_server_and_model(tmp_path):
    forms = ServerForms(tmp_path / "forms.json")
    forms.put("http://127.0.0.1:1/v1/", "m", "json_object", "valid answer")
    again = ServerForms(tmp_path / "forms.json")
    assert again.get("http://127.0.0.1:1/v1", "m") == "json_object"
    assert again.get("http://127.0.0.1:1/v1", "other") is None
    body = json.loads((tmp_path / "forms.json").read_text())
    assert body["http://127.0.0.1:1/v1|m"]["form"] == "json_object"
    assert response_format("json_schema", SCHEMA)["json_schema"]["strict"] is True
    assert "maxLength" not in json.dumps(response_format("json_schema", SCHEMA))
    assert response_format("json_object", SCHEMA)["schema"] == SCHEMA.schema


def test_the_ledger_records_the_schema_sent_and_the_path_taken(tmp_path):
    ledger = ExposureLedger(tmp_path / "exposure.jsonl")
    assistant = TeachingAssistant(
        ExposureChannel(GrammarChat(), ledger),
        BRIEF,
        AssistantConfig(candidates=2, max_new_tokens=48),
        count_tokens=lambda s: len(s.split()),
    )
    batch = assistant.propose(initial_messages(BRIEF), seed=0)
    assert batch.structured == "grammar" and batch.valid == ["Decide how the author feels."]
    request, response = _ledger(tmp_path / "exposure.jsonl")
    assert request["output_schema"]["schema"] == SCHEMA.schema
    assert response["structured"] == "grammar"
    off = TeachingAssistant(
        ExposureChannel(GrammarChat(), ExposureLedger(tmp_path / "off.jsonl")),
        BRIEF,
        AssistantConfig(candidates=1, max_new_tokens=48, structured_output=False),
        count_tokens=lambda s: len(s.split()),
    ).propose(initial_messages(BRIEF), seed=0)
    assert off.structured is None and off.valid == ["Decide how the author feels."]
    request, response = _ledger(tmp_path / "off.jsonl")
    assert "output_schema" not in request and "structured" not in response


def test_a_dialogue_gradient_example_replies_in_the_form_its_conversation_asked_for():
    from gpta.assistant.dialogue import DialogueExample

    fields = dict.fromkeys(DialogueExample.__dataclass_fields__)
    example = DialogueExample(
        **{**fields, "messages": initial_messages(BRIEF), "target": "Decide how the author feels."}
    )
    assert json.loads(example.chat()[-1]["content"]) == {
        "instruction": "Decide how the author feels."
    }
    plain = [{"role": "system", "content": "Reply with the instruction only."}, PLAIN[0]]
    old = DialogueExample(**{**fields, "messages": plain, "target": "Decide how it feels."})
    assert old.chat()[-1]["content"] == "Decide how it feels."


def test_requests_seeded_one_apart_share_no_completion_seed():
    from gpta.chat.base import sample_seed

    first = {sample_seed(1000, i) for i in range(4)}
    second = {sample_seed(1001, i) for i in range(4)}
    assert sample_seed(1000, 0) == 1000 and len(first) == 4 and not first & second


def test_the_config_takes_the_llamacpp_backend_and_its_threads():
    config = build_config({"assistant": {"backend": "llamacpp", "threads": 2}})
    assert (config.assistant.backend, config.assistant.threads) == ("llamacpp", 2)


# --- the real bundled model, in process --------------------------------------------------------


@pytest.fixture(scope="module")
def llamacpp_model():
    from gpta.llm.llamacpp import LlamaCppChatModel

    return LlamaCppChatModel("bundled:smollm2", threads=2)


@pytest.mark.slow
def test_llamacpp_in_process_answers_under_the_grammar(llamacpp_model, tmp_path):
    params = Sampling(n=3, temperature=0.8, top_p=0.95, max_new_tokens=48, seed=3)
    result = llamacpp_model.chat(initial_messages(BRIEF), params, schema=SCHEMA)
    assert result.structured == "grammar" and len(result.texts) == 3
    assert all(SCHEMA.check(text) in ("valid", "cut") for text in result.texts), result.texts
    assert sum(SCHEMA.check(text) == "valid" for text in result.texts) >= 2
    assert result.usage.prompt_tokens > 0 and result.usage.completion_tokens > 0
    again = llamacpp_model.chat(initial_messages(BRIEF), params, schema=SCHEMA)
    assert again.texts == result.texts  # seeded
    free = llamacpp_model.chat(PLAIN, replace(params, n=1))
    assert free.structured is None and free.texts[0].strip()
    # through the TA and the privacy channel: the path is in the ledger
    ledger = ExposureLedger(tmp_path / "exposure.jsonl")
    assistant = TeachingAssistant(
        ExposureChannel(llamacpp_model, ledger),
        BRIEF,
        AssistantConfig(backend="llamacpp", candidates=2, max_new_tokens=48, temperature=0.5),
        count_tokens=llamacpp_model.count_tokens,
    )
    batch = assistant.propose(initial_messages(BRIEF), seed=0)
    assert batch.structured == "grammar" and len(batch.proposals) == 2
    assert {p.source for p in batch.proposals} <= {"json", "json_partial"}
    request, response = _ledger(tmp_path / "exposure.jsonl")
    assert request["backend"] == "llamacpp" and response["structured"] == "grammar"


@pytest.mark.slow
def test_transformers_with_xgrammar_answers_under_the_grammar():
    from gpta.llm.local import LocalChatModel

    model = LocalChatModel("bundled:smollm2")
    result = model.chat(
        initial_messages(BRIEF),
        Sampling(n=2, temperature=0.5, top_p=0.95, max_new_tokens=40, seed=0),
        schema=proposal_schema(40),
    )
    assert result.structured == "grammar"
    assert all(text.lstrip().startswith("{") for text in result.texts), result.texts
    assert all(proposal_schema(40).check(t) in ("valid", "cut") for t in result.texts)


# --- the real llama.cpp server, and servers that refuse or ignore response_format -------------


class FormatProxy:
    """Forwards to the server; ``mode`` ``refuse`` answers 400 to a request that carries
    response_format, ``drop`` removes it and forwards (200, nothing enforced)."""

    def __init__(self, upstream: str, mode: str | None = None) -> None:
        host_port = upstream.split("//", 1)[1].split("/", 1)[0]
        host, port = host_port.split(":")
        self.mode = mode
        self.formats: list[str | None] = []  # response_format type of each chat request
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                fmt = body.get("response_format")
                proxy.formats.append(fmt.get("type") if fmt else None)
                if fmt and proxy.mode == "refuse":
                    payload = json.dumps({"error": {"message": "response_format: unsupported"}})
                    return self._send(400, payload.encode())
                if fmt and proxy.mode == "drop":
                    body.pop("response_format")
                connection = http.client.HTTPConnection(host, int(port), timeout=300)
                try:
                    connection.request(
                        "POST",
                        self.path,
                        body=json.dumps(body),
                        headers={"Content-Type": "application/json"},
                    )
                    response = connection.getresponse()
                    self._send(response.status, response.read())
                finally:
                    connection.close()

            def _send(self, status: int, payload: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory):
    process, base_url = start_llama_server(tmp_path_factory.mktemp("server") / "server.log")
    yield base_url
    stop_process(process)


def _server_model(base_url: str, forms: Path):
    from gpta.llm.openai_backend import OpenAIChatModel

    model = OpenAIChatModel(
        AssistantConfig(
            backend="openai",
            model="smollm2",
            base_url=base_url,
            max_retries=0,
            request_timeout=120,
            max_in_flight=1,
        )
    )
    model.forms = ServerForms(forms)
    return model


PARAMS = Sampling(n=1, temperature=0.5, top_p=0.95, max_new_tokens=48, seed=1)


@pytest.mark.slow
def test_the_server_honours_llama_cpp_s_form_and_that_is_remembered(llama_server, tmp_path):
    proxy = FormatProxy(llama_server)
    try:
        model = _server_model(proxy.base_url, tmp_path / "forms.json")
        first = model.chat(initial_messages(BRIEF), PARAMS, schema=SCHEMA)
        assert first.structured == "json_object" and SCHEMA.check(first.texts[0]) != "invalid"
        assert proxy.formats == ["json_schema", "json_object"]  # OpenAI's form refused first
        assert any("refused response_format json_schema" in f for f in first.faults)
        stored = json.loads((tmp_path / "forms.json").read_text())
        assert stored[f"{proxy.base_url}|smollm2"]["form"] == "json_object"
        again = _server_model(proxy.base_url, tmp_path / "forms.json")  # a later run
        second = again.chat(initial_messages(BRIEF), replace(PARAMS, n=2, seed=2), schema=SCHEMA)
        assert second.structured == "json_object" and len(second.texts) == 2
        assert proxy.formats[2:] == ["json_object", "json_object"]  # asked in it directly
        assert all(SCHEMA.check(text) != "invalid" for text in second.texts)
    finally:
        proxy.close()


@pytest.mark.slow
def test_a_server_that_refuses_response_format_gets_free_text(llama_server, tmp_path):
    proxy = FormatProxy(llama_server, mode="refuse")
    try:
        model = _server_model(proxy.base_url, tmp_path / "forms.json")
        ledger = ExposureLedger(tmp_path / "exposure.jsonl")
        assistant = TeachingAssistant(
            ExposureChannel(model, ledger),
            BRIEF,
            AssistantConfig(candidates=2, max_new_tokens=48, temperature=0.5),
            count_tokens=lambda s: len(s.split()),
        )
        batch = assistant.propose(initial_messages(BRIEF), seed=0)
        assert batch.error is None and batch.structured == "free_text"
        assert len(batch.proposals) == 2  # parsed: as JSON where the model wrote it, else text
        assert proxy.formats[:3] == ["json_schema", "json_object", None]
        request, response = _ledger(tmp_path / "exposure.jsonl")
        assert request["output_schema"]["name"] == "gpta_instruction"
        assert response["structured"] == "free_text"
        assert ServerForms(tmp_path / "forms.json").get(proxy.base_url, "smollm2") == "free_text"
    finally:
        proxy.close()


@pytest.mark.slow
def test_a_server_that_ignores_response_format_is_caught_by_validation(llama_server, tmp_path):
    proxy = FormatProxy(llama_server, mode="drop")
    try:
        model = _server_model(proxy.base_url, tmp_path / "forms.json")
        # "OK" is no JSON; room enough that the answer ends by itself
        result = model.chat(PLAIN, replace(PARAMS, max_new_tokens=160), schema=SCHEMA)
        assert result.structured == "free_text"
        assert proxy.formats == ["json_schema", "json_object", None]
        assert sum("not valid under the schema" in f for f in result.faults) == 2
    finally:
        proxy.close()
