"""explain_concept: a curated bilingual knowledge base of deep-learning concepts, each with a live torch demo.

Importing this package loads the models and the search (no torch); demos import torch when they run.
"""

from __future__ import annotations

from tools.explain.explain import concept_markdown, index_markdown, run
from tools.explain.knowledge import (
    MAX_COMPLETIONS,
    complete_concepts,
    complete_languages,
    concept_by_id,
    is_chinese,
    load_kb,
    lookup,
    normalize,
    rank,
    resolve_language,
)
from tools.explain.schema import LANGUAGES, TOOL_NAMES, ExplainInput, ExplainResult

__all__ = [
    "LANGUAGES",
    "MAX_COMPLETIONS",
    "TOOL_NAMES",
    "ExplainInput",
    "ExplainResult",
    "complete_concepts",
    "complete_languages",
    "concept_by_id",
    "concept_markdown",
    "index_markdown",
    "is_chinese",
    "load_kb",
    "lookup",
    "normalize",
    "rank",
    "resolve_language",
    "run",
]
