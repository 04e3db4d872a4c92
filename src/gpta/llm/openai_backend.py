"""The ``openai`` backend: any OpenAI-compatible chat-completions server.

OpenAI, Azure OpenAI (its ``/openai/v1`` endpoint), vLLM, Ollama, llama.cpp's server, LM
Studio and hosted providers all speak this protocol. The official ``openai`` SDK sends the
requests; its own retry loop is switched off (``max_retries=0``) and tenacity retries
instead, so that the waits honour ``Retry-After``, add jitter, and every fault is recorded.

- The API key is read from the environment variable named by ``assistant.api_key_env``;
  it never appears in a config file, a cache key, the ledger, the history or an error message.
- Servers that ignore ``n`` (llama.cpp, Ollama) return one choice: the missing candidates
  are fetched by single-completion requests, in parallel, each with its own seed
  (:func:`gpta.chat.base.sample_seed`); from then on the model object sends all n at once
  as single-completion requests (:meth:`OpenAIChatModel._complete`).
- At most ``assistant.max_in_flight`` requests are in flight per process and endpoint.
- With a schema (structured output), the ``response_format`` form the server honours is
  learned and remembered (:meth:`OpenAIChatModel._structured`, :mod:`gpta.chat.structured`).
"""

from __future__ import annotations

import functools
import json
import os
import random
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from gpta.chat.base import (
    ChatResult,
    LLMRequestError,
    Message,
    Sampling,
    Usage,
    count_message_tokens_approx,
    count_tokens_approx,
    sample_seed,
)
from gpta.chat.structured import SERVER_FORMS, OutputSchema, ServerForms, response_format
from gpta.chat.usage import checked_usage, completion_token_ceiling, prompt_token_ceiling
from gpta.errors import GptaUserError
from gpta.limits import RESPONSE_BYTES

if TYPE_CHECKING:
    from gpta.config import AssistantConfig

DEFAULT_CONTEXT_WINDOW = 8192
CLIP_CHARS_PER_TOKEN = 8  # a runaway completion is cut to this many characters a token
_SEMAPHORES: dict[tuple[str, int], threading.BoundedSemaphore] = {}
_SEMAPHORES_LOCK = threading.Lock()


def _in_flight_gate(endpoint: str, limit: int) -> threading.BoundedSemaphore:
    """One semaphore per endpoint and limit, shared by every model object in the process."""
    with _SEMAPHORES_LOCK:
        return _SEMAPHORES.setdefault((endpoint, limit), threading.BoundedSemaphore(limit))


def resolve_secret(value: str, *, option: str) -> str:
    """``env:NAME`` reads the environment variable NAME; anything else is used as written."""
    if not value.startswith("env:"):
        return value
    name = value[4:]
    secret = os.environ.get(name)
    if not secret:
        raise GptaUserError(
            f"{option}: the environment variable {name} is not set",
            hint=f"export {name}=... before running gpta",
        )
    return secret


class MalformedResponseError(RuntimeError):
    """The server answered 2xx with a body that is not a chat completion."""


class ResponseTooLarge(RuntimeError):
    """The server's answer passed :data:`gpta.limits.RESPONSE_BYTES`; the rest was not read."""

    def __init__(self, size: str, limit: int) -> None:
        super().__init__(
            f"the server's answer holds {size}, more than gpta reads ({limit:,} bytes, "
            f"{RESPONSE_BYTES.env}); the rest was not read"
        )


def body_cap(limit: int) -> Callable[[Any], None]:
    """A response hook for the SDK's HTTP client (httpx or httpx2, whichever the installed
    openai uses) that refuses a body over ``limit`` bytes: from its Content-Length before a
    byte of it is read, else as soon as the bytes read pass it (the body is never held whole).

    Neither client has a size limit of its own; a hook that wraps the response's byte stream
    is their documented extension point (``event_hooks``), so no transport is replaced and
    proxies from the environment keep working. The bytes counted are those on the wire:
    requests ask for ``Accept-Encoding: identity`` so that a server that honours it sends
    nothing compressed."""

    def hook(response: Any) -> None:
        declared = str(response.headers.get("content-length", "")).strip()
        if declared.isdigit() and int(declared) > limit:
            raise ResponseTooLarge(f"{int(declared):,} bytes (its Content-Length)", limit)
        base = sys.modules[type(response).__module__.partition(".")[0]].SyncByteStream
        response.stream = _capped_stream_class(base)(response.stream, limit)

    return hook


@functools.cache
def _capped_stream_class(base: type) -> type:
    """A byte stream of the client's own stream type (its reader checks the type) that
    counts the bytes it passes on and raises :class:`ResponseTooLarge` past ``limit``."""

    class CappedStream(base):
        def __init__(self, inner: Any, limit: int) -> None:
            self.inner = inner
            self.limit = limit

        def __iter__(self) -> Any:
            read = 0
            for chunk in self.inner:
                read += len(chunk)
                if read > self.limit:
                    raise ResponseTooLarge(f"more than {self.limit:,} bytes", self.limit)
                yield chunk

        def close(self) -> None:
            self.inner.close()

    return CappedStream


def _too_large(err: BaseException) -> ResponseTooLarge | None:
    """The :class:`ResponseTooLarge` behind ``err`` (older SDKs wrap it in a connection
    error), if any."""
    for candidate in (err, err.__cause__, err.__context__):
        if isinstance(candidate, ResponseTooLarge):
            return candidate
    return None


def _status(err: BaseException) -> int | None:
    return getattr(err, "status_code", None)


def is_retryable(err: BaseException) -> bool:
    """429, 408, 409, 5xx, timeouts, dropped connections and garbled bodies are transient."""
    import openai

    if _too_large(err) is not None:  # asking again would read as much again
        return False
    if isinstance(err, openai.APIConnectionError):  # includes APITimeoutError
        return True
    if isinstance(err, MalformedResponseError | openai.APIResponseValidationError):
        return True
    if isinstance(err, json.JSONDecodeError):
        return True
    if _format_refused(err):  # a request the server cannot take will not change on a retry
        return False
    status = _status(err)
    return status is not None and (status in (408, 409, 429) or status >= 500)


def _format_refused(err: BaseException) -> bool:
    """The server does not take the request's response_format: HTTP 400 or 422, or a 500 that
    names it (llama-cpp-python's server answers 500 to a body its validation refuses)."""
    status = _status(err)
    if status in (400, 422):
        return True
    return status == 500 and "response_format" in str(err)


def _retry_after(err: BaseException | None) -> float | None:
    response = getattr(err, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return max(0.0, float(value) / divisor)
        except ValueError:
            import email.utils

            parsed = email.utils.parsedate_to_datetime(value) if value else None
            if parsed is not None:
                return max(0.0, parsed.timestamp() - time.time())
    return None


class _Wait:
    """Exponential backoff with full jitter; a server's Retry-After wins (capped)."""

    def __init__(self, base: float, cap: float) -> None:
        self.cap = cap
        self.backoff = wait_random_exponential(multiplier=base, max=cap)

    def __call__(self, state: RetryCallState) -> float:
        err = state.outcome.exception() if state.outcome else None
        after = _retry_after(err)
        if after is not None:
            return min(after + random.uniform(0, 0.1), self.cap)
        return self.backoff(state)


class OpenAIChatModel:
    """Chat completions from an OpenAI-compatible server through the official SDK."""

    backend = "openai"

    def __init__(self, config: AssistantConfig) -> None:
        import openai

        self.model_name = config.model
        self.base_url = (config.base_url or "https://api.openai.com/v1").rstrip("/")
        key = os.environ.get(config.api_key_env, "")
        if not key and config.base_url is None:
            raise GptaUserError(
                f"assistant.backend openai: the environment variable {config.api_key_env} "
                "holding the API key is not set",
                hint=f"export {config.api_key_env}=sk-... (or set assistant.api_key_env to the "
                "variable that holds it; servers you host may need no key: set assistant.base_url)",
            )
        self._secrets = [key] if key else []
        headers = {}
        for name, value in config.extra_headers.items():
            headers[name] = resolve_secret(value, option=f"assistant.extra_headers.{name}")
            if value.startswith("env:"):
                self._secrets.append(headers[name])
        self.client = openai.OpenAI(
            api_key=key or "no-key",
            base_url=self.base_url,
            timeout=config.request_timeout,
            max_retries=0,
            default_headers={"Accept-Encoding": "identity", **headers},
            http_client=openai.DefaultHttpxClient(
                event_hooks={"response": [body_cap(RESPONSE_BYTES.value())]}
            ),
        )
        self.max_retries = config.max_retries
        self.backoff_base = config.retry_backoff
        self.backoff_cap = config.retry_max_wait
        self.token_param = config.token_param
        self.max_in_flight = config.max_in_flight
        self.gate = _in_flight_gate(self.base_url, config.max_in_flight)
        self.context_window = config.context_window or DEFAULT_CONTEXT_WINDOW
        self.count_tokens = count_tokens_approx
        self.forms = ServerForms()  # which response_format this server honours, once learned
        # Whether this server ignores n (it answered one choice to a request for more); see
        # _complete. Kept by this object, i.e. for one run, and never written anywhere: a
        # run's request bodies then do not depend on what ran before it (the response cache
        # and replays key on them), and a finding that single-completion requests can never
        # disprove does not outlive the server it was made on. Requests of one object are
        # sequential in gpta (a background request is joined before the next is sent).
        self.ignores_n = False

    def identity(self) -> dict[str, str]:
        """Cache identity: backend, endpoint and model; never the key or the headers."""
        return {"backend": self.backend, "base_url": self.base_url, "model": self.model_name}

    def count_message_tokens(self, messages: list[Message]) -> int:
        return count_message_tokens_approx(messages)

    def redact(self, text: str) -> str:
        """Remove every secret this backend holds from ``text``."""
        for secret in self._secrets:
            if secret:
                text = text.replace(secret, "***")
        return text

    # --- one HTTP request, retried ---------------------------------------------------------
    def _create(self, messages: list[Message], sampling: Sampling, fmt: Any) -> Any:
        # keyword arguments of the SDK's create (the token limit's name depends on the server)
        request: dict[str, Any] = {
            "model": self.model_name,
            "messages": messages,
            "n": sampling.n,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "seed": sampling.seed,
            self.token_param: sampling.max_new_tokens,
        }
        if fmt is not None:
            request["response_format"] = fmt
        with self.gate:
            response = self.client.chat.completions.create(**request)
        choices = getattr(response, "choices", None)
        if not isinstance(choices, list) or not choices:
            raise MalformedResponseError("the response has no choices")
        return response

    def _request(
        self, messages: list[Message], sampling: Sampling, fmt: Any
    ) -> tuple[Any, int, list[str]]:
        """One completion request (``fmt``: its response_format, or ``None``) with retries;
        returns (response, attempts, faults)."""
        faults: list[str] = []

        def note(state: RetryCallState) -> None:
            err = state.outcome.exception() if state.outcome else None
            if err is not None:
                faults.append(self.redact(_describe(err)))

        retrying = Retrying(
            retry=retry_if_exception(is_retryable),
            stop=stop_after_attempt(self.max_retries + 1),
            wait=_Wait(self.backoff_base, self.backoff_cap),
            after=note,
            reraise=True,
        )
        attempts = 0
        try:
            for attempt in retrying:
                with attempt:
                    attempts = attempt.retry_state.attempt_number
                    response = self._create(messages, sampling, fmt)
        except Exception as err:
            message = self.redact(_describe(err))
            if not faults or faults[-1] != message:
                faults.append(message)
            verdict = f"gave up after {attempts} attempts" if is_retryable(err) else "not retryable"
            failure = LLMRequestError(
                f"{self.model_name} at {self.base_url}: {message} ({verdict})",
                attempts=attempts,
                faults=tuple(faults),
            )
            failure.format_refused = _format_refused(err)
            raise failure from None
        return response, attempts, faults

    def _usage(
        self, response: Any, messages: list[Message], texts: list[str], max_new_tokens: int
    ) -> tuple[Usage, list[str]]:
        """The server's token counts, and a warning for each it reported that no request
        could take (negative, fractional, NaN, over what the bytes hold: gpta's estimate
        is used instead); an estimate, without a warning, when it reports none."""
        usage = getattr(response, "usage", None)
        return checked_usage(
            (getattr(usage, "prompt_tokens", None), getattr(usage, "completion_tokens", None)),
            (
                self.count_message_tokens(messages),
                sum(count_tokens_approx(t) for t in texts if t),
            ),
            (prompt_token_ceiling(messages), completion_token_ceiling(texts, max_new_tokens)),
        )

    # --- the ChatModel interface -----------------------------------------------------------
    def chat(
        self,
        messages: list[Message],
        sampling: Sampling,
        *,
        schema: OutputSchema | None = None,
    ) -> ChatResult:
        start = time.perf_counter()
        max_new_tokens = sampling.max_new_tokens
        if schema is None:
            texts, _, usage, attempts, faults = self._complete(messages, sampling, None)
            structured = None
        else:
            texts, usage, attempts, faults, structured = self._structured(
                messages, sampling, schema
            )
        allowed = len(texts) * max_new_tokens
        if usage.completion_tokens > allowed * 1.25 + 8:  # the server ignored the limit
            faults.append(
                f"LimitIgnored: {usage.completion_tokens} completion tokens for "
                f"{len(texts)} x {max_new_tokens} allowed; each text clipped to "
                f"{CLIP_CHARS_PER_TOKEN * max_new_tokens} characters"
            )
            texts = [t[: CLIP_CHARS_PER_TOKEN * max_new_tokens] for t in texts]
        return ChatResult(
            texts=texts,
            usage=usage,
            seconds=time.perf_counter() - start,
            attempts=attempts,
            faults=tuple(faults),
            structured=structured,
        )

    def _structured(
        self, messages: list[Message], sampling: Sampling, schema: OutputSchema
    ) -> tuple[list[str], Usage, int, list[str], str]:
        """Ask in the form this server is known to honour, else learn it: OpenAI's
        ``json_schema`` form, then llama-cpp-python's ``json_object`` form, then free text.

        A form is dropped when the server refuses it (HTTP 400/422) or answers 200 with a
        finished completion that is not valid under the schema (the server ignored it; the
        same conversation is then asked again in the next form). A form is remembered once a
        completion in it was valid; an answer whose completions were only cut short by the
        token limit decides nothing."""
        known = self.forms.get(self.base_url, self.model_name)
        order = list(SERVER_FORMS)
        if known is not None:
            order = order[order.index(known) :]
        usage, attempts, faults = Usage(), 0, []
        for form in order:
            fmt = response_format(form, schema)
            try:
                texts, finish, more, tries, seen = self._complete(messages, sampling, fmt)
            except LLMRequestError as err:
                attempts += err.attempts
                faults += list(err.faults)
                if form != "free_text" and _refuses_format(err):
                    faults.append(f"StructuredOutput: the server refused response_format {form}")
                    self.forms.put(self.base_url, self.model_name, _next(form), f"{form} refused")
                    continue
                raise LLMRequestError(str(err), attempts=attempts, faults=tuple(faults)) from None
            usage, attempts, faults = usage + more, attempts + tries, faults + seen
            if form == "free_text":
                if known != "free_text":
                    self.forms.put(self.base_url, self.model_name, form, "neither form honoured")
                return texts, usage, attempts, faults, form
            verdicts = [_verdict(schema, t, why) for t, why in zip(texts, finish, strict=True)]
            if "valid" in verdicts:
                if known != form:
                    self.forms.put(self.base_url, self.model_name, form, "valid answer")
                return texts, usage, attempts, faults, form
            if "invalid" in verdicts:
                faults.append(
                    f"StructuredOutput: the server accepted response_format {form} but its "
                    "answer is not valid under the schema; asking again without it"
                )
                self.forms.put(self.base_url, self.model_name, _next(form), f"{form} ignored")
                continue
            return texts, usage, attempts, faults, form  # every answer cut short: undecided
        raise AssertionError("free_text always answers or raises")  # pragma: no cover

    def _complete(
        self, messages: list[Message], sampling: Sampling, fmt: Any
    ) -> tuple[list[str], list[str | None], Usage, int, list[str]]:
        """n completions: (texts, finish reasons, usage, attempts, faults).

        A server not yet known to ignore ``n`` is asked once for all n (a server that honours
        it bills the prompt once); when it answers one choice, the model remembers that it
        ignores ``n`` and fetches the rest one by one. Once known, the n completions go out at
        once as n single-completion requests (``max_in_flight`` at a time), so the answer
        costs one round trip instead of two. Completion i is seeded ``sample_seed(seed, i)``
        either way, so the request bodies, and the texts of a seeded server, are the same
        whichever way the run learned it."""
        n = sampling.n
        if n > 1 and self.ignores_n:
            fetched = self._one_by_one(messages, sampling, fmt, range(n))
            if all(isinstance(item, LLMRequestError) for item in fetched):
                raise _all_failed([e for e in fetched if isinstance(e, LLMRequestError)])
            return _gathered(fetched, [], [], Usage(), 0, [])
        response, attempts, faults = self._request(messages, sampling, fmt)
        texts, finish, usage, warnings = self._read(response, messages, sampling, limit=n)
        if len(texts) == 1 < n:
            self.ignores_n = True
        missing = n - len(texts)
        if missing <= 0:
            return texts, finish, usage, attempts, faults + warnings
        fetched = self._one_by_one(messages, sampling, fmt, range(1, missing + 1))
        return _gathered(fetched, texts, finish, usage, attempts, faults + warnings)

    def _read(
        self, response: Any, messages: list[Message], sampling: Sampling, *, limit: int
    ) -> tuple[list[str], list[str | None], Usage, list[str]]:
        """The first ``limit`` choices of a response: texts, finish reasons, usage, warnings."""
        choices = list(response.choices)[:limit]
        texts = [_choice_text(c) for c in choices]
        finish = [getattr(c, "finish_reason", None) for c in choices]
        usage, warnings = self._usage(response, messages, texts, sampling.max_new_tokens)
        return texts, finish, usage, warnings

    def _one_by_one(
        self, messages: list[Message], sampling: Sampling, fmt: Any, indices: range
    ) -> list[_Single | LLMRequestError]:
        """Completion i of each index as its own single-completion request (seed
        ``sample_seed(seed, i)``), all at once within ``max_in_flight``; in index order, a
        request that failed as its error (the candidates that did arrive are kept)."""

        def one(i: int) -> _Single | LLMRequestError:
            single = replace(sampling, n=1, seed=sample_seed(sampling.seed, i))
            try:
                response, attempts, faults = self._request(messages, single, fmt)
            except LLMRequestError as err:
                return err
            texts, finish, usage, warnings = self._read(response, messages, single, limit=1)
            return _Single(texts[0], finish[0], usage, attempts, faults + warnings)

        with ThreadPoolExecutor(max_workers=min(len(indices), self.max_in_flight)) as pool:
            return list(pool.map(one, indices))


@dataclass(frozen=True)
class _Single:
    """One single-completion request's answer."""

    text: str
    finish: str | None
    usage: Usage
    attempts: int
    faults: list[str]


def _gathered(
    fetched: list[_Single | LLMRequestError],
    texts: list[str],
    finish: list[str | None],
    usage: Usage,
    attempts: int,
    faults: list[str],
) -> tuple[list[str], list[str | None], Usage, int, list[str]]:
    """What arrived added, in index order, to what a first request gave."""
    texts, finish, faults = list(texts), list(finish), list(faults)
    for item in fetched:
        if isinstance(item, LLMRequestError):
            attempts += item.attempts
            faults += list(item.faults)
            continue
        texts.append(item.text)
        finish.append(item.finish)
        usage = usage + item.usage
        attempts += item.attempts
        faults += item.faults
    return texts, finish, usage, attempts, faults


def _all_failed(errors: list[LLMRequestError]) -> LLMRequestError:
    """No single-completion request was answered: the first one's error, with every
    request's attempts and faults."""
    failure = LLMRequestError(
        str(errors[0]),
        attempts=sum(e.attempts for e in errors),
        faults=tuple(f for e in errors for f in e.faults),
    )
    failure.format_refused = errors[0].format_refused
    return failure


def _verdict(schema: OutputSchema, text: str, finish_reason: str | None) -> str:
    """``valid``, ``cut`` (a JSON object the token limit stopped) or ``invalid`` (an answer
    no enforcing server gives: not a JSON object from its first character, or finished and
    not what the schema allows)."""
    verdict = schema.check(text)
    if verdict == "valid":
        return verdict
    if not text.lstrip().startswith("{"):
        return "invalid"
    if finish_reason == "length":
        return "cut"
    return verdict if finish_reason is None else "invalid"


def _next(form: str) -> str:
    return SERVER_FORMS[min(SERVER_FORMS.index(form) + 1, len(SERVER_FORMS) - 1)]


def _refuses_format(err: LLMRequestError) -> bool:
    """The request failed because the server does not take its response_format."""
    return err.format_refused


def _describe(err: BaseException) -> str:
    too_large = _too_large(err)
    if too_large is not None:
        return f"ResponseTooLarge: {too_large}"
    status = _status(err)
    detail = str(err).strip().splitlines()[0] if str(err).strip() else ""
    detail = detail[:200]
    head = type(err).__name__ + (f" {status}" if status is not None else "")
    return f"{head}: {detail}" if detail else head


def _choice_text(choice: Any) -> str:
    message = getattr(choice, "message", None)
    content = getattr(message, "content", None)
    return content if isinstance(content, str) else ""
