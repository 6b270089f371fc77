"""Typed records that flow through the indexing pipeline.

`Article` is what a loader produces, `Chunk` what the chunker cuts from it, `SourceFailure`
what a loader reports instead of raising, and `IndexReport` what one indexing run returns.
"""

from __future__ import annotations

import hashlib
from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Article(BaseModel):
    """One news article with its full text.

    `text` is the body the citations point into: character offsets of chunks and quotes are
    offsets into this string, so it is stored unchanged in the index folder.
    """

    model_config = ConfigDict(frozen=True)

    id: str = Field(min_length=1, description="Stable id: the same input gives the same id.")
    title: str
    text: str = Field(min_length=1)
    source: str | None = None
    url: str | None = None
    published_at: date | None = None
    author: str | None = None
    origin: str = Field(description="The file path or URL the article was read from.")

    @property
    def content_hash(self) -> str:
        """Hash of everything that ends up in the index; a change means re-indexing."""
        payload = self.model_dump_json(exclude={"origin"})
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class Chunk(BaseModel):
    """A passage of an article: `article.text[start:end] == text`."""

    model_config = ConfigDict(frozen=True)

    article_id: str
    index: int = Field(ge=0)
    text: str
    start: int = Field(ge=0)
    end: int = Field(gt=0)


class SourceFailure(BaseModel):
    """An input that could not be read, named with the reason."""

    origin: str
    reason: str


ArticleStatus = Literal["added", "updated", "unchanged", "removed", "failed"]


class IndexReport(BaseModel):
    """What one `index` run did. Counts are articles unless the name says chunks."""

    added: list[str] = Field(default_factory=list)
    updated: list[str] = Field(default_factory=list)
    unchanged: list[str] = Field(default_factory=list)
    removed: list[str] = Field(default_factory=list)
    failed: list[SourceFailure] = Field(default_factory=list)
    skipped: list[SourceFailure] = Field(default_factory=list)
    chunks_added: int = 0
    chunks_deleted: int = 0
    chunks_skipped: int = 0
    notes: list[str] = Field(default_factory=list)
    seconds: float = 0.0
    index_dir: str = ""

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self) -> dict[str, int | float]:
        return {
            "added": len(self.added),
            "updated": len(self.updated),
            "unchanged": len(self.unchanged),
            "removed": len(self.removed),
            "failed": len(self.failed),
            "skipped": len(self.skipped),
            "chunks_added": self.chunks_added,
            "chunks_deleted": self.chunks_deleted,
            "seconds": round(self.seconds, 2),
        }
