"""Span ("late chunking") vectors: one pass over a chunk gives a vector for each sentence."""

from __future__ import annotations

import numpy as np
import pytest

from articleqa.index.chunking import split_sentences
from articleqa.index.embeddings import SentenceTransformerEmbeddings
from articleqa.index.encoding import SpanVectors
from articleqa.index.precision import float_precision
from tests.conftest import SEED, WASTE_SENTENCE

pytestmark = pytest.mark.slow  # the real embedding model


def _chunk_with_waste_sentence() -> str:
    text = SEED.read_text(encoding="utf-8")
    at = text.index(WASTE_SENTENCE)
    return text[max(0, at - 400) : at + len(WASTE_SENTENCE) + 300]


def _sentence_spans(text: str) -> list[tuple[int, int]]:
    return [(s.start, s.end) for s in split_sentences(text)]


def test_span_vectors_come_from_the_same_pass_as_the_text_vector(embeddings):
    chunk = _chunk_with_waste_sentence()
    spans = _sentence_spans(chunk)
    assert len(spans) >= 4
    vectors, per_text = embeddings.encode_with_spans([chunk, "A short second text."], [spans, [(0, 7)]])
    np.testing.assert_allclose(vectors, embeddings.encode([chunk, "A short second text."]), atol=1e-5)
    first = per_text[0]
    assert [tuple(s) for s in first.spans.tolist()] == spans
    assert first.vectors.shape == (len(spans), 384)
    np.testing.assert_allclose(np.linalg.norm(first.vectors, axis=1), 1.0, atol=1e-5)
    assert per_text[1].spans.tolist() == [[0, 7]]


def test_the_answering_sentence_is_closest_to_the_question(embeddings):
    chunk = _chunk_with_waste_sentence()
    spans = _sentence_spans(chunk)
    _, (span_vectors,) = embeddings.encode_with_spans([chunk], [spans])
    question = embeddings.encode(["Who called the meeting a waste of time?"])[0]
    best = int(np.argmax(span_vectors.vectors @ question))
    start, end = span_vectors.spans[best]
    assert chunk[start:end] == WASTE_SENTENCE


def test_spans_cut_off_by_the_model_window_are_left_out(embeddings):
    filler = "The committee met again on Tuesday and discussed the budget at length. " * 40
    text = filler + "This final sentence lies beyond the model's 256-token window."
    spans = [(0, 70), (len(filler), len(text))]
    _, (result,) = embeddings.encode_with_spans([text], [spans])
    assert result.spans.tolist() == [[0, 70]]


def test_pytorch_and_openvino_span_vectors_agree():
    """The same pooling on both runners: OpenVINO in a float precision (int8's vectors differ
    by design; tests/test_embedding_backends.py checks its floor)."""
    torch_model = SentenceTransformerEmbeddings(backend="torch")
    openvino = SentenceTransformerEmbeddings(backend="openvino", precision=float_precision())
    chunk = _chunk_with_waste_sentence()
    spans = _sentence_spans(chunk)
    _, (ov,) = openvino.encode_with_spans([chunk], [spans])
    _, (pt,) = torch_model.encode_with_spans([chunk], [spans])
    assert np.sum(ov.vectors * pt.vectors, axis=1).min() >= 0.9999


def test_span_vectors_survive_storage(embeddings):
    chunk = _chunk_with_waste_sentence()
    _, (original,) = embeddings.encode_with_spans([chunk], [_sentence_spans(chunk)])
    restored = SpanVectors.from_blobs(*original.to_blobs())
    assert restored.spans.tolist() == original.spans.tolist()
    assert np.sum(restored.vectors * original.vectors, axis=1).min() >= 0.999
    empty = SpanVectors.from_blobs(b"", b"")
    assert empty.lookup() == {}


def test_mismatched_span_lists_are_refused(embeddings):
    with pytest.raises(ValueError, match="2 span lists for 1 texts"):
        embeddings.encode_with_spans(["one text"], [[(0, 3)], [(0, 2)]])


def test_overlapping_or_unsorted_spans_give_the_same_vectors(embeddings):
    chunk = _chunk_with_waste_sentence()
    spans = _sentence_spans(chunk)
    _, (sentences,) = embeddings.encode_with_spans([chunk], [spans])
    # Reversed order plus a span covering the first two sentences: the general path.
    odd = list(reversed(spans)) + [(spans[0][0], spans[1][1])]
    _, (general,) = embeddings.encode_with_spans([chunk], [odd])
    by_span = general.lookup()
    for (start, end), vector in sentences.lookup().items():
        assert float(vector @ by_span[(start, end)]) >= 0.99999
    assert (spans[0][0], spans[1][1]) in by_span
