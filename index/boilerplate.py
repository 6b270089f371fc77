"""Lines a site repeats across its articles ("Advertisement", "CLICK HERE TO GET THE APP").

Scraped news pages keep lines that belong to the site, not the story: newsletter prompts, ad
markers, share bars, standing disclaimers. Embedding them costs time and puts chunks into the
index that match many questions and answer none. A line is boilerplate when the same text
(whitespace-normalised) appears as a whole line in several articles of the same site in one
indexing run. Nothing is removed from the article: the chunker groups only the other
sentences (`index.chunking.chunk_article`'s `skip`), so no chunk begins or ends with a
boilerplate line, none is made of them alone, and the overlap never repeats one; the article
text and every offset stay exact. A boilerplate line between two sentences of one chunk stays
inside it, because a chunk is one exact slice of the article. (Breaking chunks at those lines
instead fragmented the New York Times articles, whose "Advertisement" lines sit between
paragraphs, and lost two retrieval hits on MultiHop-RAG's fitting questions.)

What counts is decided over the articles one run reads (`articleqa index` inputs, unchanged
ones included; a feed poll's batch), so a run killed half-way and run again chunks exactly
as the uninterrupted run would have. An article indexed with few others of its site keeps
its site's boilerplate: that costs tokens, never text, and an unchanged article is never
re-chunked because a later run saw more of its site.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from urllib.parse import urlsplit

from articleqa.index.models import Article

# A line must appear in at least this many articles of the site...
MIN_ARTICLES = 3
# ...and in at least this share of the site's articles in the run. A sentence of real
# reporting that a site repeats (a standing line of background) is rarely in a fifth of its
# articles; its ad markers and newsletter prompts are in most of them. Both thresholds were set
# by reading what they mark in the MultiHop-RAG articles (29 distinct lines, all site furniture
# or product headings), not fitted to any question set.
MIN_SHARE = 0.2

_LINE = re.compile(r"[^\n]+")
_SPACE = re.compile(r"\s+")


def site_of(article: Article) -> str | None:
    """The site an article comes from: its source name, else its URL's host, else None."""
    if article.source:
        return article.source.strip().casefold() or None
    if article.url:
        host = urlsplit(article.url).hostname
        return host.removeprefix("www.") if host else None
    return None


def _lines(text: str) -> list[tuple[int, int, str]]:
    """(start, end, normalised text) of every non-blank line."""
    out = []
    for match in _LINE.finditer(text):
        key = _SPACE.sub(" ", match.group()).strip()
        if key:
            out.append((match.start(), match.end(), key))
    return out


def boilerplate_spans(
    articles: Sequence[Article], *, min_articles: int = MIN_ARTICLES, min_share: float = MIN_SHARE
) -> dict[str, list[tuple[int, int]]]:
    """For each article with boilerplate, the (start, end) offsets of its boilerplate lines.

    Args:
        articles: The articles of one run (any mix of sites; articles with no site are left alone).
        min_articles, min_share: A line is boilerplate when it appears in at least
            `min_articles` articles of its site and in at least `min_share` of them.

    Returns:
        `{article id: [(start, end), ...]}` in text order; articles without any are absent.
    """
    by_site: dict[str, list[Article]] = defaultdict(list)
    for article in articles:
        site = site_of(article)
        if site is not None:
            by_site[site].append(article)
    result: dict[str, list[tuple[int, int]]] = {}
    for site_articles in by_site.values():
        if len(site_articles) < min_articles:
            continue
        lines = {a.id: _lines(a.text) for a in site_articles}
        seen_in: dict[str, int] = defaultdict(int)
        for article_lines in lines.values():
            for key in {key for _, _, key in article_lines}:
                seen_in[key] += 1
        needed = max(min_articles, min_share * len(site_articles))
        repeated = {key for key, n in seen_in.items() if n >= needed}
        if not repeated:
            continue
        for article_id, article_lines in lines.items():
            spans = [(start, end) for start, end, key in article_lines if key in repeated]
            if spans:
                result[article_id] = spans
    return result
