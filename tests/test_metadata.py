"""Sources named in questions, matched against the indexed articles' sources (no network)."""

from __future__ import annotations

from articleqa.qa.metadata import SourceCatalog, source_aliases

SOURCES = [
    "TechCrunch",
    "The Verge",
    "The Age",
    "Cnbc | World Business News Leader",
    "FOX News - Health",
    "FOX News - Lifestyle",
    "The Roar | Sports Writers Blog",
]


def test_aliases_come_from_the_name_itself():
    assert source_aliases("Cnbc | World Business News Leader")[-1] == "Cnbc"
    assert "FOX News" in source_aliases("FOX News - Health")
    assert {"The Roar", "Roar"} <= set(source_aliases("The Roar | Sports Writers Blog"))
    assert "Verge" in source_aliases("The Verge")
    assert all(len(a) >= 3 for a in source_aliases("The Age"))


def test_mentions_in_order_case_folded():
    catalog = SourceCatalog(SOURCES)
    question = "Did TechCrunch and the Verge report the same CNBC figure as The Roar?"
    assert catalog.named_sources(question) == (
        "TechCrunch",
        "The Verge",
        "Cnbc | World Business News Leader",
        "The Roar | Sports Writers Blog",
    )


def test_a_shared_alias_names_every_source_that_has_it():
    catalog = SourceCatalog(SOURCES)
    assert catalog.named_sources("What did Fox News say about sleep?") == ("FOX News - Health", "FOX News - Lifestyle")


def test_a_common_word_is_not_a_source_unless_written_as_a_name():
    catalog = SourceCatalog(SOURCES)
    assert catalog.named_sources("What is the age of the oldest player?") == ()
    assert catalog.named_sources("According to The Age, who won?") == ("The Age",)
    assert catalog.named_sources("Which team won, as the Age reported?") == ("The Age",)


def test_strip_blanks_mentions_and_keeps_offsets():
    catalog = SourceCatalog(SOURCES)
    question = "Who won, according to TechCrunch?"
    stripped = catalog.strip(question)
    assert len(stripped) == len(question)
    assert "TechCrunch" not in stripped and stripped.startswith("Who won, according to ")


def test_empty_catalog_finds_nothing():
    assert SourceCatalog([]).mentions("According to TechCrunch?") == []


def test_short_source_names_only_in_capitals():
    catalog = SourceCatalog(["RT", "Wikinews"])
    assert catalog.named_sources("What did RT report?") == ("RT",)
    assert catalog.named_sources("What did Rt report about art?") == ()
