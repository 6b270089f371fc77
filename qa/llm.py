"""Optional generated answers: a LangChain chat model answers from the passages, then every
citation is verified (`qa.verify`) before the answer is shown.

The model is chosen with a "provider:model" spec and created by LangChain's own
`init_chat_model`:

    openai:gpt-4o-mini                               OPENAI_API_KEY from the environment
    ollama:llama3.2                                  a local Ollama server
    openai:MODEL + base_url http://127.0.0.1:8080/v1 any OpenAI-compatible server
                                                     (llama.cpp, vLLM, LM Studio)

API keys are only ever read from the environment, by the provider's own client. The
offline `ExtractiveAnswerer` stays underneath as the fallback: when the model cannot be
reached, times out, rejects the key, does not exist, or gives an answer with no citation
that verifies, the extractive answer is returned with a note that says why. Nothing here
raises for a model failure, and no call waits longer than `timeout` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import re
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import date
from typing import TYPE_CHECKING, Any

from articleqa.prompts import render_prompt
from articleqa.qa.answerer import NO_ANSWER
from articleqa.qa.answering import AnswerContext, Answerer, Condensed, StreamEvent
from articleqa.qa.conversation import Turn
from articleqa.qa.defaults import DEFAULT_LLM_TIMEOUT
from articleqa.qa.features import question_form
from articleqa.qa.models import Answer, Passage
from articleqa.qa.verify import normalise, verify_answer

if TYPE_CHECKING:  # (LangChain's chat-model classes are imported when a model is made or used:
    # the extractive answerer, the default, never needs them)
    import numpy as np
    from langchain_core.language_models import BaseChatModel

__all__ = [
    "DEFAULT_TIMEOUT",
    "LLMAnswerer",
    "LLMConfigError",
    "LLMUnavailableError",
    "calls_in_flight",
    "create_chat_model",
    "parse_spec",
]

DEFAULT_TIMEOUT = DEFAULT_LLM_TIMEOUT  # declared in qa.defaults (read by the command line)
# Answers are one to three sentences; the cap bounds the time a runaway model can take.
DEFAULT_MAX_TOKENS = 400
# Sampling seed sent with temperature 0 where the provider takes one (OpenAI and compatible
# servers, Ollama): with greedy decoding most servers repeat themselves anyway, and the seed
# pins whatever sampling a server still does, so one question gets one answer on one machine.
DEFAULT_SEED = 0
# Local OpenAI-compatible servers ignore the key, but the OpenAI client refuses to start
# without one; this placeholder is only used with a base_url and no OPENAI_API_KEY set.
PLACEHOLDER_API_KEY = "not-needed-by-local-servers"
EXTRACTIVE = "extractive"
SPEC_FORM = "'extractive' or PROVIDER:MODEL, e.g. 'ollama:llama3.2' or 'openai:gpt-4o-mini'"
# History sent to the condensing prompt: the last few turns, answers shortened.
CONDENSE_TURNS = 3
CONDENSE_ANSWER_CHARS = 300
MAX_CONDENSED_CHARS = 300

_SPEC = re.compile(r"^([a-z][a-z0-9_]*):(\S.*)$")


class LLMConfigError(ValueError):
    """The LLM setting is malformed, names an unknown provider, or its package is missing."""


class LLMUnavailableError(RuntimeError):
    """The model could not answer (server down, timeout, bad key, model missing...)."""


def parse_spec(spec: str) -> tuple[str, str]:
    """Split "provider:model" into its parts.

    Raises:
        LLMConfigError: `spec` is not of that form (the message names it and the valid form).
    """
    match = _SPEC.match(spec.strip()) if isinstance(spec, str) else None
    if not match or not match.group(2).strip():
        raise LLMConfigError(f"LLM {spec!r} is not valid; use {SPEC_FORM}")
    return match.group(1), match.group(2).strip()


def create_chat_model(
    spec: str,
    *,
    base_url: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    max_tokens: int = DEFAULT_MAX_TOKENS,
) -> BaseChatModel:
    """A LangChain chat model for `spec`, created by `init_chat_model`.

    Args:
        spec: "provider:model", e.g. "ollama:llama3.2", "openai:gpt-4o-mini".
        base_url: The server's URL (an OpenAI-compatible server's `/v1` URL, or Ollama's).
        timeout: Seconds the client waits for the server (connecting, each read).
        max_tokens: Longest answer generated.

    Raises:
        LLMConfigError: A malformed spec, an unknown provider, or the provider's LangChain
            package is not installed.
        LLMUnavailableError: The provider's client refused to start (e.g. no API key).
    """
    if timeout <= 0:
        raise LLMConfigError(f"LLM timeout must be positive, got {timeout}")
    provider, model = parse_spec(spec)
    init_chat_model = _init_chat_model()
    kwargs: dict[str, Any] = {"temperature": 0}
    if provider in ("openai", "ollama"):
        kwargs["seed"] = DEFAULT_SEED
    if base_url:
        kwargs["base_url"] = base_url
    if provider == "ollama":
        # ChatOllama has no timeout/max_retries fields: the timeout goes to its httpx client.
        kwargs.update(client_kwargs={"timeout": timeout}, num_predict=max_tokens)
    else:
        # No retries: a retry after a timeout doubles the wait; the caller falls back instead.
        kwargs.update(timeout=timeout, max_retries=0, max_tokens=max_tokens)
    if provider == "openai" and base_url and not os.environ.get("OPENAI_API_KEY"):
        kwargs["api_key"] = PLACEHOLDER_API_KEY
    try:
        return init_chat_model(model, model_provider=provider, **kwargs)
    except ImportError as exc:
        raise LLMConfigError(
            f"LLM {spec!r}: the {provider!r} provider's LangChain package is not installed "
            f"({exc}). Install the LLM extra: pip install 'articleqa[llm]' (openai, ollama), "
            f"or langchain-{provider.replace('_', '-')}"
        ) from None
    except ValueError as exc:
        if "provider" in str(exc).lower():
            raise LLMConfigError(f"LLM {spec!r}: unknown provider {provider!r}; use {SPEC_FORM}. {exc}") from None
        raise LLMUnavailableError(describe_failure(exc, spec=spec, base_url=base_url, timeout=timeout)) from None
    except Exception as exc:  # the provider's client refused its settings, e.g. no API key
        raise LLMUnavailableError(describe_failure(exc, spec=spec, base_url=base_url, timeout=timeout)) from None


def _init_chat_model():
    """LangChain's `init_chat_model`: from `langchain` (maintained) when installed, else
    from `langchain_classic` (already a dependency, same function)."""
    try:
        from langchain.chat_models import init_chat_model
    except ImportError:
        from langchain_classic.chat_models import init_chat_model
    return init_chat_model


def describe_failure(exc: BaseException, *, spec: str, base_url: str | None, timeout: float) -> str:
    """A one-line reason for a model failure, naming the server, model or setting to fix."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    status = getattr(exc, "status_code", None)
    where = base_url or "the provider's default server"
    _, model = parse_spec(spec) if _SPEC.match(spec or "") else ("", spec)
    if names & {
        "APITimeoutError",
        "TimeoutException",
        "ReadTimeout",
        "ConnectTimeout",
        "TimeoutError",
        "_DeadlineExceeded",
    }:
        return f"{spec} gave no complete answer within {timeout:g} s (raise the LLM timeout, or use a smaller model)"
    if names & {"APIConnectionError", "ConnectError", "ConnectionError", "RemoteProtocolError"}:
        return f"cannot reach the server for {spec} at {where} ({_first_line(exc)})"
    if status in (401, 403) or names & {"AuthenticationError", "PermissionDeniedError"}:
        return f"the API key for {spec} was rejected ({_first_line(exc)}); set the provider's key in the environment"
    if status == 404 or names & {"NotFoundError"}:
        hint = f"; run: ollama pull {model}" if spec.startswith("ollama:") else ""
        return f"model {model!r} was not found at {where}{hint} ({_first_line(exc)})"
    if "api_key" in str(exc) or "API key" in str(exc) or "credentials" in str(exc).lower():
        return f"no API key for {spec}: {_first_line(exc)}"
    return f"{spec} failed: {type(exc).__name__}: {_first_line(exc)}"


def _first_line(exc: BaseException, limit: int = 200) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _DeadlineExceeded(TimeoutError):
    pass


def _text_of(chunk: Any) -> str:
    content = getattr(chunk, "content", chunk)
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content blocks
        return "".join(b.get("text", "") if isinstance(b, dict) else str(b) for b in content)
    return str(content or "")


class _EventLoopThread:
    """One asyncio event loop in a daemon thread ("articleqa-llm-loop"), started on first use
    and shared by every model call of the process.

    Calls run there as tasks so that a call that gives up can be cancelled where it waits: a
    cancelled task closes its HTTP response at once (the server sees the client go), whereas
    a thread blocked in a socket read cannot be stopped from outside and runs on until the
    client's own read timeout. One loop, not one per call: the providers' async HTTP clients
    are shared (cached) and their pooled connections belong to the loop that opened them; a
    fresh loop per call fails with "Event loop is closed" on the second call.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._running = 0

    def _get_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None or self._thread is None or not self._thread.is_alive():
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name=LOOP_THREAD_NAME, daemon=True)
            thread.start()
            self._loop, self._thread = loop, thread
        return self._loop

    def submit(self, coroutine) -> _Call:
        """Run `coroutine` as a task on the loop; counted until the task has ended."""
        with self._lock:
            loop = self._get_loop()
            self._running += 1
        return _Call(loop, coroutine, self._ended)

    def _ended(self, _task: asyncio.Task) -> None:
        with self._lock:
            self._running -= 1

    def in_flight(self) -> int:
        with self._lock:
            return self._running


class _Call:
    """A task on the loop thread, cancellable from any thread (a cancel issued before the task
    has started is queued behind its start, so it is never lost)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, coroutine, on_end) -> None:
        self._loop = loop
        self._task: asyncio.Task | None = None
        loop.call_soon_threadsafe(self._start, coroutine, on_end)

    def _start(self, coroutine, on_end) -> None:
        self._task = self._loop.create_task(coroutine)
        self._task.add_done_callback(on_end)

    def cancel(self) -> None:
        """Cancel the task (a no-op once it has ended); it ends at its next await."""
        if not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._cancel)

    def _cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()


LOOP_THREAD_NAME = "articleqa-llm-loop"
_LOOP = _EventLoopThread()


def calls_in_flight() -> int:
    """Model calls whose task has not ended yet. A call ends when its caller has the answer
    or gives up (deadline, error, or the reader of `stream_with_deadline` stopped reading)
    and the provider's stream has been closed, so this drops back to 0 between answers
    (tests use it to prove that a timed-out call does not live on)."""
    return _LOOP.in_flight()


def stream_with_deadline(model: BaseChatModel, prompt: str, timeout: float) -> Iterator[str]:
    """The model's reply to `prompt`, piece by piece, all of it within `timeout` seconds.

    The model streams (`astream`) as a task on the shared event loop thread; this generator
    waits for its pieces with a deadline, so a server that accepts the connection and then
    stalls cannot hang the caller even if the client's own timeout does not fire. When the
    deadline passes, the model fails, or the caller stops reading (closes this generator),
    the task is cancelled: the provider's stream is closed and its HTTP connection dropped
    then and there, so nothing keeps running after the caller moved on. (A chat model with
    no async implementation is run by LangChain in an executor thread a chunk at a time;
    cancelling stops it at its next chunk, the best that can be done from outside.)

    Raises:
        Whatever the model raised, or a TimeoutError when the deadline passes.
    """
    from langchain_core.messages import HumanMessage

    pieces: queue.Queue = queue.Queue()

    async def work() -> None:
        try:
            async with contextlib.aclosing(model.astream([HumanMessage(prompt)])) as chunks:
                async for chunk in chunks:
                    pieces.put(("delta", _text_of(chunk)))
            pieces.put(("done", None))
        except Exception as exc:  # handed to the caller's thread (cancellation is not caught)
            pieces.put(("error", exc))

    call = _LOOP.submit(work())
    deadline = time.monotonic() + timeout
    try:
        while True:
            remaining = deadline - time.monotonic()
            try:
                kind, value = pieces.get(timeout=max(remaining, 0.001))
            except queue.Empty:
                raise _DeadlineExceeded(f"no complete answer within {timeout:g} s") from None
            if kind == "done":
                return
            if kind == "error":
                raise value
            if value:
                yield value
    finally:
        call.cancel()  # a no-op when the task has ended; otherwise it ends at its next await


class LLMAnswerer:
    """Answers with a chat model, verifies the citations, falls back to the extractive answer.

    A `qa.answering.Answerer`: `stream` gives the model's text as it arrives (LangChain's
    `astream`), then the verified answer.

    Args:
        model: A LangChain chat model (None when it could not be created: see `unavailable`).
        fallback: The answerer (the extractive one) used whenever the model's answer cannot be
            shown; it also encodes the question (`question_vectors`).
        name: The spec, for notes ("openai:gpt-4o-mini").
        timeout: Seconds allowed for one complete reply (answer or condensed question).
        unavailable: Why the model could not be created; every answer then falls back.
        base_url: For messages only.
    """

    def __init__(
        self,
        model: BaseChatModel | None,
        fallback: Answerer,
        *,
        name: str = "llm",
        timeout: float = DEFAULT_TIMEOUT,
        unavailable: str | None = None,
        base_url: str | None = None,
    ):
        if model is None and unavailable is None:
            raise ValueError("LLMAnswerer needs a model, or the reason there is none")
        self.model = model
        self.fallback = fallback
        self.name = name
        self.timeout = timeout
        self.unavailable = unavailable
        self.base_url = base_url

    @property
    def llm(self) -> str:
        """The model's spec ("openai:gpt-4o-mini"): this answerer generates its answers."""
        return self.name

    @classmethod
    def from_spec(
        cls,
        spec: str,
        fallback: Answerer,
        *,
        base_url: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> LLMAnswerer:
        """Create the model for `spec`; a model that cannot start yet (no key) is not an
        error here: its answers fall back, each with the reason.

        Raises:
            LLMConfigError: see `create_chat_model`.
        """
        try:
            model = create_chat_model(spec, base_url=base_url, timeout=timeout)
            return cls(model, fallback, name=spec, timeout=timeout, base_url=base_url)
        except LLMUnavailableError as exc:
            return cls(None, fallback, name=spec, timeout=timeout, unavailable=str(exc), base_url=base_url)

    # ---- answering -------------------------------------------------------------------------

    def question_vectors(self, question: str) -> np.ndarray | None:
        """The fallback's question vectors (the same ones, so a fallback answer is unchanged)."""
        return self.fallback.question_vectors(question)

    def answer(self, context: AnswerContext) -> Answer:
        """The verified answer (or the fallback's with a note); see `stream`."""
        final = None
        for event in self.stream(context):
            if event.kind == "answer":
                final = event.answer
        assert final is not None  # stream always ends with an answer
        return final

    def stream(self, context: AnswerContext) -> Iterator[StreamEvent]:
        """Yield the model's text as it arrives, then the verified `Answer`.

        The model is asked `context.standalone` (a follow-up condensed with the conversation)
        or else `context.question`, about `context.passages` (numbered [1].. in order), on
        `context.today`; the fallback scores against `context.question`. With
        `context.unavailable` set the model is not called (it already failed for this
        question, e.g. while condensing) and the fallback answers at once.

        Yields:
            "delta" events with pieces of the raw model text, then exactly one "answer" event
            (last). The final text may differ from the streamed text (markers removed, quotes
            flagged, sentences dropped, or the fallback's answer); a note says so.
        """
        reason = context.unavailable or self.unavailable
        if reason:
            yield _final(self._fallback(context, _unavailable_note(reason)))
            return
        if not context.passages:
            yield _final(self._fallback(context, "no passages retrieved; the LLM was not asked"))
            return
        passages = list(context.passages)
        prompt = render_prompt(
            "answer",
            today=(context.today or date.today()).isoformat(),
            passages=format_passages(passages),
            question=context.standalone or context.question,
        )
        streamed: list[str] = []
        try:
            for piece in stream_with_deadline(self.model, prompt, self.timeout):
                streamed.append(piece)
                yield StreamEvent("delta", text=piece)
        except Exception as exc:
            reason = describe_failure(exc, spec=self.name, base_url=self.base_url, timeout=self.timeout)
            answer = self._fallback(context, _unavailable_note(reason))
            if streamed:
                answer.notes.append("the LLM stopped mid-answer; the partial text shown was discarded")
            yield _final(answer)
            return
        yield _final(self._verified(context, "".join(streamed)))

    def _verified(self, context: AnswerContext, raw: str) -> Answer:
        question = context.question
        text = raw.strip()
        if not text:
            return self._fallback(context, "the LLM returned an empty answer; showing the extractive answer")
        check = verify_answer(text, list(context.passages))
        if not check.grounded:
            if _abstains(text):
                note = "the LLM found no answer in the passages; showing the extractive answer"
            else:
                note = "the LLM answer was not shown: none of its citations verified against the passages; showing the extractive answer"
            answer = self._fallback(context, note)
            answer.notes.extend(f"LLM answer check: {n}" for n in check.notes)
            return answer
        notes = list(check.notes)
        if normalise(check.text) != normalise(text):
            notes.append(
                "the verified answer differs from the text streamed while it was generated (see the notes above)"
            )
        return Answer(
            question=question,
            text=check.text,
            grounded=True,
            citations=check.citations,
            short_answer=_yes_or_no(question, check.text),
            confidence=check.supported / check.sentences if check.sentences else 0.0,
            score=None,
            retrieval_query=context.retrieval_query or question,
            answerer="llm",
            notes=notes,
        )

    def _fallback(self, context: AnswerContext, note: str) -> Answer:
        answer = self.fallback.answer(context)
        if context.retrieval_query:
            answer.retrieval_query = context.retrieval_query
        answer.notes.insert(0, note)
        return answer

    # ---- follow-ups ------------------------------------------------------------------------

    def condense(self, question: str, history: Sequence[Turn]) -> Condensed:
        """The follow-up `question` rewritten as a standalone question with the model.

        Returns:
            `Condensed(standalone)`, or the failure when the model could not be reached
            (`unavailable=True`, with the reason) or its reply is unusable (the caller falls
            back to `qa.conversation.condense_query`).
        """
        if self.unavailable:
            return Condensed(failure=self.unavailable, unavailable=True)
        lines = []
        for turn in list(history)[-CONDENSE_TURNS:]:
            lines.append(f"User: {turn.question}")
            if turn.answer:
                answer = " ".join(re.sub(r"\[\d+\]", "", turn.answer).split())
                lines.append(f"Assistant: {answer[:CONDENSE_ANSWER_CHARS]}")
        prompt = render_prompt("condense_question", history="\n".join(lines), question=question)
        try:
            reply = "".join(stream_with_deadline(self.model, prompt, self.timeout))
        except Exception as exc:
            reason = describe_failure(exc, spec=self.name, base_url=self.base_url, timeout=self.timeout)
            return Condensed(failure=reason, unavailable=True)
        standalone = _first_question(reply)
        if not standalone or len(standalone) > MAX_CONDENSED_CHARS:
            return Condensed(failure=f"the LLM's condensed question was unusable ({reply.strip()[:80]!r})")
        return Condensed(standalone=standalone)


def _final(answer: Answer) -> StreamEvent:
    return StreamEvent("answer", answer=answer)


def _unavailable_note(reason: str) -> str:
    """The note of an answer that fell back because the model could not answer at all."""
    note = f"LLM unavailable: {reason}"
    return note if "extractive answer" in note else note + "; showing the extractive answer"


def _first_question(reply: str) -> str:
    """The first non-empty line of a condensing reply, without a label or quotes."""
    for line in reply.strip().splitlines():
        line = re.sub(r"^\s*(standalone question|question)\s*:\s*", "", line, flags=re.I).strip()
        line = line.strip("\"'“”").strip()
        if line:
            return line
    return ""


def _yes_or_no(question: str, text: str) -> str | None:
    """ "Yes" or "No" when a yes/no question's verified answer starts with one (the prompt asks
    for it), so the reader sees the verdict first, with the cited sentences after it."""
    if question_form(question) != "yes_no":
        return None
    first = re.match(r"\W*(yes|no)\b", text, re.IGNORECASE)
    return first.group(1).capitalize() if first else None


def _abstains(text: str) -> bool:
    return normalise(NO_ANSWER).lower().rstrip(".") in normalise(text).lower()


def format_passages(passages: list[Passage]) -> str:
    """The numbered passages with their article metadata, each fenced as data.

    A passage that itself contains the closing tag cannot end its fence early: the tag is
    broken up inside the text (a quote of that exact spot would then not verify; harmless).
    """
    blocks = []
    for n, p in enumerate(passages, 1):
        attrs = {
            "n": str(n),
            "title": p.title,
            "source": p.source or "unknown",
            "published": p.published_at.isoformat() if p.published_at else "unknown",
            "article": p.article_id,
        }
        head = " ".join(f'{k}="{_attr(v)}"' for k, v in attrs.items())
        body = re.sub(r"</?\s*passages?\b", lambda m: m.group(0).replace("<", "< "), p.text, flags=re.I)
        blocks.append(f"<passage {head}>\n{body}\n</passage>")
    return "\n\n".join(blocks)


def _attr(value: str) -> str:
    return " ".join(value.replace('"', "'").replace("<", "(").replace(">", ")").split())
