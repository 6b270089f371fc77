"""Sentence splitting and chunking: exact offsets, whole sentences, overlap."""

from __future__ import annotations

import pytest

from articleqa.index.chunking import chunk_article, split_sentences
from articleqa.index.models import Article
from tests.conftest import WASTE_SENTENCE, corpus_rows


def article(text: str, id_: str = "a") -> Article:
    return Article(id=id_, title="T", text=text, origin="/tmp/a.txt")


def test_sentences_have_exact_offsets_and_never_join_lines():
    text = "Headline without a stop\nFirst sentence here. Second one, with “quotes.” Third?\n\nLast line"
    spans = split_sentences(text)
    got = [text[s.start : s.end] for s in spans]
    assert got == [
        "Headline without a stop",
        "First sentence here.",
        "Second one, with “quotes.”",
        "Third?",
        "Last line",
    ]


def test_seed_sentence_is_one_sentence():
    from tests.conftest import SEED

    text = SEED.read_text(encoding="utf-8")
    sentences = [text[s.start : s.end] for s in split_sentences(text)]
    assert WASTE_SENTENCE in sentences


@pytest.mark.parametrize("row", corpus_rows(40), ids=lambda r: r["id"])
def test_chunks_are_exact_slices_of_whole_sentences(row):
    a = article(row["body"], row["id"])
    chunks = chunk_article(a, chunk_size=600, overlap=120)
    sentence_starts = {s.start for s in split_sentences(a.text)}
    sentence_ends = {s.end for s in split_sentences(a.text)}
    assert chunks, "every article yields chunks"
    for i, chunk in enumerate(chunks):
        assert chunk.index == i
        assert a.text[chunk.start : chunk.end] == chunk.text
        assert chunk.start in sentence_starts and chunk.end in sentence_ends
    # Every sentence is in some chunk, and chunks move forward.
    covered = set()
    for chunk in chunks:
        covered |= {s for s in sentence_starts if chunk.start <= s < chunk.end}
    assert covered == sentence_starts
    assert all(b.start > a_.start for a_, b in zip(chunks, chunks[1:]))


def test_chunks_respect_size_and_overlap():
    text = " ".join(f"Sentence number {i} says something moderately long here." for i in range(60))
    chunks = chunk_article(article(text), chunk_size=300, overlap=120)
    assert len(chunks) > 5
    assert all(len(c.text) <= 300 for c in chunks)
    for prev, nxt in zip(chunks, chunks[1:]):
        assert nxt.start < prev.end, "neighbouring chunks share whole sentences"
        assert prev.end - nxt.start <= 120


def test_no_overlap_when_disabled():
    text = " ".join(f"Sentence {i} is here." for i in range(100))
    chunks = chunk_article(article(text), chunk_size=200, overlap=0)
    for prev, nxt in zip(chunks, chunks[1:]):
        assert nxt.start > prev.end


def test_a_sentence_longer_than_the_chunk_is_kept_whole():
    long_sentence = "Then " + "word " * 100 + "end."
    text = f"Short one. {long_sentence} Another short one."
    chunks = chunk_article(article(text), chunk_size=100, overlap=20)
    assert any(c.text == long_sentence.strip() for c in chunks)


@pytest.mark.parametrize("size,overlap", [(10, 0), (200, 200), (200, -1)])
def test_bad_chunking_settings_name_the_value(size, overlap):
    with pytest.raises(ValueError, match=str(size if size < 50 else overlap)):
        chunk_article(article("A sentence."), chunk_size=size, overlap=overlap)


def test_sentence_offsets_equal_blingfires_own_on_real_and_unusual_text():
    """`sentence_offsets` re-does blingfire's byte-to-character mapping; it must agree exactly."""
    import blingfire

    from articleqa.index.chunking import sentence_offsets

    lines = [line for row in corpus_rows() for line in row["body"].split("\n") if line.strip()]
    lines += [
        "Zoë said „hi“. 日本語の文。次の文！ Ünïcödé 🎉 end. Next one",
        "a\x00b. c.",
        "\ufeffBOM first. Then this.",
        "Hello.\u2028World.",
        "é",
        "🎉🎉. x.",
        "word " * 2000 + ". end.",
    ]
    assert sum(len(line.encode()) != len(line) for line in lines) > 10, "the corpus must include non-ASCII lines"
    for line in lines:
        assert sentence_offsets(line) == blingfire.text_to_sentences_and_offsets(line)[1], line[:80]
