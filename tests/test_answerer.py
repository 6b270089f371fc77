"""The extractive answerer with the real bundled model over real article text.

Passages are built by hand from the seed article and a few Wikinews articles (real chunks from
`chunk_article`, so offsets are the real ones), the way retrieval would hand them over.
"""

from __future__ import annotations

import json

import pytest

from articleqa.index.chunking import chunk_article, split_sentences
from articleqa.index.formats import parse_text
from articleqa.index.models import Article
from articleqa.qa.answerer import NO_ANSWER, YES_NO_LEAD, ExtractiveAnswerer, ScoredSentence
from articleqa.qa.answering import AnswerContext
from articleqa.qa.features import FEATURES
from articleqa.qa.metadata import SourceCatalog
from articleqa.qa.models import Passage
from tests.conftest import CORPUS, SEED, SEED_ID

pytestmark = pytest.mark.slow

WASTE = (
    "Another senior European official was even more blunt in his assessment, branding the "
    "Macron-Trump meeting “a waste of time.”"
)


def _seed_article() -> Article:
    return parse_text(SEED.read_text(encoding="utf-8"), origin=str(SEED), default_id=SEED_ID)


def _wikinews(article_id: str) -> Article:
    for line in CORPUS.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if row["id"] == article_id:
            return Article(
                id=row["id"],
                title=row["title"],
                text=row["body"],
                source=row["source"],
                url=row["url"],
                published_at=row["published_at"],
                origin=str(CORPUS),
            )
    raise KeyError(article_id)


def _passages(article: Article, top_score: float, chunks: int | None = None) -> list[Passage]:
    """The article's real chunks as passages, scores falling in chunk order."""
    return [
        Passage(
            chunk_id=f"{article.id}:{c.index}",
            article_id=article.id,
            title=article.title,
            source=article.source,
            url=article.url,
            published_at=article.published_at,
            text=c.text,
            start=c.start,
            end=c.end,
            score=top_score - 0.01 * c.index,
        )
        for c in chunk_article(article)[:chunks]
    ]


@pytest.fixture(scope="module")
def model():
    from articleqa.index.embeddings import get_embeddings

    return get_embeddings()


@pytest.fixture(scope="module")
def answerer(model) -> ExtractiveAnswerer:
    return ExtractiveAnswerer(model)


@pytest.fixture(scope="module")
def seed() -> Article:
    return _seed_article()


@pytest.fixture(scope="module")
def passages(seed) -> list[Passage]:
    """The seed article's chunks, then two distractors from unrelated Wikinews articles."""
    distractors = _passages(_wikinews("wn-0001"), 0.3, 1) + _passages(_wikinews("wn-0002"), 0.2, 1)
    return _passages(seed, 0.9) + distractors


def _check_citations(answer, articles: dict[str, Article]) -> None:
    for c in answer.citations + answer.related:
        text = articles[c.article_id].text
        assert text[c.start : c.end] == c.quote
        assert text[c.passage_start : c.passage_end] == c.passage
        assert c.passage_start <= c.start < c.end <= c.passage_end


# ---- answering --------------------------------------------------------------------------


def test_who_called_the_meeting_a_waste_of_time(answerer, passages, seed):
    answer = answerer.answer(AnswerContext("Who called the meeting a waste of time?", passages))
    assert answer.grounded
    assert answer.answerer == "extractive"
    assert answer.citations[0].quote == WASTE
    assert seed.text[answer.citations[0].start : answer.citations[0].end] == WASTE
    _check_citations(answer, {seed.id: seed})
    assert answerer.threshold <= answer.confidence <= 1.0


def test_how_many_peacekeepers_shows_the_number_first(answerer, passages, seed):
    answer = answerer.answer(AnswerContext("How many peacekeepers could Britain and France deploy?", passages))
    assert answer.grounded
    first = answer.citations[0]
    assert "30,000" in first.quote
    assert answer.short_answer and answer.short_answer.startswith("30,000")
    assert answer.text.startswith(answer.short_answer + ": ")
    # The short answer lies inside the cited quote, at the offsets kept on the citation.
    assert seed.text[first.answer_start : first.answer_end] == answer.short_answer
    assert first.start <= first.answer_start < first.answer_end <= first.end
    _check_citations(answer, {seed.id: seed})


def test_markers_match_citation_numbers(answerer, passages, seed):
    answer = answerer.answer(AnswerContext("How many peacekeepers could Britain and France deploy?", passages))
    assert [c.n for c in answer.citations] == list(range(1, len(answer.citations) + 1))
    for c in answer.citations:
        assert f"{c.quote} [{c.n}]" in answer.text
    assert 1 <= len(answer.citations) <= answerer.max_sentences


def test_max_sentences_one_gives_one_citation(model, passages):
    answer = ExtractiveAnswerer(model, max_sentences=1).answer(
        AnswerContext("What did Lavrov say about deploying NATO troops as peacekeepers?", passages)
    )
    assert len(answer.citations) == 1
    assert "contradict Moscow’s key goal" in answer.citations[0].quote
    assert answer.short_answer is None  # a "what did X say" question wants the statement
    assert answer.text.endswith(" [1]")


def test_retrieval_query_is_echoed(answerer, passages):
    answer = answerer.answer(
        AnswerContext(
            "How many peacekeepers?",
            passages,
            retrieval_query="How many peacekeepers could Britain and France deploy in Ukraine?",
        )
    )
    assert answer.retrieval_query.startswith("How many peacekeepers could")


def test_unrelated_question_abstains_with_related(answerer, passages, seed):
    answer = answerer.answer(AnswerContext("What was the final score of the 2019 Super Bowl?", passages))
    assert not answer.grounded
    assert answer.text == NO_ANSWER
    assert answer.citations == []
    assert 1 <= len(answer.related) <= 3
    assert len({c.passage for c in answer.related}) == len(answer.related)  # distinct passages
    assert answer.confidence < answerer.threshold
    assert any("Super Bowl" in note for note in answer.notes)  # says which name is missing
    articles = {seed.id: seed, "wn-0001": _wikinews("wn-0001"), "wn-0002": _wikinews("wn-0002")}
    _check_citations(answer, articles)


def test_no_passages_abstains(answerer):
    answer = answerer.answer(AnswerContext("Who called the meeting a waste of time?", []))
    assert not answer.grounded
    assert answer.text == NO_ANSWER
    assert answer.citations == [] and answer.related == []
    assert answer.confidence == 0.0


@pytest.mark.parametrize("threshold", [-0.1, 1.5])
def test_threshold_is_a_probability(model, threshold):
    with pytest.raises(ValueError, match="probability between 0 and 1"):
        ExtractiveAnswerer(model, threshold=threshold)


def test_score_sentences_offsets_features_and_dedupe(answerer, passages):
    ranked = answerer.score_sentences("Who called the meeting a waste of time?", passages)
    assert all(isinstance(s, ScoredSentence) for s in ranked)
    assert [s.score for s in ranked] == sorted((s.score for s in ranked), reverse=True)
    assert all(0.0 <= s.score <= 1.0 for s in ranked)
    keys = [(s.passage.article_id, s.start) for s in ranked]
    assert len(keys) == len(set(keys))  # overlapping chunks do not repeat a sentence
    for s in ranked:
        p = s.passage
        assert s.text == p.text[s.start - p.start : s.end - p.start]
        assert tuple(s.features) == FEATURES
    # Deterministic: same input, same ranking.
    again = answerer.score_sentences("Who called the meeting a waste of time?", passages)
    assert [(s.start, s.score) for s in again] == [(s.start, s.score) for s in ranked]


def test_one_encode_call_per_question(model, passages):
    class Counting:
        calls = 0

        def encode(self, texts):
            Counting.calls += 1
            return model.encode(texts)

    ExtractiveAnswerer(Counting()).answer(AnswerContext("Who called the meeting a waste of time?", passages))
    assert Counting.calls == 2  # the question; then every sentence (no stored vectors), in one batch


def test_sentence_repeating_the_question_is_no_answer(answerer, seed):
    # A passage that merely restates the question next to one that answers it.
    text = "Who called the meeting a waste of time? " + WASTE
    article = Article(id="x", title="T", text=text, origin="x")
    passage = Passage(chunk_id="x:0", article_id="x", title="T", text=text, start=0, end=len(text), score=1.0)
    ranked = answerer.score_sentences("Who called the meeting a waste of time?", [passage])
    assert [s.text for s in ranked] == [WASTE]
    assert article.text[ranked[0].start : ranked[0].end] == WASTE
    # A yes/no question may be answered by the sentence that states its claim.
    claim = Passage(
        chunk_id="y:0", article_id="y", title="T", text="The meeting was a waste of time.", start=0, end=32, score=1.0
    )
    assert len(answerer.score_sentences("Was the meeting a waste of time?", [claim])) == 1


def test_short_fragments_skipped_unless_nothing_else(answerer):
    text = "Reuters\nOfficials said 39 people died in the collapse on Monday."
    passage = Passage(chunk_id="y:0", article_id="y", title="T", text=text, start=0, end=len(text), score=1.0)
    ranked = answerer.score_sentences("How many people died?", [passage])
    assert [s.text for s in ranked] == ["Officials said 39 people died in the collapse on Monday."]
    only_short = Passage(chunk_id="z:0", article_id="z", title="T", text="Reuters", start=0, end=7, score=1.0)
    assert [s.text for s in answerer.score_sentences("Who?", [only_short])] == ["Reuters"]


# ---- follow-ups: the conversation's articles first ----------------------------------------


def test_follow_up_is_answered_from_the_conversations_article(answerer, seed):
    # wn-0134 ("US troops had defeated ISIS") ranks first, but the follow-up's "he" is about
    # the article the previous answer cited: its sentences are shown first.
    other = _wikinews("wn-0134")
    passages = _passages(other, 0.9, 2) + _passages(seed, 0.5)
    context = AnswerContext("What did he say about troops?", passages, focus_articles=(seed.id,))
    answer = answerer.answer(context)
    shown = answer.citations or answer.related
    assert shown[0].article_id == seed.id and "troops" in shown[0].quote
    _check_citations(answer, {seed.id: seed, other.id: other})


def test_follow_up_is_answered_from_every_passage_when_the_conversation_does_not_answer(answerer, seed):
    magnitogorsk = _wikinews("wn-0001")
    passages = _passages(seed, 0.9) + _passages(magnitogorsk, 0.5)
    question = "Which Russian emergencies minister told Putin that 36 to 40 people were under the rubble?"
    answer = answerer.answer(AnswerContext(question, passages, focus_articles=(seed.id,)))
    assert answer.grounded and answer.short_answer == "Yevgeny Zinichev"
    assert answer.citations[0].article_id == magnitogorsk.id


# ---- sources named in the question ----------------------------------------------------------


def _two_source_passages(seed):
    magnitogorsk = _wikinews("wn-0001")
    return _passages(magnitogorsk, 0.9, 2) + _passages(seed, 0.5), {seed.id: seed, magnitogorsk.id: magnitogorsk}


def test_each_named_source_is_quoted_with_its_own_marker(model, seed):
    passages, articles = _two_source_passages(seed)
    catalog = SourceCatalog(["RT", "Wikinews"])
    # Selection only: whether to answer at all is the answerability model's (tested above).
    answerer = ExtractiveAnswerer(model, catalog=lambda: catalog, threshold=0.0)
    question = (
        "How many people were under the rubble in Magnitogorsk according to Wikinews, and how many "
        "peacekeepers could Britain and France deploy according to RT?"
    )
    answer = answerer.answer(AnswerContext(question, passages))
    assert answer.grounded
    assert {c.source for c in answer.citations} == {"RT", "Wikinews"}
    for c in answer.citations:
        assert f"[{c.n}]" in answer.text
        assert f"({c.source}" in answer.text  # several articles: each quote says where it is from
    _check_citations(answer, articles)


def test_yes_no_question_shows_dated_reports_and_leaves_the_answer_to_the_reader(model, seed):
    passages, articles = _two_source_passages(seed)
    catalog = SourceCatalog(["RT", "Wikinews"])
    answerer = ExtractiveAnswerer(model, catalog=lambda: catalog)
    answer = answerer.answer(
        AnswerContext("Did RT report that Britain and France could deploy peacekeepers in Ukraine?", passages)
    )
    assert answer.grounded
    assert answer.text.startswith(YES_NO_LEAD)
    assert answer.short_answer is None
    assert any("yes/no" in note for note in answer.notes)
    rt = next(c for c in answer.citations if c.source == "RT")
    assert "30,000" in rt.quote or "peacekeep" in rt.quote
    _check_citations(answer, articles)


# ---- against the naive baseline -----------------------------------------------------------

CASES = [
    # (article, question, gold answer)
    (SEED_ID, "How many peacekeepers could Britain and France deploy?", "30,000"),
    (SEED_ID, "Who called the meeting a waste of time?", "senior European official"),
    ("wn-0001", "How many people were confirmed dead in the Magnitogorsk apartment building collapse?", "39"),
    (
        "wn-0001",
        "Which Russian emergencies minister told Putin that 36 to 40 people were under the rubble?",
        "Yevgeny Zinichev",
    ),
]


def test_beats_first_sentence_of_top_passage(answerer):
    distractors = _passages(_wikinews("wn-0002"), 0.2, 1)
    ours = baseline = 0
    for article_id, question, gold in CASES:
        article = _seed_article() if article_id == SEED_ID else _wikinews(article_id)
        passages = _passages(article, 0.9) + distractors
        answer = answerer.answer(AnswerContext(question, passages))
        top = max(passages, key=lambda p: p.score)
        first = split_sentences(top.text)[0]
        ours += answer.grounded and gold.lower() in answer.text.lower()
        baseline += gold.lower() in top.text[first.start : first.end].lower()
    assert ours >= len(CASES) - 1
    assert baseline < ours


def test_stored_sentence_vectors_leave_only_the_question_to_encode(model, passages, seed):
    """With vectors from the index, a question costs one pass of the question alone (its
    opening's and clauses' vectors come from that pass, as with the bundled model); sentences
    of chunks without stored vectors are still encoded (in one more call)."""
    seed_passages = [p for p in passages if p.article_id == SEED_ID]
    spans = [[(s.start, s.end) for s in split_sentences(p.text)] for p in seed_passages]
    _, vectors = model.encode_with_spans([p.text for p in seed_passages], spans)
    stored = {p.chunk_id: v for p, v in zip(seed_passages, vectors)}
    asked: list[list[str]] = []

    class Counting:
        supports_spans = True

        def encode(self, texts):
            asked.append(list(texts))
            return model.encode(texts)

        def encode_with_spans(self, texts, spans):
            asked.append(list(texts))
            return model.encode_with_spans(texts, spans)

    def source(chunk_ids):
        return {c: stored[c] for c in chunk_ids if c in stored}

    question = "Who called the meeting a waste of time?"
    answer = ExtractiveAnswerer(Counting(), sentence_vectors=source).answer(AnswerContext(question, seed_passages))
    assert asked == [[question]]
    assert answer.grounded and answer.citations[0].quote == WASTE
    _check_citations(answer, {SEED_ID: seed})

    asked.clear()
    answer = ExtractiveAnswerer(Counting(), sentence_vectors=source).answer(AnswerContext(question, passages))
    distractor_sentences = [
        p.text[s.start : s.end] for p in passages if p.article_id != SEED_ID for s in split_sentences(p.text)
    ]
    assert asked[0] == [question] and len(asked) == 2
    assert set(asked[1]) <= set(distractor_sentences)
    assert answer.citations[0].quote == WASTE
