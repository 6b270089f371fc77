"""Citation verification for generated answers: every citation must be real text.

A language model is told to cite passages with `[n]` and to put quotations in double quotes,
but nothing forces it to. `verify_answer` checks the finished text against the passages it
was given and keeps only what holds:

- Markers: `[n]` must name one of the passages given (1..len(passages)). Other numbers are
  removed. `[1, 3]` and `[Passage 2]` are rewritten as `[1][3]` and `[2]`.
- Quotes: a span in double quotes must occur in a passage its sentence cites, compared after
  normalising whitespace and quote marks only (case, words and punctuation must match). A
  verified quote becomes a `Citation` whose `quote` is the article's own text at its exact
  offsets (`article.text[start:end] == quote`), so curly quotes or line breaks the model
  changed do not break the offsets. A quote in a sentence with no marker that occurs in a
  passage gets that passage's marker added; a quote found in no cited passage is flagged in
  the text with "(unverified quote)".
- A sentence that cites a passage without quoting it gets a citation whose `quote` is the
  sentence of that passage sharing the most words with it (the reader sees real text at real
  offsets either way). A marker whose passage shares no content word with the sentence
  supports nothing and is removed, and so is a marker cited for a quote that its passage
  does not contain.
- Sentences left with no valid marker are removed: a claim with no citation is not grounded.

The caller decides what to do with an answer left with no citation (fall back to the
extractive answer).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from articleqa.index.chunking import split_sentences
from articleqa.index.text import query_terms
from articleqa.qa.models import Citation, Passage

# Double quotes only: single quotes are apostrophes far more often than quotations.
_QUOTE_SPAN = re.compile(r"[\"“”„«»]([^\"“”„«»]{1,1000}?)[\"“”»]")
# [3], [1, 2], [1;2], [Passage 4], [passage 4, 5]
_MARKER = re.compile(r"\[\s*(?:passages?\s*)?(\d{1,3}(?:\s*[,;]\s*(?:passage\s*)?\d{1,3})*)\s*\]", re.I)
# End of a sentence: . ! or ? with any closing quotes/brackets, the sentence's own trailing
# markers ("... time.” [1]"; not a marker the next sentence starts with: "[2] says ..."),
# then whitespace.
_SENTENCE_END = re.compile(
    r"[.!?]+[\"”’')\]]*(?:\s*\[\s*(?:passages?\s*)?\d{1,3}(?:\s*[,;]\s*(?:passage\s*)?\d{1,3})*\s*\](?!\s+(?-i:[a-z])))*(?=\s|$)",
    re.I,
)
_QUOTE_MARKS = str.maketrans({**{c: '"' for c in "“”„‟″«»"}, **{c: "'" for c in "‘’‚‛′`"}})
UNVERIFIED_FLAG = "(unverified quote)"
# Terms compared by their first letters, a cheap stemmer: "deployed" matches "deploy".
_STEM = 5


@dataclass
class Verification:
    """The verified answer text, its citations, and what was changed.

    `citations` follow the order of their first marker in `text`; several may share one `n`
    when a passage was quoted more than once.
    """

    text: str
    citations: list[Citation] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    sentences: int = 0  # sentences in the model's answer
    supported: int = 0  # sentences kept with at least one valid citation

    @property
    def grounded(self) -> bool:
        return bool(self.citations)


def normalise(text: str) -> str:
    """Whitespace runs become one space, curly and angle quotes become straight ones."""
    return " ".join(text.translate(_QUOTE_MARKS).split())


def locate(quote: str, passage_text: str) -> tuple[int, int] | None:
    """Where `quote` occurs in `passage_text`, comparing normalised text (see `normalise`).

    Returns:
        `(start, end)` offsets in `passage_text` of the matching original span (trimmed of
        surrounding whitespace), or None.
    """
    needle = normalise(quote)
    if not needle:
        return None
    chars: list[str] = []
    origin: list[int] = []  # origin[i]: offset in passage_text of normalised char i
    for i, ch in enumerate(passage_text.translate(_QUOTE_MARKS)):
        if ch.isspace():
            if not chars or chars[-1] == " ":
                continue
            ch = " "
        chars.append(ch)
        origin.append(i)
    at = "".join(chars).find(needle)
    if at < 0:
        return None
    return origin[at], origin[at + len(needle) - 1] + 1


def verify_answer(text: str, passages: list[Passage]) -> Verification:
    """Check `text` (a generated answer) against the numbered `passages` it was given.

    Args:
        text: The model's finished answer.
        passages: The passages in prompt order: `[1]` is `passages[0]`.

    Returns:
        A `Verification`: the cleaned text, one `Citation` per verified quote or supported
        marker, and notes naming every marker removed, quote flagged and sentence dropped.
    """
    result = Verification(text="")
    kept: list[str] = []
    seen: set[tuple[int, int, int]] = set()
    for sentence in _sentences(text):
        if not sentence.strip():
            continue
        result.sentences += 1
        cleaned, citations = _verify_sentence(sentence, passages, result.notes)
        if not citations:
            bare = _MARKER.sub("", cleaned).strip()
            if bare:
                result.notes.append(f"removed a sentence that cites no passage: {_short(bare)!r}")
            continue
        result.supported += 1
        kept.append(cleaned)
        for c in citations:
            key = (c.n, c.start, c.end)
            if key not in seen:
                seen.add(key)
                result.citations.append(c)
    result.text = " ".join(kept).strip()
    return result


def _sentences(text: str) -> list[str]:
    """Split at sentence ends that are not inside a quotation; trailing markers stay with
    the sentence they follow."""
    quoted = [m.span() for m in _QUOTE_SPAN.finditer(text)]
    pieces: list[str] = []
    start = 0
    for m in _SENTENCE_END.finditer(text):
        if any(a < m.start() and m.end() < b for a, b in quoted):
            continue  # "U.S." or a full stop inside a quotation that goes on
        pieces.append(text[start : m.end()])
        start = m.end()
    pieces.append(text[start:])
    return [p.strip() for p in pieces if p.strip()]


def _numbers(group: str) -> list[int]:
    return [int(n) for n in re.findall(r"\d+", group)]


def _verify_sentence(sentence: str, passages: list[Passage], notes: list[str]) -> tuple[str, list[Citation]]:
    """One sentence: its cleaned text and the citations that support it."""
    markers = [(m.start(), m.end(), _numbers(m.group(1))) for m in _MARKER.finditer(sentence)]
    edits: list[tuple[int, int, str]] = []  # (start, end, replacement) in `sentence`
    valid_all: list[int] = []
    for start, end, numbers in markers:
        valid = [n for n in dict.fromkeys(numbers) if 1 <= n <= len(passages)]
        for n in numbers:
            if n not in valid:
                notes.append(f"removed [{n}]: no passage {n} was given (passages 1-{len(passages)})")
        edits.append((start, end, "".join(f"[{n}]" for n in valid)))
        valid_all += [n for n in valid if n not in valid_all]

    citations: list[Citation] = []
    quoted_numbers: set[int] = set()
    discredited: set[int] = set()  # cited for a quote their passage does not contain
    for q in _QUOTE_SPAN.finditer(sentence):
        quote = q.group(1)
        after = [nums for s, _, nums in markers if s >= q.end()]
        before = [nums for _, e, nums in markers if e <= q.start()]
        cited = [n for n in (after[0] if after else before[-1] if before else []) if 1 <= n <= len(passages)]
        found = None
        for n in cited:
            span = locate(quote, passages[n - 1].text)
            if span:
                found = (n, span)
                break
        if found is None and not cited:
            # An uncited quotation that is real text of a passage: cite where it is.
            for n, passage in enumerate(passages, 1):
                span = locate(quote, passage.text)
                if span:
                    found = (n, span)
                    edits.append((q.end(), q.end(), f" [{n}]"))
                    if n not in valid_all:
                        valid_all.append(n)
                    notes.append(f"added [{n}] after the uncited quote {_short(quote)!r}, found in passage {n}")
                    break
        if found is None:
            where = f"passage {', '.join(map(str, cited))}" if cited else "any passage"
            notes.append(f"flagged the quote {_short(quote)!r}: it does not occur in {where}")
            edits.append((q.end(), q.end(), f" {UNVERIFIED_FLAG}"))
            discredited.update(cited)
            continue
        n, (a, b) = found
        quoted_numbers.add(n)
        citations.append(Citation.of(n, passages[n - 1], a, b))

    # Markers with no verified quote in this sentence: cite the passage's closest sentence.
    claim = _QUOTE_SPAN.sub(lambda m: m.group(1), _MARKER.sub(" ", sentence))
    claim = re.sub(r"\s+([.,;:!?])", r"\1", " ".join(claim.split()))
    unsupported: set[int] = set()
    for n in valid_all:
        if n in quoted_numbers:
            continue
        if n in discredited:
            # The sentence claims a quotation from passage n that is not there: the marker
            # does not support it, however many words they share.
            unsupported.add(n)
            continue
        span = _closest_sentence(claim, passages[n - 1].text)
        if span is None:
            unsupported.add(n)
            notes.append(f"removed [{n}]: passage {n} shares no content word with {_short(claim)!r}")
            continue
        citations.append(Citation.of(n, passages[n - 1], *span))
    if unsupported:
        edits = [
            (s, e, re.sub(r"\[(\d+)\]", lambda m: "" if int(m.group(1)) in unsupported else m.group(0), r))
            for s, e, r in edits
        ]
    cleaned = _apply(sentence, edits)
    # Keep citations in marker order (a quote's citation where its marker is).
    order = {n: i for i, n in enumerate(int(x) for x in re.findall(r"\[(\d+)\]", cleaned))}
    citations.sort(key=lambda c: order.get(c.n, len(order)))
    citations = [c for c in citations if c.n in order]
    return cleaned, citations


def _apply(text: str, edits: list[tuple[int, int, str]]) -> str:
    """Apply the edits; where they changed something, tidy the spaces a removal left."""
    original = text
    for start, end, replacement in sorted(edits, key=lambda e: (e[0], e[1]), reverse=True):
        text = text[:start] + replacement + text[end:]
    if text == original:
        return text.strip()
    text = re.sub(r"[ \t]{2,}", " ", text)
    return re.sub(r"[ \t]+([.,;:!?])(?=\s|$)", r"\1", text).strip()


def _stems(text: str) -> set[str]:
    return {t[:_STEM] for t in query_terms(text)}


def _closest_sentence(claim: str, passage_text: str) -> tuple[int, int] | None:
    """The sentence of the passage sharing the most content words with `claim`, or None
    when none shares any."""
    wanted = _stems(claim)
    best, best_overlap = None, 0
    for span in split_sentences(passage_text):
        overlap = len(wanted & _stems(passage_text[span.start : span.end]))
        if overlap > best_overlap:
            best, best_overlap = (span.start, span.end), overlap
    return best


def _short(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
