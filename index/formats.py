"""Parse the content of one input (text, Markdown, HTML or JSON, or a fetched page) into articles.

`parse_text` and `parse_html` return one article and raise `FormatError` for a bad input;
`parse_json` and `parse_jsonl` return one failure per bad record and raise only when the
whole file is unusable. Article text is kept exactly as written apart from stripping
leading and trailing whitespace: citations are character offsets into it.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from urllib.parse import urlsplit

import yaml
from frontmatter.default_handlers import YAMLHandler
from pydantic import ValidationError

from articleqa.index.models import Article, SourceFailure
from articleqa.index.sources import url_article_id

UTF8_BOM = b"\xef\xbb\xbf"
DATE_FORMAT_HINT = "expected YYYY-MM-DD or an ISO 8601 datetime"
# Bad records listed one by one per file; the rest are counted in one more failure. A file
# whose first this-many records are all bad is not read further (it is not that format).
MAX_RECORD_FAILURES = 20

Parsed = Article | SourceFailure


class FormatError(ValueError):
    """A problem with the content of an input; its message is the failure reason."""


@dataclass(frozen=True)
class PageHints:
    """What is known about a web page before it is read (from a news feed's entry); each
    field fills in for the page's own metadata only where the page gives none."""

    title: str | None = None
    published_at: date | None = None
    author: str | None = None
    source: str | None = None


def decode_text(data: bytes) -> str:
    """Decode file bytes as UTF-8 text, refusing empty, binary and mis-encoded files.

    Args:
        data: the raw bytes of the file.

    Returns:
        The text, without a leading UTF-8 byte order mark.

    Raises:
        FormatError: "file is empty", "binary file, not text" (a NUL byte anywhere: real
            text never holds one, and NUL would reach the index's text columns) or
            "invalid UTF-8 at byte offset N (byte 0xXX)".
    """
    bom = len(UTF8_BOM) if data.startswith(UTF8_BOM) else 0
    if not data[bom:].strip():
        raise FormatError("file is empty")
    if b"\x00" in data:
        raise FormatError("binary file, not text")
    try:
        return data[bom:].decode("utf-8")
    except UnicodeDecodeError as exc:
        # Offsets are reported in the file's own bytes, so the BOM counts.
        bad = data[bom + exc.start : bom + exc.start + 1].hex()
        raise FormatError(f"invalid UTF-8 at byte offset {bom + exc.start} (byte 0x{bad})") from None


def parse_date(value: object) -> date | None:
    """Read a publication date given as a date, a datetime, `YYYY-MM-DD` or an ISO datetime.

    Args:
        value: the raw value (YAML may already have turned it into a date).

    Returns:
        The date, or None when the value is None or an empty string.

    Raises:
        FormatError: naming the value and the expected format.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.strip()).date()
        except ValueError:
            pass
    raise FormatError(f"invalid date {value!r}: {DATE_FORMAT_HINT}")


def _text_field(meta: dict[str, Any], key: str) -> str | None:
    """A metadata value as stripped text; None when absent or blank."""
    value = meta.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise FormatError(f"field {key!r} must be text, got {type(value).__name__}")
    return str(value).strip() or None


def _split_front_matter(text: str) -> tuple[dict[str, Any], str]:
    """Split YAML front matter (`---` ... `---`) from the body; no front matter gives `{}`."""
    handler = YAMLHandler()
    stripped = text.lstrip()
    # detect() only looks at the very start, so a `---` rule inside the body is left alone.
    if not handler.detect(stripped):
        return {}, text
    try:
        front, body = handler.split(stripped)
    except ValueError:
        raise FormatError("front matter starts with '---' but is never closed") from None
    try:
        meta = handler.load(front)
    except RecursionError:
        raise FormatError("invalid YAML front matter: nested too deeply") from None
    except ValueError as exc:  # PyYAML builds dates itself: `date: 2024-02-30` lands here
        raise FormatError(f"invalid YAML front matter: {exc}") from None
    except yaml.YAMLError as exc:
        # PyYAML's own message spans several lines; keep the problem and where it is.
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        mark = getattr(exc, "problem_mark", None)
        # The front matter text starts on the opening `---` line, so its lines are file lines.
        skipped_lines = text[: len(text) - len(stripped)].count("\n")
        where = f" (line {mark.line + 1 + skipped_lines})" if mark is not None else ""
        raise FormatError(f"invalid YAML front matter: {problem}{where}") from None
    if meta is None:
        return {}, body
    if not isinstance(meta, dict):
        raise FormatError(f"front matter must be a mapping of keys to values, got {type(meta).__name__}")
    return meta, body


def _first_line(body: str) -> tuple[str, str]:
    """Return the first non-empty line (stripped) and everything after it."""
    pos = 0
    while pos <= len(body):
        end = body.find("\n", pos)
        end = len(body) if end == -1 else end
        line = body[pos:end]
        if line.strip():
            return line.strip(), body[end + 1 :]
        pos = end + 1
    return "", ""


def _markdown_headline(headline: str, rest: str) -> tuple[str, str]:
    """Drop Markdown heading marks: `# Title #` (ATX) or a `===`/`---` underline (setext)."""
    if headline.startswith("#"):
        headline = headline.lstrip("#").strip()
        trimmed = headline.rstrip("#")
        # A closing run of `#` only counts when a space separates it from the title.
        if trimmed != headline and (not trimmed or trimmed[-1].isspace()):
            headline = trimmed.strip()
        return headline, rest
    underline, after = rest.split("\n", 1) if "\n" in rest else (rest, "")
    mark = underline.strip()
    if (mark and set(mark) <= {"="}) or (len(mark) >= 2 and set(mark) <= {"-"}):
        return headline, after
    return headline, rest


def _valid_unicode(fields: dict[str, Any]) -> None:
    """Refuse text that cannot be stored: a JSON escape like \\ud800 gives a lone surrogate."""
    for key, value in fields.items():
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as exc:
                bad = f"\\u{ord(value[exc.start]):04x}"
                raise FormatError(
                    f"field {key!r} holds an unpaired surrogate {bad}, which is not valid Unicode text"
                ) from None


def _article(meta: dict[str, Any], *, default_id: str, title: str, text: str, origin: str) -> Article:
    """Build an article from front matter or JSON fields plus the title and text found."""
    article_id = _text_field(meta, "id") or default_id
    published = meta.get("published_at") if meta.get("published_at") is not None else meta.get("date")
    fields = {
        "id": article_id,
        "title": title,
        "text": text,
        "source": _text_field(meta, "source"),
        "url": _text_field(meta, "url"),
        "published_at": parse_date(published),
        "author": _text_field(meta, "author"),
    }
    _valid_unicode({"body" if key == "text" and "body" in meta else key: value for key, value in fields.items()})
    try:
        return Article(**fields, origin=origin)
    except ValidationError as exc:  # a last guard: the checks above should catch everything
        problem = exc.errors()[0]
        where = ".".join(str(part) for part in problem["loc"])
        raise FormatError(f"field {where!r}: {problem['msg']}") from None


def parse_text(text: str, *, origin: str, default_id: str, markdown: bool = False) -> Article:
    """Parse a `.txt` or `.md` article: optional front matter, a headline line, then the text.

    Args:
        text: the decoded file content.
        origin: the file path, recorded on the article.
        default_id: the id used when front matter gives none.
        markdown: strip Markdown heading marks from the headline.

    Returns:
        The article.

    Raises:
        FormatError: bad front matter, a bad date, or no text after the headline.
    """
    meta, body = _split_front_matter(text)
    title = _text_field(meta, "title")
    if title:
        article_text = body.strip()
        if not article_text:
            raise FormatError("no article text after the front matter")
    else:
        headline, rest = _first_line(body)
        if not headline:
            raise FormatError("no headline and no article text")
        if markdown:
            headline, rest = _markdown_headline(headline, rest)
        title, article_text = headline, rest.strip()
        if not article_text:
            raise FormatError("no article text after the headline")
    return _article(meta, default_id=default_id, title=title, text=article_text, origin=origin)


def _json_type(value: object) -> str:
    """A decoded JSON value's type in JSON's own words (string, not str), for messages."""
    if value is None:
        return "null"
    names = ((bool, "boolean"), (int, "number"), (float, "number"), (str, "string"), (list, "array"), (dict, "object"))
    return next((name for kind, name in names if isinstance(value, kind)), type(value).__name__)


def _record(obj: object, *, origin: str, default_id: str) -> Article:
    """Turn one JSON object into an article; raises FormatError naming the problem."""
    if not isinstance(obj, dict):
        raise FormatError(f"not a JSON object (got {_json_type(obj)})")
    for key in ("title", "body", "text"):
        if obj.get(key) is not None and not isinstance(obj[key], str):
            raise FormatError(f"field {key!r} must be a string, got {_json_type(obj[key])}")
    if obj.get("title") is None:
        raise FormatError("missing field 'title'")
    title = obj["title"].strip()
    if not title:
        raise FormatError("empty field 'title'")
    key = "body" if obj.get("body") is not None else "text"
    if obj.get(key) is None:
        raise FormatError("missing field 'body' (or 'text')")
    text = obj[key].strip()
    if not text:
        raise FormatError(f"empty field {key!r}")
    if "id" in obj and obj["id"] is not None and not _text_field(obj, "id"):
        raise FormatError("field 'id' is empty")
    return _article(obj, default_id=default_id, title=title, text=text, origin=origin)


def _json_problem(exc: json.JSONDecodeError, *, with_line: bool) -> str:
    where = f"line {exc.lineno} column {exc.colno}" if with_line else f"column {exc.colno}"
    return f"invalid JSON: {exc.msg} at {where}"


def _load_json(text: str, *, with_line: bool) -> object:
    """`json.loads`, with every way it can fail turned into a FormatError.

    Besides syntax errors, Python's decoder raises RecursionError for deep nesting
    (`[[[[...`) and ValueError for integers of more than 4300 digits.
    """
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise FormatError(_json_problem(exc, with_line=with_line)) from None
    except RecursionError:
        raise FormatError("invalid JSON: nested too deeply (arrays or objects inside each other)") from None
    except ValueError:  # the only other ValueError json.loads raises
        raise FormatError(f"invalid JSON: a number with more than {sys.get_int_max_str_digits()} digits") from None


class _RecordFailures:
    """Per-record failures of one file, listed up to MAX_RECORD_FAILURES and then counted.

    A hostile file can hold millions of bad records; the report stays readable and small.
    """

    def __init__(self, origin: str, unit: str) -> None:
        self.origin = origin
        self.unit = unit
        self.count = 0

    def add(self, out: list[Parsed], n: int, exc: FormatError) -> None:
        self.count += 1
        if self.count <= MAX_RECORD_FAILURES:
            out.append(SourceFailure(origin=self.origin, reason=f"{self.unit} {n}: {exc}"))

    def hopeless(self, out: list[Parsed]) -> bool:
        """True when the first MAX_RECORD_FAILURES records all failed: stop reading."""
        # Checked once, when the count reaches the limit: later failures must stay cheap.
        return self.count == MAX_RECORD_FAILURES and not any(isinstance(item, Article) for item in out)

    def finish(self, out: list[Parsed], stopped_at: int | None = None) -> list[Parsed]:
        if stopped_at is not None:
            reason = (
                f"gave up after {self.unit} {stopped_at}: the first {self.count} {self.unit}s with content are all bad"
            )
            out.append(SourceFailure(origin=self.origin, reason=reason))
        elif self.count > MAX_RECORD_FAILURES:
            hidden = self.count - MAX_RECORD_FAILURES
            reason = f"{hidden} more bad {self.unit}s not listed (the first {MAX_RECORD_FAILURES} are)"
            out.append(SourceFailure(origin=self.origin, reason=reason))
        return out


def parse_json(text: str, *, origin: str, default_id: str) -> list[Parsed]:
    """Parse a `.json` file holding one article object or a list of them.

    Args:
        text: the decoded file content.
        origin: the file path, recorded on articles and failures.
        default_id: the file's id; a list item without an id gets `<default_id>:<n>` (n from 1).

    Returns:
        Articles, and one failure (reason `item N: ...`) per bad list item.

    Raises:
        FormatError: the whole file is not valid JSON, or neither an object nor a list.
    """
    data = _load_json(text, with_line=True)
    if isinstance(data, dict):
        return [_record(data, origin=origin, default_id=default_id)]
    if not isinstance(data, list):
        raise FormatError(f"expected a JSON object or a list of objects, got {_json_type(data)}")
    if not data:
        raise FormatError("the JSON list is empty")
    if not any(isinstance(item, dict) for item in data):
        kinds = ", ".join(sorted({_json_type(item) for item in data}))
        raise FormatError(f"expected a JSON object or a list of objects, got a list of {kinds}")
    out: list[Parsed] = []
    failures = _RecordFailures(origin, "item")
    for n, item in enumerate(data, start=1):
        try:
            out.append(_record(item, origin=origin, default_id=f"{default_id}:{n}"))
        except FormatError as exc:
            failures.add(out, n, exc)
    return failures.finish(out)


def parse_jsonl(text: str, *, origin: str, default_id: str) -> list[Parsed]:
    """Parse a `.jsonl` file: one article object a line, blank lines ignored.

    Args:
        text: the decoded file content.
        origin: the file path, recorded on articles and failures.
        default_id: the file's id; a record without an id gets `<default_id>:<line number>`.

    Returns:
        Articles, and one failure (reason `line N: ...`) per bad line.
    """
    out: list[Parsed] = []
    failures = _RecordFailures(origin, "line")
    # Split on "\n" only: str.splitlines() would also break at U+2028, valid inside JSON strings.
    for n, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            obj = _load_json(line, with_line=False)
            out.append(_record(obj, origin=origin, default_id=f"{default_id}:{n}"))
        except FormatError as exc:
            failures.add(out, n, exc)
            if failures.hopeless(out):
                return failures.finish(out, stopped_at=n)
    return failures.finish(out)


def _site_name(found: str | None, url: str | None, known: str | None) -> str | None:
    """The page's site name; where trafilatura only made one up from the host name (the page
    names none), the `known` one (a feed's title) is better."""
    found = (found or "").strip()
    if known and (not found or (url and found.lower().removeprefix("www.") == _host(url))):
        return known
    return found or None


def _host(url: str) -> str:
    return urlsplit(url).netloc.lower().removeprefix("www.")


def parse_html(
    html: str | bytes,
    *,
    origin: str,
    article_id: str | None = None,
    page_url: str | None = None,
    known: PageHints | None = None,
) -> Article:
    """Extract the main article of an HTML page with trafilatura.

    Args:
        html: the page, as text or as bytes of an unknown charset.
        origin: the file path or URL it was read from.
        article_id: the id to give; None derives it from the page's URL (web pages).
        page_url: the URL the page was fetched from (after redirects), used when the page
            names no canonical URL.
        known: what a news feed said about the page; each field fills in only where the
            page's own markup gives nothing (many pages state no date a parser can find).

    Returns:
        The article: url is the page's canonical URL (else `page_url`), source its site name.

    Raises:
        FormatError: "no article text found in the HTML", or a bad date.
    """
    # Imported here: trafilatura takes about a second to import, and most runs read no HTML.
    import trafilatura

    known = known or PageHints()
    try:
        doc = trafilatura.bare_extraction(
            html,
            url=page_url,
            with_metadata=True,
            include_comments=False,  # reader comments are not part of the article
            # No free-text date guessing: only dates the page states in its markup.
            date_extraction_params={"original_date": True, "extensive_search": False},
        )
    except RecursionError:
        raise FormatError("the HTML is nested too deeply to read") from None
    text = (doc.text or "").strip() if doc is not None else ""
    if not text:
        raise FormatError("no article text found in the HTML")
    title = (doc.title or "").strip() or (known.title or "").strip()
    first, rest = _first_line(text)
    if title and first == title and rest.strip():
        # trafilatura keeps the <h1> as the first line; the title is stored separately.
        text = rest.strip()
    elif not title:
        title = first[:200]
    url = doc.url or page_url
    if article_id is None:
        article_id = url_article_id(url or origin)
    return Article(
        id=article_id,
        title=title,
        text=text,
        source=_site_name(doc.sitename, url or page_url, known.source),
        url=url,
        published_at=parse_date(doc.date) or known.published_at,
        author=(doc.author or "").strip() or known.author,
        origin=origin,
    )
