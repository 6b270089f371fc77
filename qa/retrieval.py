"""Hybrid retrieval: dense (Chroma) and lexical (BM25) results fused by reciprocal rank.

Dense retrieval finds paraphrases; BM25 carries the names and numbers news questions hinge
on ("Lavrov", "30,000"). Reciprocal rank fusion (RRF) combines the two rankings without
having to calibrate their incomparable scores against each other. A time cue in the question
("last week", "in 2019") adds two more rankings restricted to that publication window, so
in-window articles are preferred without excluding the rest.

`HybridSearch` does it without LangChain (what `ArticleQA` asks with, so a one-off question
imports no LangChain retriever classes); `qa.retriever.HybridRetriever` is the same search as a
LangChain retriever.
"""

from __future__ import annotations

import os
import re
import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np

from articleqa.index.store import IndexStore, published_ord
from articleqa.qa.defaults import DEFAULT_K as DEFAULT_K
from articleqa.qa.defaults import DEFAULT_RETRIEVAL_MODE as DEFAULT_RETRIEVAL_MODE
from articleqa.qa.defaults import RETRIEVAL_MODES as RETRIEVAL_MODES
from articleqa.qa.defaults import RetrievalMode as RetrievalMode
from articleqa.qa.models import Passage
from articleqa.qa.timecues import DateWindow, time_window

# Reciprocal rank fusion: score = sum over rankings of weight / (RRF_K + rank). Cormack et al.
# (2009) use k=60; on tests/data/eval.jsonl (87 answerable questions, k=6 passages) k=30 with
# BM25 at half the weight of dense retrieval ranked the answer-bearing chunk first for 88.5%
# of questions (MRR 0.931, hit@6 98.9%) against 85.1% (0.909, 98.9%) for k=60 with equal
# weights and 87.4% (0.918, 97.7%) for dense alone. Tuned on the same set it is measured on:
# differences of one or two questions, so treat them as "no worse than dense, better at k".
RRF_K = 30
# k, the retrieval modes and the default mode are declared in `qa.defaults` (constants the
# command line reads without importing this module) and re-exported here.
DEFAULT_WEIGHTS = {"dense": 1.0, "lexical": 0.5}


@dataclass(frozen=True)
class Filters:
    """Hard filters: only chunks of these sources / published in this range are retrieved."""

    sources: tuple[str, ...] = ()
    after: date | None = None
    before: date | None = None

    def __post_init__(self) -> None:
        if self.after and self.before and self.after > self.before:
            raise ValueError(f"the date range is empty: after={self.after} is later than before={self.before}")

    def chroma_where(self, window: DateWindow | None = None) -> dict[str, Any] | None:
        clauses: list[dict[str, Any]] = []
        if self.sources:
            clauses.append({"source": {"$in": list(self.sources)}})
        lo, hi = self._range(window)
        if lo is not None:
            clauses.append({"published_ord": {"$gte": lo}})
        if hi is not None:
            clauses.append({"published_ord": {"$lte": hi}})
        if not clauses:
            return None
        return clauses[0] if len(clauses) == 1 else {"$and": clauses}

    def _range(self, window: DateWindow | None) -> tuple[int | None, int | None]:
        lo, hi = published_ord(self.after), published_ord(self.before)
        if window:
            lo = max(lo or 0, window.start.toordinal())
            hi = min(hi or 10**7, window.end.toordinal())
        return lo, hi


DATE_FORMAT = "YYYY-MM-DD"
DATE_EXAMPLE = "2019-06-30"
_ISO_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class FilterError(ValueError):
    """A filter value that cannot be used. `field` names it: "after", "before" (or another
    date's name given to `parse_date`) for a date that is not YYYY-MM-DD, with `value` the
    text given; "range" when the dates make an empty range. The message names the bad value
    and the expected format; user interfaces may word their own from `field` and `value`."""

    def __init__(self, message: str, *, field: str, value: str | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.value = value
        self.expected = DATE_FORMAT if field != "range" else None


def parse_date(value: str | date | None, field: str = "date") -> date | None:
    """A filter date from text: YYYY-MM-DD (surrounding spaces ignored); None or blank: None.

    Raises:
        FilterError: not a YYYY-MM-DD date (e.g. "2019-13-01", "last tuesday", "20190630").
    """
    if value is None or isinstance(value, date):
        return value
    text = value.strip()
    if not text:
        return None
    if _ISO_DAY.match(text):
        try:
            return date.fromisoformat(text)
        except ValueError:
            pass
    raise FilterError(
        f'The "{field}" date {text!r} is not a valid date: use {DATE_FORMAT}, e.g. {DATE_EXAMPLE}.',
        field=field,
        value=text,
    )


def parse_filters(
    sources: Sequence[str] | None = None,
    after: str | date | None = None,
    before: str | date | None = None,
) -> Filters:
    """`Filters` from user input (the command line's --source/--after/--before, the web
    app's form and `/ask` endpoint): blank sources are dropped, dates are YYYY-MM-DD or blank.

    Raises:
        FilterError: a date is not YYYY-MM-DD (`field` "after" or "before"), or `after` is
            later than `before` (`field` "range").
    """
    after_date = parse_date(after, "after")
    before_date = parse_date(before, "before")
    try:
        return Filters(sources=tuple(s for s in (sources or ()) if s), after=after_date, before=before_date)
    except ValueError as exc:  # after > before
        raise FilterError(str(exc), field="range") from None


@dataclass
class RetrievalResult:
    passages: list[Passage]
    query: str
    window: DateWindow | None = None
    # The question's vector (row 0: the dense query) and its clauses' (rows 1..), from one pass
    # through the model, when the caller encoded them: `ArticleQA` does, with its answerer's
    # `question_vectors`, and hands them to the answerer in its `AnswerContext` (also from
    # `answer_from`), so a question is encoded once.
    question_vectors: np.ndarray | None = None


@dataclass
class HybridSearch:
    """Dense + BM25 search over an `IndexStore`, fused with RRF; `retrieve()` gives typed
    `Passage`s (`qa.retriever.HybridRetriever` wraps it as a LangChain retriever)."""

    store: IndexStore
    k: int = DEFAULT_K
    candidates: int = 30
    filters: Filters = field(default_factory=Filters)
    mode: RetrievalMode = DEFAULT_RETRIEVAL_MODE
    rrf_k: int = RRF_K
    weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))

    def retrieve(
        self,
        query: str,
        *,
        k: int | None = None,
        filters: Filters | None = None,
        today: date | None = None,
        time_query: str | None = None,
        context_query: str | None = None,
        prefer_articles: Sequence[str] = (),
        prefer_sources: Sequence[str] = (),
        vector: Sequence[float] | Callable[[], Sequence[float]] | None = None,
    ) -> RetrievalResult:
        """The best `k` passages for `query`.

        Args:
            query: The retrieval query (the question, or the question condensed with history).
            k: Passages to return (default: the retriever's `k`); must be at least 1.
            filters: Hard source / date filters (default: the retriever's).
            today: The day the question is asked, for relative time cues (default: today).
            time_query: Text to read time cues from (default: `query`).
            context_query: A follow-up question condensed with the conversation; its
                rankings are fused with those of `query`, so the follow-up's own words
                still count.
            prefer_articles: Articles the conversation is about (cited in earlier turns);
                their chunks get extra rankings for `query`, so they are preferred.
            prefer_sources: Sources the question names ("according to TechCrunch"): their
                chunks get a dense and a BM25 ranking of their own (favoured, not required:
                two more queries, however many sources), and the best chunk of each named
                source is kept among the `k` passages when it has one.
            vector: `query` already embedded (by the caller, with the same model), or a function
                that embeds it: it is called once the BM25 searches have started, so that
                encoding and lexical search overlap.

        Returns:
            Passages best first, with the time window that was preferred, if any.
        """
        k = self.k if k is None else k
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        filters = filters or self.filters
        window = time_window(time_query or query, today or date.today())
        n = max(self.candidates, 3 * k)

        # Every ranking is listed first, then computed: the BM25 searches need no vector, so
        # they run on a lexical thread while this one encodes the question (when the caller
        # has not) and runs the dense searches. Fusion then reads them in the listed order, so
        # it adds the same numbers in the same order as one thread would.
        plan = [_dense_ranking(filters), _lexical_ranking(query, filters)]
        if context_query and context_query != query:
            plan += [_dense_ranking(filters, context=True), _lexical_ranking(context_query, filters)]
        if prefer_articles:
            ids = tuple(dict.fromkeys(prefer_articles))
            plan += [_dense_ranking(filters, article_ids=ids), _lexical_ranking(query, filters, article_ids=ids)]
        named = [s for s in dict.fromkeys(prefer_sources) if not filters.sources or s in filters.sources]
        per_source: list[_Ranking] = []
        if named:  # (a hard source filter wins over the question's wish)
            narrowed = Filters(sources=tuple(named), after=filters.after, before=filters.before)
            per_source = [_dense_ranking(narrowed), _lexical_ranking(query, narrowed)]
            plan += per_source
        if window:
            plan += [_dense_ranking(filters, window=window), _lexical_ranking(query, filters, window=window)]

        pending = [(r, _lexical_pool().submit(self._search_lexical, r, n)) for r in plan if r.kind == "lexical"]
        if callable(vector):
            vector = vector()
        query_vector = [float(v) for v in (vector if vector is not None else self.store.embeddings.embed_query(query))]
        context_vector = self.store.embeddings.embed_query(context_query) if any(r.context for r in plan) else None
        for r in plan:
            if r.kind == "dense":
                r.ids = self._dense(context_vector if r.context else query_vector, n, r)
        for r, future in pending:
            r.ids = future.result()
        quota = _best_per_source(self.store, named, [r.ids for r in per_source]) if named else []
        rankings = [(r.kind, r.ids) for r in plan]
        if self.mode != "hybrid":  # single-retriever modes, for evaluation
            rankings = [(kind, ids) for kind, ids in rankings if kind == self.mode]
        fused: dict[str, float] = defaultdict(float)
        best_rank: dict[tuple[str, str], int] = {}
        for kind, ids in rankings:
            for rank, chunk_id in enumerate(ids, 1):
                fused[chunk_id] += self.weights.get(kind, 1.0) / (self.rrf_k + rank)
                key = (kind, chunk_id)
                best_rank[key] = min(rank, best_rank.get(key, rank))
        ordered = sorted(fused, key=lambda cid: (-fused[cid], cid))
        ordered = _with_quota(ordered, fused, quota, k)
        passages = self._passages(ordered, fused, best_rank, k)
        return RetrievalResult(passages, context_query or query, window)

    def _search_lexical(self, ranking: _Ranking, n: int) -> list[str]:
        return self._lexical(ranking.query, n, ranking.filters, ranking.window, ranking.article_ids)

    def _dense(self, vector: list[float], n: int, ranking: _Ranking) -> list[str]:
        within = None
        if ranking.where and self.store.searches_within_ids:  # the chunks the clause allows
            lo, hi = ranking.filters._range(ranking.window)
            within = self.store.lexical.chunk_ids_where(
                sources=ranking.filters.sources or None,
                published_from=lo,
                published_to=hi,
                article_ids=ranking.article_ids,
            )
        return [chunk_id for chunk_id, _distance in self.store.nearest(vector, n, ranking.where, within=within)]

    def _lexical(
        self,
        query: str,
        n: int,
        filters: Filters,
        window: DateWindow | None,
        article_ids: Sequence[str] | None = None,
    ) -> list[str]:
        lo, hi = filters._range(window)
        hits = self.store.lexical.search(
            query,
            n,
            sources=filters.sources or None,
            published_from=lo,
            published_to=hi,
            article_ids=article_ids,
        )
        return [hit.chunk_id for hit in hits]

    def _passages(
        self,
        ordered: list[str],
        fused: dict[str, float],
        best_rank: dict[tuple[str, str], int],
        k: int,
    ) -> list[Passage]:
        rows = self.store.lexical.get(ordered[: 3 * k])
        articles = self.store.articles.get_many([r.article_id for r in rows.values()])
        passages: list[Passage] = []
        for chunk_id in ordered:
            row = rows.get(chunk_id)
            article = articles.get(row.article_id) if row else None
            if article is None:  # a chunk whose article row is not written yet (killed run)
                continue
            passages.append(
                Passage(
                    chunk_id=chunk_id,
                    article_id=article.id,
                    title=article.title,
                    source=article.source,
                    url=article.url,
                    published_at=article.published_at,
                    text=row.text,
                    start=row.start,
                    end=row.end,
                    score=fused[chunk_id],
                    dense_rank=best_rank.get(("dense", chunk_id)),
                    lexical_rank=best_rank.get(("lexical", chunk_id)),
                )
            )
            if len(passages) == k:
                break
        return passages


@dataclass(eq=False)
class _Ranking:
    """One ranking to fuse: a dense search (Chroma, with a where-clause) by the question's
    vector (or the condensed follow-up's, `context`), or a BM25 search of `query`."""

    kind: str  # "dense" or "lexical"
    where: dict[str, Any] | None = None
    context: bool = False
    query: str = ""
    filters: Filters = Filters()
    window: DateWindow | None = None
    article_ids: Sequence[str] | None = None
    ids: list[str] = field(default_factory=list)


def _dense_ranking(
    filters: Filters,
    *,
    window: DateWindow | None = None,
    article_ids: Sequence[str] | None = None,
    context: bool = False,
) -> _Ranking:
    where = filters.chroma_where(window)
    if article_ids:
        clause = {"article_id": {"$in": list(article_ids)}}
        where = {"$and": [where, clause]} if where else clause
    return _Ranking("dense", where=where, context=context, filters=filters, window=window, article_ids=article_ids)


def _lexical_ranking(
    query: str, filters: Filters, *, window: DateWindow | None = None, article_ids: Sequence[str] | None = None
) -> _Ranking:
    return _Ranking("lexical", query=query, filters=filters, window=window, article_ids=article_ids)


# BM25 searches run here, beside the encoding of the question and the dense searches (sqlite3,
# the PostgreSQL driver and OpenVINO release the GIL while they work). Two threads: a question
# has up to five BM25 rankings, and several users may ask at once. On 2 cores, 1 and 2 threads
# measured alike (ask p50 102-111 and 108-114 ms, 609 articles), 3 slower (117 ms).
LEXICAL_THREADS = 2
_pool: tuple[int, ThreadPoolExecutor] | None = None  # (the process it belongs to, the pool)
_pool_lock = threading.Lock()


def _lexical_pool() -> ThreadPoolExecutor:
    """The process's pool, made on first use; a forked child makes its own (the parent's
    threads do not exist in the child, and work sent to them would never run)."""
    global _pool
    with _pool_lock:
        if _pool is None or _pool[0] != os.getpid():
            _pool = (os.getpid(), ThreadPoolExecutor(max_workers=LEXICAL_THREADS, thread_name_prefix="articleqa-bm25"))
        return _pool[1]


def _best_per_source(store: IndexStore, sources: list[str], rankings: list[list[str]]) -> list[list[str]]:
    """For each source, the first chunk of that source in each ranking (one group a source)."""
    ids = list(dict.fromkeys(cid for ranking in rankings for cid in ranking))
    source_of = {cid: row.source for cid, row in store.lexical.get(ids).items()}
    groups = []
    for source in sources:
        group = []
        for ranking in rankings:
            first = next((cid for cid in ranking if source_of.get(cid) == source), None)
            if first is not None:
                group.append(first)
        groups.append(group)
    return groups


def _with_quota(ordered: list[str], fused: dict[str, float], quota: list[list[str]], k: int) -> list[str]:
    """`ordered` with, for each group in `quota`, its best-fused chunk moved into the top `k`
    (replacing the lowest-ranked chunks that no group needs), order otherwise kept."""
    needed: list[str] = []
    for group in quota:
        group = [cid for cid in group if cid in fused]
        if not group or any(cid in ordered[:k] for cid in group):
            continue
        best = max(group, key=lambda cid: (fused[cid], cid))
        if best not in needed:
            needed.append(best)
    if not needed:
        return ordered
    needed = needed[:k]
    top = [cid for cid in ordered if cid not in needed][: k - len(needed)] + needed
    top.sort(key=lambda cid: (-fused[cid], cid))
    return top + [cid for cid in ordered if cid not in top]
