"""Question answering over the indexed articles: retrieval, answers, citations, the CLI."""
