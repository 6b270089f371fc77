"""The article store: full text and metadata of every indexed article, in SQLite.

Citations show context and exact character offsets, which needs the article text as it was
chunked; Chroma holds only chunks. A row is written after the article's chunks are in Chroma
and the lexical index, so a row always means "this article is fully indexed at this hash".
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from pathlib import Path

from articleqa.index.models import Article
from articleqa.index.sqlite_db import SQLiteDB
from articleqa.index.sqlite_rows import rows_in

_SCHEMA = """
CREATE TABLE IF NOT EXISTS articles (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    source TEXT,
    url TEXT,
    published_at TEXT,
    author TEXT,
    origin TEXT NOT NULL,
    text TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    chunk_count INTEGER NOT NULL,
    indexed_at TEXT NOT NULL
);
"""
_COLUMNS = "id, title, source, url, published_at, author, origin, text"


class ArticleStore:
    """Articles by id in the SQLite file `path` (created on first use)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._db = SQLiteDB(self.path, _SCHEMA)

    def close(self) -> None:
        self._db.close()

    def upsert(self, articles: Iterable[tuple[Article, int]]) -> None:
        """Store `(article, chunk_count)` pairs, replacing rows with the same id."""
        now = datetime.now(UTC).isoformat(timespec="seconds")
        with self._db.transaction() as db:
            db.executemany(
                f"INSERT OR REPLACE INTO articles ({_COLUMNS}, content_hash, chunk_count, "
                "indexed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        a.id,
                        a.title,
                        a.source,
                        a.url,
                        a.published_at.isoformat() if a.published_at else None,
                        a.author,
                        a.origin,
                        a.text,
                        a.content_hash,
                        n,
                        now,
                    )
                    for a, n in articles
                ],
            )

    def delete(self, ids: Sequence[str]) -> None:
        with self._db.transaction() as db:
            db.executemany("DELETE FROM articles WHERE id = ?", [(i,) for i in ids])

    def clear(self) -> None:
        with self._db.transaction() as db:
            db.execute("DELETE FROM articles")

    def hashes(self) -> dict[str, str]:
        """Content hash of every stored article, by id."""
        return dict(self._db.execute("SELECT id, content_hash FROM articles"))

    def origins(self) -> dict[str, str]:
        return dict(self._db.execute("SELECT id, origin FROM articles"))

    def count(self) -> int:
        return self._db.execute("SELECT count(*) FROM articles").fetchone()[0]

    def chunk_total(self) -> int:
        return self._db.execute("SELECT coalesce(sum(chunk_count), 0) FROM articles").fetchone()[0]

    def get(self, article_id: str) -> Article | None:
        rows = self.get_many([article_id])
        return rows.get(article_id)

    def get_many(self, ids: Sequence[str]) -> dict[str, Article]:
        query = f"SELECT {_COLUMNS} FROM articles WHERE id IN ({{marks}})"
        return {row[0]: _to_article(row) for row in rows_in(self._db.conn, query, ids)}

    def list(self) -> list[Article]:
        """All articles, newest first (undated last)."""
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM articles ORDER BY published_at IS NULL, published_at DESC, title"
        )
        return [_to_article(row) for row in rows]

    def date_range(self) -> tuple[date | None, date | None]:
        """The earliest and latest publication dates (None, None when no article has one)."""
        low, high = self._db.execute("SELECT min(published_at), max(published_at) FROM articles").fetchone()
        return (date.fromisoformat(low) if low else None, date.fromisoformat(high) if high else None)

    def sources(self) -> list[str]:
        rows = self._db.execute("SELECT DISTINCT source FROM articles WHERE source IS NOT NULL ORDER BY source")
        return [row[0] for row in rows]


def _to_article(row: tuple) -> Article:
    id_, title, source, url, published_at, author, origin, text = row
    return Article(
        id=id_,
        title=title,
        source=source,
        url=url,
        published_at=date.fromisoformat(published_at) if published_at else None,
        author=author,
        origin=origin,
        text=text,
    )
