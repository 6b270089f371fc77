"""The declared public API: every name in __all__ exists, and the documented ones are there."""

from __future__ import annotations

import importlib

import pytest


@pytest.mark.parametrize("module", ["articleqa.index", "articleqa.qa", "articleqa.prompts"])
def test_all_names_exist(module):
    mod = importlib.import_module(module)
    missing = [name for name in mod.__all__ if not hasattr(mod, name)]
    assert not missing


def test_documented_names_are_exported():
    from articleqa import index, qa

    assert {"ArticleQA", "Answer", "Citation", "Filters", "Turn", "NO_ANSWER"} <= set(qa.__all__)
    assert {"open_index", "index_paths", "IndexReport", "Article", "load_articles"} <= set(index.__all__)
