"""`ArticleQA`: the Python API. Open an index, ask questions, get typed, cited answers.

from articleqa.qa import ArticleQA

with ArticleQA.open(".articleqa") as qa:
    answer = qa.ask("Who called the meeting a waste of time?")
    print(answer.text)                       # the quoted sentence with a [1] marker
    for c in answer.citations:
        print(c.n, c.title, c.quote, c.start, c.end)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from articleqa.index import (
    DEFAULT_BACKEND,
    DEFAULT_COLLECTION,
    DEFAULT_INDEX_DIR,
    DEFAULT_MODEL,
    IndexStore,
    apply_offline_environment,
    open_index,
)
from articleqa.index.embeddings import Backend
from articleqa.index.precision import DEFAULT_PRECISION, Precision
from articleqa.index.store import read_manifest
from articleqa.qa.answerer import ExtractiveAnswerer
from articleqa.qa.answering import AnswerContext, Answerer, StreamEvent
from articleqa.qa.conversation import Turn, as_turns, condense_query, conversation_articles
from articleqa.qa.llm import DEFAULT_TIMEOUT, EXTRACTIVE, LLMAnswerer, LLMUnavailableError, create_chat_model
from articleqa.qa.llm import LLMConfigError as _LLMSpecError
from articleqa.qa.metadata import SourceCatalog
from articleqa.qa.models import Answer
from articleqa.qa.options import DEFAULT_K, QAOptions
from articleqa.qa.retrieval import (
    DEFAULT_RETRIEVAL_MODE,
    RETRIEVAL_MODES,
    Filters,
    HybridSearch,
    RetrievalMode,
    RetrievalResult,
)

if TYPE_CHECKING:
    import numpy as np

    from articleqa.qa.retriever import HybridRetriever


class QAError(RuntimeError):
    """A question or index the system cannot work with; the message says what to do."""


class EmptyQuestionError(QAError, ValueError):
    pass


class EmptyIndexError(QAError):
    pass


class LLMConfigError(QAError, _LLMSpecError):
    """The `llm` setting is malformed, names an unknown provider, or lacks its package."""


@dataclass
class _Prepared:
    """A question ready to answer: retrieval done, follow-up condensed."""

    question: str
    result: RetrievalResult
    standalone: str | None = None  # the LLM's standalone rewrite of a follow-up
    notes: list[str] = field(default_factory=list)
    unavailable: str | None = None  # the LLM already failed for this question
    focus_articles: tuple[str, ...] = ()  # a follow-up's conversation articles

    def context(self, today: date | None) -> AnswerContext:
        """What the answerer gets: the question, the passages, the question's vectors (encoded
        once, before retrieval), the follow-up's standalone form."""
        return AnswerContext(
            question=self.question,
            passages=self.result.passages,
            retrieval_query=self.result.query,
            question_vectors=self.result.question_vectors,
            standalone=self.standalone,
            today=today,
            unavailable=self.unavailable,
            focus_articles=self.focus_articles,
        )


def source_catalog(store: IndexStore) -> Callable[[], SourceCatalog]:
    """A function returning the catalog of `store`'s article sources, re-read only when the
    number of articles changes (the web app adds articles while serving)."""
    cached: dict[str, Any] = {}

    def current() -> SourceCatalog:
        count = store.articles.count()
        if cached.get("count") != count:
            cached.update(count=count, catalog=SourceCatalog(store.articles.sources()))
        return cached["catalog"]

    return current


def extractive_answerer(store: IndexStore, **options: Any) -> ExtractiveAnswerer:
    """The offline answerer over `store`, reading the sentence vectors stored with its chunks
    and recognising the sources of its articles in questions."""
    return ExtractiveAnswerer(
        store.embeddings,
        sentence_vectors=store.lexical.sentence_vectors,
        catalog=source_catalog(store),
        document_frequencies=store.lexical.document_frequencies,
        **options,
    )


class ArticleQA:
    """Question answering over one index folder.

    Args:
        store: The opened index.
        k: Passages retrieved per question.
        answerer: Turns passages into an answer (default: the offline extractive answerer;
            `ArticleQA.open(..., llm=...)` puts a `qa.llm.LLMAnswerer` here).
        retrieval_mode: "hybrid" (dense + BM25, the default), or "dense" or "lexical" alone
            (for evaluation).
    """

    def __init__(
        self,
        store: IndexStore,
        *,
        k: int = DEFAULT_K,
        answerer: Answerer | None = None,
        retrieval_mode: RetrievalMode = DEFAULT_RETRIEVAL_MODE,
    ):
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        _check_mode(retrieval_mode)
        self.store = store
        self.retriever = HybridSearch(store=store, k=k, mode=retrieval_mode)
        self.answerer: Answerer = answerer or extractive_answerer(store)
        self._catalog = source_catalog(store)

    @classmethod
    def open(
        cls,
        index_dir: str | Path = DEFAULT_INDEX_DIR,
        *,
        embedding_model: str = DEFAULT_MODEL,
        embedding_backend: Backend = DEFAULT_BACKEND,
        embedding_precision: Precision = DEFAULT_PRECISION,
        cache_dir: Path | None = None,
        chroma_url: str | None = None,
        database_url: str | None = None,
        collection: str = DEFAULT_COLLECTION,
        k: int = DEFAULT_K,
        answer_threshold: float | None = None,
        llm: str | None = None,
        llm_base_url: str | None = None,
        llm_timeout: float = DEFAULT_TIMEOUT,
        retrieval_mode: RetrievalMode = DEFAULT_RETRIEVAL_MODE,
    ) -> ArticleQA:
        """Open an existing index folder for questions.

        The keyword arguments are the fields of `qa.options.QAOptions`, with its defaults;
        code holding the settings passes one of those to `from_options` instead.

        Args:
            embedding_backend: "auto" (OpenVINO when it can run the model, else PyTorch),
                "openvino" or "torch"; `cache_dir` keeps the OpenVINO export.
            embedding_precision: "auto" (what the CPU runs fastest), "fp32", "bf16" or "int8"
                (`index.precision`).
            llm: None or "extractive" (default): the offline extractive answerer. Otherwise a
                LangChain chat model as "provider:model" ("ollama:llama3.2",
                "openai:gpt-4o-mini"); its answers are verified, and it falls back to the
                extractive answer (with a note) whenever it fails.
            llm_base_url: The model server's URL, e.g. "http://127.0.0.1:8080/v1" for an
                OpenAI-compatible server (llama.cpp, vLLM, LM Studio).
            llm_timeout: Seconds allowed for one complete LLM reply.
            retrieval_mode: "hybrid" (default), "dense" or "lexical" (for evaluation).

        Raises:
            See `from_options`.
        """
        options = QAOptions(
            embedding_model=embedding_model,
            embedding_backend=embedding_backend,
            embedding_precision=embedding_precision,
            cache_dir=cache_dir,
            chroma_url=chroma_url,
            database_url=database_url,
            collection=collection,
            k=k,
            answer_threshold=answer_threshold,
            llm=llm,
            llm_base_url=llm_base_url,
            llm_timeout=llm_timeout,
        )
        return cls.from_options(index_dir, options, retrieval_mode=retrieval_mode)

    @classmethod
    def from_options(
        cls,
        index_dir: str | Path = DEFAULT_INDEX_DIR,
        options: QAOptions | None = None,
        *,
        retrieval_mode: RetrievalMode = DEFAULT_RETRIEVAL_MODE,
    ) -> ArticleQA:
        """Open an existing index folder for questions as `options` say (None: the defaults).

        This is the Python API's entry point: it sets the offline switches
        (`index.apply_offline_environment`: no Hugging Face Hub downloads, no telemetry)
        unless they are already set.

        Raises:
            EmptyIndexError: There is no index at `index_dir`, or it holds no articles.
            index.IndexMismatchError: It was built with another embedding model.
            LLMConfigError: `llm` is malformed, names an unknown provider or one whose
                LangChain package is missing, or `llm_timeout` is not positive (checked
                before the index is opened). A model that cannot be reached or has no API
                key is not an error here: its answers fall back, each with a note.
            ValueError: `retrieval_mode` is not one of hybrid, dense, lexical.
        """
        options = options or QAOptions()
        _check_mode(retrieval_mode)
        apply_offline_environment()  # the Python API's entry point: offline unless already set
        llm = (options.llm or "").strip()
        use_llm = bool(llm) and llm.lower() != EXTRACTIVE
        model, unavailable = None, None
        if use_llm:  # before the (slower) index opening: a bad setting is reported at once
            try:
                model = create_chat_model(llm, base_url=options.llm_base_url, timeout=options.llm_timeout)
            except LLMUnavailableError as exc:  # e.g. no API key: answers fall back, saying so
                unavailable = str(exc)
            except _LLMSpecError as exc:
                raise LLMConfigError(str(exc)) from None
        path = Path(index_dir).expanduser()
        where: object = path
        if options.database_url:  # imported only then: the default path loads no database code
            from articleqa.index.database import safe_url

            where = safe_url(options.database_url)
        if read_manifest(path, options.database_url) is None:
            raise EmptyIndexError(f"no index in {where}. Build one first: articleqa index PATH... --index-dir {path}")
        store = open_index(
            path,
            embedding_model=options.embedding_model,
            embedding_backend=options.embedding_backend,
            embedding_precision=options.embedding_precision,
            cache_dir=options.cache_dir,
            chroma_url=options.chroma_url,
            database_url=options.database_url,
            collection=options.collection,
        )
        if store.articles.count() == 0:
            store.close()
            raise EmptyIndexError(
                f"the index in {where} holds no articles. Add some: articleqa index PATH... --index-dir {path}"
            )
        answerer = None
        if options.answer_threshold is not None:
            answerer = extractive_answerer(store, threshold=options.answer_threshold)
        if use_llm:
            answerer = LLMAnswerer(
                model,
                answerer or extractive_answerer(store),
                name=llm,
                timeout=options.llm_timeout,
                unavailable=unavailable,
                base_url=options.llm_base_url,
            )
        return cls(store, k=options.k, answerer=answerer, retrieval_mode=retrieval_mode)

    def catalog(self) -> SourceCatalog:
        """The sources of the indexed articles, for finding the ones a question names."""
        return self._catalog()

    @property
    def k(self) -> int:
        """Passages retrieved per question (unless `ask` is given another `k`)."""
        return self.retriever.k

    @property
    def retrieval_mode(self) -> RetrievalMode:
        """ "hybrid", "dense" or "lexical": the rankings questions are answered from."""
        return self.retriever.mode

    @property
    def llm(self) -> str | None:
        """The chat model that generates the answers, as its spec ("openai:gpt-4o-mini");
        None: extractive answers. The answerer says (`Answerer.llm`)."""
        return self.answerer.llm

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> ArticleQA:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def as_retriever(self) -> HybridRetriever:
        """This instance's search as a LangChain retriever (`qa.retriever.HybridRetriever`), for
        use in LangChain chains; `invoke(question)` gives the passages `retrieve` would."""
        from articleqa.qa.retriever import HybridRetriever

        return HybridRetriever(search=self.retriever)

    def retrieve(
        self,
        question: str,
        history: Iterable[Any] | None = None,
        filters: Filters | None = None,
        *,
        k: int | None = None,
        today: date | None = None,
    ) -> RetrievalResult:
        """The passages `ask` would answer from (for inspection and evaluation)."""
        return self._prepare(_clean(question), history, filters, k=k, today=today).result

    def _prepare(
        self,
        question: str,
        history: Iterable[Any] | None,
        filters: Filters | None,
        *,
        k: int | None,
        today: date | None,
    ) -> _Prepared:
        """Condense a follow-up (with the answerer's model when it has one) and retrieve.

        `question` is already validated and normalised (`_clean`, at the API's edge).
        """
        turns = as_turns(history)
        prepared = _Prepared(question=question, result=None)  # type: ignore[arg-type]
        condensed = condense_query(question, turns)
        if turns:
            rewrite = self.answerer.condense(question, turns)
            if rewrite.standalone:
                prepared.standalone = rewrite.standalone
                # An unchanged question means the LLM judged it standalone; the heuristic
                # query (if any) then only widens retrieval, which costs nothing.
                condensed = rewrite.standalone if normalise_space(rewrite.standalone) != question else condensed
            elif rewrite.unavailable:
                # Same server, same question: do not wait for it a second time. The answer's
                # fallback note gives the reason once.
                prepared.unavailable = rewrite.failure
                prepared.notes.append("the follow-up was condensed without the LLM")
            elif rewrite.failure:
                prepared.notes.append(f"{rewrite.failure}; the follow-up was condensed without it")
        follow_up = condensed != question
        prepared.focus_articles = conversation_articles(question, turns)
        # Encoded once: row 0 is the retrieval's query vector, and the answerer gets all of
        # them (with its clause rows) through the context, so nothing is encoded twice. The
        # retriever encodes while its BM25 searches run.
        encoded: list[np.ndarray | None] = []

        def encode() -> np.ndarray | None:
            encoded.append(self.answerer.question_vectors(question))
            return encoded[0][0] if encoded[0] is not None else None

        prepared.result = self.retriever.retrieve(
            question,
            k=k,
            filters=filters,
            today=today,
            context_query=condensed if follow_up else None,
            prefer_articles=turns[-1].article_ids if follow_up and turns else (),
            prefer_sources=self.catalog().named_sources(question),
            vector=encode,
        )
        prepared.result.question_vectors = encoded[0] if encoded else None
        return prepared

    def ask(
        self,
        question: str,
        history: Iterable[Any] | None = None,
        filters: Filters | None = None,
        *,
        k: int | None = None,
        today: date | None = None,
    ) -> Answer:
        """Answer `question` from the indexed articles, or say plainly that they do not.

        Args:
            question: The question; must not be blank.
            history: Earlier turns of the conversation (`Turn`s, (question, answer) pairs or
                role/content messages), most recent last; follow-ups are resolved with them.
            filters: Only use articles of these sources / this publication date range.
            k: Passages to retrieve (default: the instance's `k`).
            today: The day the question is asked, for "yesterday", "last week" (default: today).

        Returns:
            An `Answer`: quoted sentences with [n] markers and their `Citation`s, or
            `grounded=False` with the closest passages as `related`. With an LLM,
            `answerer` is "llm" for a verified generated answer, or "extractive" with a
            note saying why the LLM's answer is not shown.

        Raises:
            EmptyQuestionError: The question is blank.
        """
        prepared = self._prepare(_clean(question), history, filters, k=k, today=today)
        return self._finish(self.answerer.answer(prepared.context(today)), prepared)

    def stream(
        self,
        question: str,
        history: Iterable[Any] | None = None,
        filters: Filters | None = None,
        *,
        k: int | None = None,
        today: date | None = None,
    ) -> Iterator[StreamEvent]:
        """Like `ask`, as events: the passages, the answer text as it is produced, the final answer.

        With an LLM the "delta" events carry the model's tokens as they arrive, and the final
        "answer" event carries the verified answer, whose text can differ from the streamed
        text (a note says so) or be the extractive answer when the LLM failed (a note says
        why). The extractive answerer's text is complete at once: one "delta" event carries it.
        """
        prepared = self._prepare(_clean(question), history, filters, k=k, today=today)
        yield StreamEvent("passages", passages=tuple(prepared.result.passages))
        for event in self.answerer.stream(prepared.context(today)):
            if event.kind == "answer" and event.answer is not None:
                yield StreamEvent("answer", answer=self._finish(event.answer, prepared))
            else:
                yield event

    def answer_from(self, question: str, result: RetrievalResult) -> Answer:
        """The answer to `question` from an earlier `retrieve()` result (for evaluation)."""
        # The conversation only widens retrieval; sentences are scored against the question
        # itself, or a follow-up would be answered with the previous answer again.
        answer = self.answerer.answer(_Prepared(question=_clean(question), result=result).context(None))
        answer.retrieval_query = result.query
        return answer

    @staticmethod
    def _finish(answer: Answer, prepared: _Prepared) -> Answer:
        answer.notes.extend(n for n in prepared.notes if n not in answer.notes)
        window = prepared.result.window
        if window:
            answer.notes.append(f"preferred articles published {window.start} to {window.end} ({window.cue!r})")
        return answer

    def turn(self, question: str, answer: Answer) -> Turn:
        """The `Turn` to append to a history after `answer`."""
        return Turn(
            question=question,
            answer=answer.text,
            article_ids=[c.article_id for c in answer.citations],
        )


def _check_mode(mode: str) -> None:
    if mode not in RETRIEVAL_MODES:
        raise ValueError(f"retrieval mode {mode!r} is not one of {', '.join(RETRIEVAL_MODES)}")


def normalise_space(text: str) -> str:
    return " ".join(text.split())


def _clean(question: str) -> str:
    if not isinstance(question, str) or not question.strip():
        raise EmptyQuestionError('the question is empty; ask something, e.g. "Who won the election?"')
    return " ".join(question.split())
