"""The words of a query worth matching: one tokeniser and stop-word list for BM25 and the answerer.

Lives in `index` because the lexical index needs it and `index` never imports `qa`; the
answerer's stemmed terms (`qa.text`) build on the same stop words.
"""

from __future__ import annotations

import re

# Words that carry no signal in a BM25 query over news; everything else is kept.
STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is it
    its itself just me more most my myself no nor not now of off on once only or other our ours
    out over own same she should so some such than that the their theirs them themselves then
    there these they this those through to too under until up very was we were what when where
    which while who whom why will with would you your yours did said say says tell told""".split()
)
_TOKEN = re.compile(r"\w+(?:[.,']\w+)*", re.UNICODE)


def query_terms(query: str) -> list[str]:
    """The terms of a question worth matching: words and numbers minus stopwords."""
    terms: list[str] = []
    for token in _TOKEN.findall(query.lower()):
        if token in STOPWORDS or (len(token) < 2 and not token.isdigit()):
            continue
        if token not in terms:
            terms.append(token)
    return terms
