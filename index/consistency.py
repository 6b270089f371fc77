"""`check_index`: do Chroma and the lexical index (SQLite or the database) hold the same chunks?

Every write goes to both with the same ids (`index.vectorstore.HybridStore`), and a run that is
killed is finished by its re-run. What can still part them is outside the product: a Chroma
server restored from an older backup than the database, a collection or table emptied by hand,
a disk that filled up on one server only. An article is visible when its chunks are in both
(retrieval reads vectors from one and text from the other), so `check_index` lists the chunk
ids on one side only and, asked to repair, deletes them from the side that has them, forgets
them in the record manager and removes their articles' rows: the next `articleqa index` of the
same inputs sees those articles as new and writes their missing chunks again (chunks present
in both are recorded, so they are not embedded again).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from articleqa.index.store import IndexStore


@dataclass(frozen=True)
class CheckReport:
    """What `check_index` found (ids sorted), and what it removed when asked to repair."""

    chroma_chunks: int
    lexical_chunks: int
    only_in_chroma: list[str] = field(default_factory=list)
    only_in_lexical: list[str] = field(default_factory=list)
    # Articles whose rows were removed by the repair, to index again (sorted).
    articles_to_reindex: list[str] = field(default_factory=list)
    repaired: bool = False

    @property
    def consistent(self) -> bool:
        return not self.only_in_chroma and not self.only_in_lexical


def check_index(store: IndexStore, *, repair: bool = False, wait: float | None = None) -> CheckReport:
    """Compare the chunk ids in Chroma with those in the lexical index, under the write lock
    (an indexer mid-run writes the lexical side first, which must not count as a difference).

    Args:
        store: The opened index.
        repair: Delete the chunks found on one side only (see the module docstring).
        wait: Seconds to wait for another writer (None: as long as it takes).

    Raises:
        IndexBusyError: Another writer held the lock for longer than `wait`.
    """
    with store.write_session(wait):
        dense = store.dense_ids()
        lexical = store.lexical.chunk_ids()
        only_dense, only_lexical = sorted(dense - lexical), sorted(lexical - dense)
        articles: list[str] = []
        if repair and (only_dense or only_lexical):
            articles = sorted(_articles_of_dense(store, only_dense) | _articles_of_lexical(store, only_lexical))
            # Rows, then records, then chunks: a repair killed part-way leaves chunks that are
            # still on one side only (found again by the next check), never a row or a record
            # over chunks already gone (which a check would call consistent and a re-index skip).
            store.articles.delete(articles)
            store.records.delete_keys([*only_dense, *only_lexical])
            if only_dense:
                store.vectors.delete(ids=only_dense)
            if only_lexical:
                store.lexical.delete(only_lexical)
        return CheckReport(
            chroma_chunks=len(dense),
            lexical_chunks=len(lexical),
            only_in_chroma=only_dense,
            only_in_lexical=only_lexical,
            articles_to_reindex=articles,
            repaired=repair,
        )


def _articles_of_dense(store: IndexStore, ids: Iterable[str]) -> set[str]:
    ids = list(ids)
    if not ids:
        return set()
    metadatas = store.vectors.get(ids=ids, include=["metadatas"])["metadatas"]
    return {m["article_id"] for m in metadatas if m and m.get("article_id")}


def _articles_of_lexical(store: IndexStore, ids: Iterable[str]) -> set[str]:
    return {row.article_id for row in store.lexical.get(list(ids)).values() if row.article_id}
