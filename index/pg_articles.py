"""The article store in PostgreSQL: `index.articles.ArticleStore`'s interface, for an index kept
in a database (`index.database`).

Same rows and the same meaning (a row is written once the article's chunks are in Chroma and
the lexical index). Titles and sources sort by code point (`COLLATE "C"`), as SQLite sorts
them, so lists come in the same order whatever the database's locale.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime

from sqlalchemy import text

from articleqa.index.database import Database
from articleqa.index.models import Article

ARTICLES = "articleqa_articles"
_COLUMNS = "id, title, source, url, published_at, author, origin, text"  # as index.articles reads them
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {ARTICLES} (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    source TEXT,
    url TEXT,
    published_at DATE,
    author TEXT,
    origin TEXT NOT NULL,
    text TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    chunk_count INTEGER NOT NULL,
    indexed_at TIMESTAMPTZ NOT NULL
)
"""
_UPDATES = ", ".join(
    f"{c} = excluded.{c}" for c in (*_COLUMNS.split(", ")[1:], "content_hash", "chunk_count", "indexed_at")
)


class PostgresArticleStore:
    """Articles by id in `database` (table created on first use); the interface of `ArticleStore`."""

    def __init__(self, database: Database):
        self.database = database
        database.ensure_schema(SCHEMA, ARTICLES)

    def close(self) -> None:
        """Nothing of its own to close: the connections are the database's (`Database.dispose`)."""

    def upsert(self, articles: Iterable[tuple[Article, int]]) -> None:
        """Store `(article, chunk_count)` pairs, replacing rows with the same id."""
        now = datetime.now(UTC)
        rows = [
            {
                "id": a.id,
                "title": a.title,
                "source": a.source,
                "url": a.url,
                "published_at": a.published_at,
                "author": a.author,
                "origin": a.origin,
                "text": a.text,
                "content_hash": a.content_hash,
                "chunk_count": n,
                "indexed_at": now,
            }
            for a, n in articles
        ]
        if not rows:
            return
        with self.database.begin() as db:
            db.execute(
                text(
                    f"INSERT INTO {ARTICLES} ({_COLUMNS}, content_hash, chunk_count, indexed_at) VALUES (:id, "
                    ":title, :source, :url, :published_at, :author, :origin, :text, :content_hash, :chunk_count, "
                    f":indexed_at) ON CONFLICT (id) DO UPDATE SET {_UPDATES}"
                ),
                rows,
            )

    def delete(self, ids: Sequence[str]) -> None:
        with self.database.begin() as db:
            db.execute(text(f"DELETE FROM {ARTICLES} WHERE id = ANY(:ids)"), {"ids": list(ids)})

    def clear(self) -> None:
        with self.database.begin() as db:
            db.execute(text(f"DELETE FROM {ARTICLES}"))

    def _rows(self, sql: str, params: dict | None = None) -> list[tuple]:
        """A read: one statement, no transaction around it (`Database.read`)."""
        query = text(sql)
        return self.database.read(lambda db: [tuple(row) for row in db.execute(query, params or {})])

    def hashes(self) -> dict[str, str]:
        """Content hash of every stored article, by id."""
        return dict(self._rows(f"SELECT id, content_hash FROM {ARTICLES}"))

    def origins(self) -> dict[str, str]:
        return dict(self._rows(f"SELECT id, origin FROM {ARTICLES}"))

    def count(self) -> int:
        return self._rows(f"SELECT count(*) FROM {ARTICLES}")[0][0]

    def chunk_total(self) -> int:
        return self._rows(f"SELECT coalesce(sum(chunk_count), 0) FROM {ARTICLES}")[0][0]

    def get(self, article_id: str) -> Article | None:
        return self.get_many([article_id]).get(article_id)

    def get_many(self, ids: Sequence[str]) -> dict[str, Article]:
        rows = self._rows(f"SELECT {_COLUMNS} FROM {ARTICLES} WHERE id = ANY(:ids)", {"ids": list(dict.fromkeys(ids))})
        return {row[0]: _to_article(row) for row in rows}

    def list(self) -> list[Article]:
        """All articles, newest first (undated last)."""
        rows = self._rows(
            f'SELECT {_COLUMNS} FROM {ARTICLES} ORDER BY published_at IS NULL, published_at DESC, title COLLATE "C"'
        )
        return [_to_article(row) for row in rows]

    def date_range(self) -> tuple[date | None, date | None]:
        """The earliest and latest publication dates (None, None when no article has one)."""
        low, high = self._rows(f"SELECT min(published_at), max(published_at) FROM {ARTICLES}")[0]
        return low, high

    def sources(self) -> list[str]:
        rows = self._rows(f'SELECT DISTINCT source COLLATE "C" FROM {ARTICLES} WHERE source IS NOT NULL ORDER BY 1')
        return [row[0] for row in rows]


def _to_article(row: tuple) -> Article:
    id_, title, source, url, published_at, author, origin, text_ = row
    return Article(
        id=id_,
        title=title,
        source=source,
        url=url,
        published_at=published_at,
        author=author,
        origin=origin,
        text=text_,
    )
