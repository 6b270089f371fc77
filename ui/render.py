"""HTML for the web chat: the sources panel, the full article with its quote, statistics.

Everything taken from articles is escaped; quotes are highlighted with `<mark>` at their
exact character offsets (`citation.start - citation.passage_start` inside the passage,
`start` inside the article text), never by searching for the quoted text.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from urllib.parse import urlparse

from articleqa.index.models import Article
from articleqa.qa.models import Answer, Citation


def highlight(
    text: str,
    start: int,
    end: int,
    *,
    mark_id: str | None = None,
    answer: tuple[int | None, int | None] = (None, None),
) -> str:
    """`text` escaped, with `text[start:end]` wrapped in `<mark>`; offsets outside the text
    (which would mean a stale citation) give the text without a mark. `answer` (offsets in
    `text`, inside the mark) is the short answer, wrapped in `<strong class="aqa-answer">`."""
    if not (0 <= start <= end <= len(text)) or start == end:
        return escape(text)
    attr = f' id="{escape(mark_id)}"' if mark_id else ""
    a_start, a_end = answer
    if a_start is not None and a_end is not None and start <= a_start < a_end <= end:
        inner = (
            escape(text[start:a_start])
            + '<strong class="aqa-answer">'
            + escape(text[a_start:a_end])
            + "</strong>"
            + escape(text[a_end:end])
        )
    else:
        inner = escape(text[start:end])
    return escape(text[:start]) + f"<mark{attr}>" + inner + "</mark>" + escape(text[end:])


def _link(url: str | None, label: str) -> str:
    """A link that opens in a new tab, only for http(s) URLs (no javascript: or data:)."""
    if url and urlparse(url).scheme in {"http", "https"}:
        return f'<a href="{escape(url, quote=True)}" target="_blank" rel="noopener noreferrer">{escape(label)}</a>'
    return escape(label)


def _meta(source: str | None, published_at: object, article_id: str) -> str:
    parts = [
        f'<span class="aqa-source">{escape(source or "unknown source")}</span>',
        f'<span class="aqa-date">{escape(str(published_at) if published_at else "undated")}</span>',
        f'<span class="aqa-id">{escape(article_id)}</span>',
    ]
    return '<div class="aqa-meta">' + " · ".join(parts) + "</div>"


def citation_item(citation: Citation, *, label: str) -> str:
    """One passage of the sources panel: marker, linked title, metadata, passage with the
    quoted sentence highlighted."""
    rel_start = citation.start - citation.passage_start
    rel_end = citation.end - citation.passage_start
    answer = (
        (citation.answer_start - citation.passage_start, citation.answer_end - citation.passage_start)
        if citation.answer_start is not None and citation.answer_end is not None
        else (None, None)
    )
    passage = highlight(citation.passage, rel_start, rel_end, answer=answer)
    return (
        f'<li class="aqa-cite" data-n="{citation.n}">'
        f'<div class="aqa-head"><span class="aqa-n">{escape(label)}</span> '
        f'<span class="aqa-title">{_link(citation.url, citation.title)}</span></div>'
        f"{_meta(citation.source, citation.published_at, citation.article_id)}"
        f'<blockquote class="aqa-passage">{passage}</blockquote>'
        "</li>"
    )


def sources_html(answer: Answer | None) -> str:
    """The sources panel for an answer: its citations, or the related passages when it
    abstains (under a heading that says the articles do not answer the question)."""
    if answer is None:
        return (
            '<div class="aqa-sources aqa-empty"><p>Sources of the answer appear here, '
            "with the quoted sentence highlighted.</p></div>"
        )
    parts = ['<div class="aqa-sources">']
    if answer.grounded and answer.citations:
        parts.append(f'<h3 class="aqa-heading">Sources ({len(answer.citations)})</h3><ol class="aqa-list">')
        parts.extend(citation_item(c, label=f"[{c.n}]") for c in answer.citations)
        parts.append("</ol>")
    else:
        parts.append('<h3 class="aqa-heading aqa-related-heading">Not answered by the articles: related passages</h3>')
        if answer.related:
            parts.append('<ol class="aqa-list aqa-related">')
            parts.extend(citation_item(c, label=f"related {i}") for i, c in enumerate(answer.related, 1))
            parts.append("</ol>")
        else:
            parts.append("<p>No related passages were found.</p>")
    if answer.notes:
        parts.append('<ul class="aqa-notes">')
        parts.extend(f"<li>{escape(note)}</li>" for note in answer.notes)
        parts.append("</ul>")
    parts.append("</div>")
    return "".join(parts)


def searching_html(passages: int | None = None) -> str:
    text = "Searching the articles…" if passages is None else f"Read {passages} passages; answering…"
    return f'<div class="aqa-sources aqa-empty"><p>{escape(text)}</p></div>'


def citation_choices(answer: Answer | None) -> list[tuple[str, str]]:
    """(label, value) pairs for the "open a citation" selector: citations, else related."""
    if answer is None:
        return []
    if answer.grounded and answer.citations:
        return [(_short(f"[{c.n}] {c.title}"), f"c{c.n}") for c in answer.citations]
    return [(_short(f"related {i}: {c.title}"), f"r{i}") for i, c in enumerate(answer.related, 1)]


def pick_citation(answer: Answer | None, value: str | None) -> Citation | None:
    """The citation a `citation_choices` value names."""
    if answer is None or not value or value[0] not in "cr" or not value[1:].isdigit():
        return None
    i = int(value[1:])
    if value[0] == "c":
        return next((c for c in answer.citations if c.n == i), None)
    return answer.related[i - 1] if 0 < i <= len(answer.related) else None


def _short(label: str, limit: int = 90) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


def article_html(article: Article | None, citation: Citation | None) -> str:
    """The full article text with the cited sentence highlighted (`text[start:end]`)."""
    if citation is None:
        return (
            '<div class="aqa-article aqa-empty"><p>Choose a citation to read the whole '
            "article with the quoted sentence highlighted.</p></div>"
        )
    if article is None:
        return (
            '<div class="aqa-article aqa-empty"><p>The article '
            f"<code>{escape(citation.article_id)}</code> is no longer in the index.</p></div>"
        )
    body = highlight(
        article.text,
        citation.start,
        citation.end,
        mark_id="aqa-quote",
        answer=(citation.answer_start, citation.answer_end),
    )
    return (
        '<div class="aqa-article">'
        f'<h3 class="aqa-article-title">{_link(article.url, article.title)}</h3>'
        f"{_meta(article.source, article.published_at, article.id)}"
        f'<div class="aqa-article-text">{body}</div>'
        "</div>"
    )


def stats_markdown(stats: dict[str, object]) -> str:
    rows = "\n".join(f"| {escape(str(k))} | {escape(str(v))} |" for k, v in stats.items())
    return "| index | |\n| --- | --- |\n" + rows


def report_markdown(summary: dict[str, object], failed: Sequence[tuple[str, str]], title: str) -> str:
    """An indexing run's outcome, with one line per input that failed and its reason."""
    counts = ", ".join(f"{k} {v}" for k, v in summary.items())
    lines = [f"**{title}**: {counts}"]
    if failed:
        lines.append("")
        lines.append(f"**{len(failed)} input(s) failed** (nothing already indexed was changed):")
        lines.append("")
        for origin, reason in failed:
            lines.append(f"- `{_md_code(origin)}`: {_md_text(reason)}")
    return "\n".join(lines)


def feed_note(action: str, url: str, watching: bool) -> str:
    """What following or unfollowing a feed did, and who polls it."""
    who = (
        "This server polls it in the background."
        if watching
        else "It is polled by `articleqa watch` (or `articleqa serve --watch`) on this index folder."
    )
    return f"{action} `{_md_code(url)}`." + (f" {who}" if action == "Following" else "")


def _md_code(text: str) -> str:
    return text.replace("`", "'")


def _md_text(text: str) -> str:
    return escape(text).replace("*", "\\*").replace("_", "\\_")


CSS = """
.aqa-sources, .aqa-article { font-size: 0.95rem; line-height: 1.45; }
.aqa-heading { margin: 0 0 0.5rem 0; font-size: 1.05rem; }
.aqa-related-heading { color: #9a5b00; }
.aqa-list { padding-left: 0; list-style: none; margin: 0; }
.aqa-cite { border: 1px solid var(--border-color-primary, #ddd); border-radius: 8px;
            padding: 0.5rem 0.75rem; margin-bottom: 0.6rem; }
.aqa-n { font-weight: 700; margin-right: 0.25rem; }
.aqa-title { font-weight: 600; }
.aqa-meta { color: var(--body-text-color-subdued, #666); font-size: 0.85rem; margin: 0.15rem 0 0.35rem; }
.aqa-passage { margin: 0; padding-left: 0.6rem; border-left: 3px solid #d0d7de; white-space: pre-wrap; }
.aqa-sources mark, .aqa-article mark { background: #ffe066; color: #111; padding: 0 2px; border-radius: 2px; }
.aqa-related mark { background: #ffe9b3; }
.aqa-answer { background: #ffc107; font-weight: 700; border-radius: 2px; }
.aqa-article-text { white-space: pre-wrap; max-height: 32rem; overflow-y: auto; }
.aqa-notes { color: var(--body-text-color-subdued, #666); font-size: 0.85rem; }
.aqa-empty { color: var(--body-text-color-subdued, #666); }
"""
