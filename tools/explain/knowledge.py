"""The concept knowledge base: loaded once from tools/data/concepts/*.json, indexed, searched and completed."""

from __future__ import annotations

import difflib
import json
import math
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Literal

from tools.common import ToolFailure
from tools.explain.concept_schema import Concept
from tools.explain.schema import LANGUAGES
from tools.paths import CONCEPT_INDEX_URI

FOUND_THRESHOLD = 0.72  # a best score at or above this is a match
CLEAR_LEAD = (0.55, 0.1)  # ... and so is a lower one that clearly beats the runner-up ("dead relu")
_CJK_RE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_WORD_RE = re.compile(r"[a-z0-9]+|[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
# filler words of a question ("what is a ...", "什么是...") that name no concept
_STOP_EN = {
    "what",
    "whats",
    "is",
    "are",
    "a",
    "an",
    "the",
    "of",
    "in",
    "explain",
    "me",
    "please",
    "how",
    "does",
    "do",
    "work",
    "works",
    "mean",
    "means",
    "define",
    "definition",
    "about",
    "tell",
    "concept",
    "to",
}
_STOP_ZH = (
    "什么是",
    "是什么",
    "什么叫",
    "解释一下",
    "解释",
    "一下",
    "请问",
    "请",
    "讲讲",
    "介绍",
    "的概念",
    "概念",
    "吗",
    "呢",
    "？",
    "?",
)


# --- the knowledge base ----------------------------------------------------------------------------------


def normalize(text: str) -> str:
    """Case-, width-, space- and punctuation-insensitive key: 'Residual-Connection' -> 'residualconnection'."""
    text = unicodedata.normalize("NFKC", text).casefold()
    key = "".join(ch for ch in text if ch.isalnum())
    return key or "".join(text.split())  # symbol-only names such as ∇ or ∂ keep their symbols


def _tokens(text: str) -> list[str]:
    """Latin words and digits, plus Chinese as character bigrams (no spaces in Chinese)."""
    out: list[str] = []
    for part in _WORD_RE.findall(unicodedata.normalize("NFKC", text).casefold()):
        if _CJK_RE.match(part):
            out.extend([part] if len(part) == 1 else [part[i : i + 2] for i in range(len(part) - 1)])
        else:
            out.append(part)
    return out


def is_chinese(text: str) -> bool:
    return _CJK_RE.search(text) is not None


@dataclass
class KnowledgeBase:
    concepts: dict[str, Concept]
    exact: dict[str, str]  # normalized name/alias/id -> concept id
    keys: dict[str, list[str]]  # concept id -> its normalized keys
    tokens: dict[str, set[str]]  # concept id -> tokens of its names and aliases
    idf: dict[str, float]

    def names_of(self, concept: Concept) -> list[str]:
        return [concept.id, concept.names.en, concept.names.zh, *concept.aliases_en, *concept.aliases_zh]


def _data_files():
    folder = resources.files("tools") / "data" / "concepts"
    return sorted((f for f in folder.iterdir() if f.name.endswith(".json")), key=lambda f: f.name)


@lru_cache(maxsize=1)
def load_kb() -> KnowledgeBase:
    """Read and validate every concept file once; build the lookup indexes."""
    concepts: dict[str, Concept] = {}
    for f in _data_files():
        try:
            items = json.loads(f.read_text(encoding="utf-8"))
            for item in items:
                c = Concept.model_validate(item)
                if c.id in concepts:
                    raise ValueError(f"duplicate concept id {c.id!r}")
                concepts[c.id] = c
        except ValueError as exc:  # JSONDecodeError and ValidationError are ValueErrors
            raise ToolFailure(f"knowledge base file {f.name} is invalid: {exc}") from exc
    exact: dict[str, str] = {}
    keys: dict[str, list[str]] = {}
    tokens: dict[str, set[str]] = {}
    # main names and ids claim a key before aliases do
    for primary in (True, False):
        for c in concepts.values():
            names = [c.id, c.names.en, c.names.zh] if primary else [*c.aliases_en, *c.aliases_zh]
            for name in names:
                k = normalize(name)
                if k:
                    exact.setdefault(k, c.id)
                    keys.setdefault(c.id, [])
                    if k not in keys[c.id]:
                        keys[c.id].append(k)
                    tokens.setdefault(c.id, set()).update(_tokens(name.replace("_", " ")))
    df: dict[str, int] = {}
    for toks in tokens.values():
        for t in toks:
            df[t] = df.get(t, 0) + 1
    n = max(len(concepts), 1)
    idf = {t: math.log(1 + n / d) for t, d in df.items()}
    return KnowledgeBase(concepts=concepts, exact=exact, keys=keys, tokens=tokens, idf=idf)


def _strip_question(query: str) -> str:
    q = query
    for w in _STOP_ZH:
        q = q.replace(w, " ")
    words = re.split(r"(\s+)", q)
    kept = [w for w in words if normalize(w) not in _STOP_EN]
    stripped = "".join(kept).strip()
    return stripped if normalize(stripped) else query


def _near_words(kb: KnowledgeBase, token: str) -> dict[str, float]:
    """Vocabulary words equal or close to a query word (a typo): word -> similarity in [0.8, 1]."""
    if token in kb.idf:
        return {token: 1.0}
    if len(token) < 4:
        return {}
    sm = difflib.SequenceMatcher(None, autojunk=False)
    sm.set_seq2(token)
    near = {}
    for word in kb.idf:
        if abs(len(word) - len(token)) > 2:
            continue
        sm.set_seq1(word)
        if sm.real_quick_ratio() >= 0.8 and sm.quick_ratio() >= 0.8 and (r := sm.ratio()) >= 0.8:
            near[word] = r
    return near


def _char_score(sm: difflib.SequenceMatcher, keys: list[str]) -> float:
    """Best character similarity of the query (seq2 of `sm`) with one of the concept's names."""
    best = 0.0
    for k in keys:
        sm.set_seq1(k)
        if sm.real_quick_ratio() > best and sm.quick_ratio() > best:
            best = max(best, sm.ratio())
    return best


def rank(query: str, limit: int = 5) -> list[tuple[str, float]]:
    """Concept ids with scores in [0, 1], best first. 1.0 means a name or alias matched exactly."""
    kb = load_kb()
    q = normalize(query)
    if not q:
        return []
    stripped = _strip_question(query)
    for text, score in ((query, 1.0), (stripped, 0.99)):  # a name or alias, alone or inside a question
        hit = kb.exact.get(normalize(text))
        if hit is not None:
            rest = [(cid, s) for cid, s in _fuzzy(kb, text) if cid != hit] if limit > 1 else []
            return [(hit, score), *rest[: limit - 1]]
    return _fuzzy(kb, stripped)[:limit]


def _fuzzy(kb: KnowledgeBase, query: str) -> list[tuple[str, float]]:
    """Score = 0.6 x share of the query's (idf-weighted) words a concept's names cover + 0.4 x character similarity."""
    q_tokens = _tokens(query)
    default_idf = math.log(1 + len(kb.concepts))
    # a word no concept uses says little about which concept is meant: half weight
    weights = [kb.idf.get(t, default_idf / 2) for t in q_tokens]
    near = [_near_words(kb, t) for t in q_tokens]
    total = sum(weights)
    sm = difflib.SequenceMatcher(None, autojunk=False)
    sm.set_seq2(normalize(query))
    scored = []
    for cid, keys in kb.keys.items():
        toks = kb.tokens[cid]
        covered = sum(
            w * max((sim for u, sim in nw.items() if u in toks), default=0.0)
            for w, nw in zip(weights, near, strict=True)
        )
        tok = covered / total if total else 0.0
        char = _char_score(sm, keys)
        scored.append((cid, round(min(0.98, 0.6 * tok + 0.4 * char if tok > 0 else 0.9 * char), 4)))
    scored.sort(key=lambda x: (-x[1], x[0]))
    return scored


def resolve_language(query: str, language: str) -> Literal["en", "zh", "both"]:
    if language == "auto":
        return "zh" if is_chinese(query) else "en"
    return language  # type: ignore[return-value]


def lookup(query: str) -> tuple[Concept | None, float, list[tuple[str, float]]]:
    """The matched concept (or None), its score, and the ranked candidates."""
    ranked = rank(query, limit=6)
    best = ranked[0][1] if ranked else 0.0
    second = ranked[1][1] if len(ranked) > 1 else 0.0
    if best >= FOUND_THRESHOLD or (best >= CLEAR_LEAD[0] and best - second >= CLEAR_LEAD[1]):
        return load_kb().concepts[ranked[0][0]], ranked[0][1], ranked
    return None, (ranked[0][1] if ranked else 0.0), ranked


MAX_COMPLETIONS = 100  # the protocol's cap on values per completion


def complete_concepts(partial: str, ids_only: bool) -> list[str]:
    """Concept ids (or, for a Chinese partial, Chinese names) matching a partial name.

    Order: the id or main name starts with it, then an alias starts with it, then any name contains it;
    a partial that matches nothing (a typo) falls back to the fuzzy ranking.
    """
    kb = load_kb()
    q = normalize(partial)
    chinese = is_chinese(partial) and not ids_only
    tiers: list[tuple[int, str, str]] = []
    for cid, c in kb.concepts.items():
        main = [normalize(n) for n in (cid, c.names.en, c.names.zh)]
        keys = kb.keys[cid]
        if any(k.startswith(q) for k in main):
            tier = 0
        elif any(k.startswith(q) for k in keys):
            tier = 1
        elif any(q in k for k in keys):
            tier = 2
        else:
            continue
        tiers.append((tier, cid, c.names.zh if chinese else cid))
    if not tiers and q:
        ranked = rank(partial, limit=10)
        floor = max(0.4, ranked[0][1] - 0.15) if ranked else 1.0  # only the near-best guesses
        return [kb.concepts[cid].names.zh if chinese else cid for cid, score in ranked if score >= floor]
    return [value for _, _, value in sorted(tiers)]


def complete_languages(partial: str) -> list[str]:
    return [v for v in LANGUAGES if v.startswith(partial.lower())]


def concept_by_id(query: str) -> Concept:
    """A concept by id, or by any name or alias (concept://relu-activation); refused naming the closest ids."""
    kb = load_kb()
    concept = kb.concepts.get(query)
    if concept is None:
        concept, _, ranked = lookup(query)
        if concept is None:
            closest = ", ".join(cid for cid, _ in ranked[:5])
            raise ToolFailure(f"Unknown concept id {query!r}. Closest: {closest}. See {CONCEPT_INDEX_URI}.")
    return concept
