"""explain_concept: look a deep-learning concept up in the bilingual knowledge base, with a live demo.

The knowledge base is data (tools/data/concepts/*.json, validated by tools.concept_schema.Concept),
loaded once and indexed by every name and alias in both languages. Lookup is forgiving: case, spaces
and punctuation are ignored, then a fuzzy score ranks concepts by the query words they cover
(rare words count more, so "relu activation" is ReLU, not "activation function") and by character
similarity (typos, partial Chinese names such as 残差). Importing this module does not import torch.
"""

from __future__ import annotations

import difflib
import json
import math
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from tools.common import InlineImage, Reporter, ToolFailure, ToolInput, ToolOutput
from tools.concept_schema import Concept
from tools.config import LabConfig
from tools.demos import DemoParams, DemoResult, DemoText, run_demo

FOUND_THRESHOLD = 0.72  # a best score at or above this is a match
CLEAR_LEAD = (0.55, 0.1)  # ... and so is a lower one that clearly beats the runner-up ("dead relu")
TOOL_NAMES = ("tensorize_image", "train_toy_mlp", "generate_image", "explain_concept")
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

FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]


class ExplainInput(ToolInput):
    concept: str = Field(
        min_length=1,
        max_length=200,
        description="The concept to explain, by any English or Chinese name or alias, e.g. 'residual connection', "
        "'ReLU', 'lr', '残差连接', '学习率'. Case, spaces and punctuation do not matter; typos are tolerated.",
    )
    language: Literal["auto", "en", "zh", "both"] = Field(
        "auto",
        description="Answer language: en, zh (Simplified Chinese) or both; auto follows the query's script.",
    )
    detail: Literal["summary", "full"] = Field(
        "full",
        description="summary: name, one-line summary and related concepts; full: also explanation, analogy, "
        "formula, snippet, pitfalls, try-it call and the live demo.",
    )
    demo: bool = Field(
        True, description="Run the concept's live torch demo (when it has one and detail is full)."
    )
    demo_input: list[FiniteFloat] | None = Field(
        None,
        min_length=1,
        max_length=64,
        description="Numbers for the demo: x values (activations), logits (softmax, cross_entropy), predictions "
        "(mse), pixel values 0-255 (normalization), a 3x3 kernel as 9 numbers (convolution), values to drop "
        "(dropout), 12 numbers = 4 samples x 3 features (batch/layer norm), [x, y, w, b] (chain rule), "
        "up to 12 depths 1-100 (gradient through deep stacks).",
    )
    demo_target: list[FiniteFloat] | None = Field(
        None, min_length=1, max_length=64, description="mse demo: the targets, one per value of demo_input."
    )
    target_class: int | None = Field(
        None,
        ge=0,
        le=63,
        description="cross_entropy demo: index of the true class among the logits (default 0).",
    )
    temperature: float = Field(
        1.0,
        ge=0.01,
        le=100,
        allow_inf_nan=False,
        description="softmax demo: divide the logits by this first.",
    )
    learning_rate: float | None = Field(
        None,
        gt=0,
        le=10,
        allow_inf_nan=False,
        description="gradient_descent demo: the step size on f(x)=x² (default compares 0.05 slow, 0.4 fast, 0.9 oscillating, 1.05 diverging; above 1 "
        "diverges); chain_rule demo: the step size of one update (default 0.1).",
    )
    steps: int = Field(20, ge=1, le=200, description="gradient_descent demo: number of steps.")
    start_x: float = Field(
        4.0, ge=-100, le=100, allow_inf_nan=False, description="gradient_descent demo: starting x."
    )
    dropout_p: float = Field(
        0.5, ge=0, lt=1, allow_inf_nan=False, description="dropout demo: probability of zeroing each value."
    )
    seed: int = Field(
        0, ge=0, le=2**32 - 1, description="Seed of the random demos (dropout, batch/layer norm)."
    )
    plot: bool = Field(True, description="Attach a small picture of the demo where one helps.")


class Text(BaseModel):
    en: str | None = Field(None, description="English text (null when only Chinese was asked for).")
    zh: str | None = Field(
        None, description="Simplified Chinese text (null when only English was asked for)."
    )


class ConceptRef(BaseModel):
    id: str = Field(description="Concept id; explain_concept accepts it, and concept://{id} is its resource.")
    name: Text = Field(description="The concept's name.")


class Suggestion(ConceptRef):
    score: float = Field(ge=0, le=1, description="How well the query matched this concept (1 = exact).")


class TryItCall(BaseModel):
    tool: str = Field(description="Tool of this server to call: " + " | ".join(TOOL_NAMES))
    arguments: dict[str, Any] = Field(description="Arguments of the call, ready to use.")
    what_to_look_for: Text = Field(description="What the call shows about the concept.")


class ExplainResult(BaseModel):
    found: bool = Field(description="Whether the query matched a concept; if not, see suggestions.")
    query: str = Field(description="The concept asked for, as given.")
    language: Literal["en", "zh", "both"] = Field(description="Language of the texts.")
    message: str = Field(description="One line on how the query was matched, or what to do if it was not.")
    match_score: float = Field(
        ge=0, le=1, description="Score of the best match (1 = a name or alias exactly)."
    )
    id: str | None = Field(None, description="The concept's id.")
    category: str | None = Field(
        None,
        description="tensors_images | data | basics | deep_networks | architectures | llm | tooling | python",
    )
    name: Text | None = Field(None, description="Main name.")
    aliases: list[str] = Field(default_factory=list, description="Other names and abbreviations.")
    summary: Text | None = Field(None, description="One line.")
    explanation: Text | None = Field(None, description="Beginner-level explanation (detail=full).")
    analogy: Text | None = Field(None, description="An everyday analogy (detail=full).")
    formula: str | None = Field(None, description="LaTeX formula, where one exists (detail=full).")
    snippet: str | None = Field(None, description="A short runnable PyTorch/Python snippet (detail=full).")
    related: list[ConceptRef] = Field(default_factory=list, description="Related concepts.")
    pitfalls: list[Text] = Field(default_factory=list, description="Common mistakes (detail=full).")
    try_it: TryItCall | None = Field(
        None, description="A call of this server's tools that shows the concept."
    )
    demo: DemoResult | None = Field(None, description="The live demo computed with torch for this call.")
    demo_name: str | None = Field(None, description="Name of the concept's live demo, if it has one.")
    resource_uri: str | None = Field(
        None, description="concept://{id}: the concept in both languages as markdown."
    )
    suggestions: list[Suggestion] = Field(
        default_factory=list, description="Closest other concepts (all the candidates when not found)."
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


# --- rendering -----------------------------------------------------------------------------------------


def _text(b, language: str) -> Text:
    if language == "en":
        return Text(en=b.en)
    if language == "zh":
        return Text(zh=b.zh)
    return Text(en=b.en, zh=b.zh)


def _demo_text(d: DemoText, language: str) -> DemoText:
    return DemoText(en=d.en if language != "zh" else None, zh=d.zh if language != "en" else None)


def _ref(kb: KnowledgeBase, cid: str, language: str) -> ConceptRef:
    c = kb.concepts.get(cid)
    if c is None:
        return ConceptRef(id=cid, name=Text(en=cid) if language != "zh" else Text(zh=cid))
    return ConceptRef(id=cid, name=_text(c.names, language))


def _both(t: Text | DemoText | None, sep: str = " / ") -> str:
    if t is None:
        return ""
    return sep.join(x for x in (t.en, t.zh) if x)


_MD_LABELS = {
    "en": ("English", "Summary", "Explanation", "Analogy", "Pitfalls"),
    "zh": ("中文", "一句话", "解释", "类比", "常见误区"),
}


def concept_markdown(concept: Concept, language: str = "both") -> str:
    """The concept as markdown (the concept://{id} resource uses both languages)."""
    kb = load_kb()
    langs = ["en", "zh"] if language == "both" else [language]
    lines = [f"# {concept.names.en} / {concept.names.zh}", ""]
    aliases = ", ".join([*concept.aliases_en, *concept.aliases_zh])
    lines += [f"*id `{concept.id}` · {concept.category}" + (f" · also: {aliases}*" if aliases else "*"), ""]
    for lang in langs:
        heading, summary, explanation, analogy, pitfalls = _MD_LABELS[lang]
        lines += [f"## {heading}", "", f"**{summary}**: {getattr(concept.summary, lang)}", ""]
        lines += [f"**{explanation}**: {getattr(concept.explanation, lang)}", ""]
        lines += [f"**{analogy}**: {getattr(concept.analogy, lang)}", ""]
        if concept.pitfalls:
            lines += [f"**{pitfalls}**:", *(f"- {getattr(x, lang)}" for x in concept.pitfalls), ""]
    if concept.formula:
        lines += ["## Formula / 公式", "", f"$$ {concept.formula} $$", ""]
    lines += ["## Code / 代码", "", "```python", concept.snippet.rstrip(), "```", ""]
    if concept.related:
        names = [f"`{r}` ({_both(_ref(kb, r, 'both').name)})" for r in concept.related]
        lines += ["## Related / 相关概念", "", ", ".join(names), ""]
    if concept.try_it:
        t = concept.try_it
        lines += [
            "## Try it / 动手试试",
            "",
            f"`{t.tool}({json.dumps(t.arguments, ensure_ascii=False)})`",
            "",
        ]
        lines += [f"- {getattr(t.what_to_look_for, lang)}" for lang in langs]
    if concept.demo:
        lines += ["", f"Live demo / 实时演示: `explain_concept` computes `{concept.demo}` with torch."]
    return "\n".join(lines).rstrip() + "\n"


def index_markdown() -> str:
    """All concepts by category: id, English and Chinese name, one-line summary."""
    kb = load_kb()
    by_cat: dict[str, list[Concept]] = {}
    for c in kb.concepts.values():
        by_cat.setdefault(c.category, []).append(c)
    lines = [f"# Concepts / 概念索引 ({len(kb.concepts)})", ""]
    for cat, items in by_cat.items():
        lines += [f"## {cat}", ""]
        lines += [f"- `{c.id}`: {c.names.en} / {c.names.zh}: {c.summary.en}" for c in items]
        lines.append("")
    return "\n".join(lines)


def _summary_text(r: ExplainResult) -> str:
    if not r.found:
        sugg = ", ".join(f"{s.id} ({_both(s.name)})" for s in r.suggestions)
        return f"{r.message} Closest: {sugg}."
    lines = [f"{_both(r.name)} [{r.id}]: {_both(r.summary, ' | ')}"]
    if r.formula:
        lines.append(f"Formula: {r.formula}")
    if r.demo is not None:
        lines.append(f"Live demo `{r.demo.name}`: {_both(r.demo.title)}")
    if r.try_it is not None:
        lines.append(f"Try it: {r.try_it.tool}({json.dumps(r.try_it.arguments, ensure_ascii=False)})")
    return "\n".join(lines)


# --- the tool ---------------------------------------------------------------------------------------------


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


def run(args: ExplainInput, cfg: LabConfig, reporter: Reporter) -> ToolOutput:
    kb = load_kb()
    language = resolve_language(args.concept, args.language)
    concept, score, ranked = lookup(args.concept)
    if concept is None:
        result = ExplainResult(
            found=False,
            query=args.concept,
            language=language,
            message=f"No concept matches {args.concept!r}. Call explain_concept again with one of the suggested "
            "ids, or read concepts://index for the full list.",
            match_score=score,
            suggestions=[
                Suggestion(score=s, **_ref(kb, cid, language).model_dump()) for cid, s in ranked[:5]
            ],
        )
        return ToolOutput(result=result, summary=_summary_text(result))

    full = args.detail == "full"
    demo_result, png = None, None
    if full and args.demo and concept.demo:
        reporter.check_cancelled()
        params = DemoParams(**{k: getattr(args, k) for k in DemoParams.__dataclass_fields__})
        demo_result, png = run_demo(concept.demo, params)
        demo_result.title = _demo_text(demo_result.title, language)
        demo_result.notes = [_demo_text(n, language) for n in demo_result.notes]
    aliases = (
        concept.aliases_en
        if language == "en"
        else concept.aliases_zh
        if language == "zh"
        else [*concept.aliases_en, *concept.aliases_zh]
    )
    t = concept.try_it
    how = "exactly by name or alias" if score >= 0.99 else f"fuzzily (score {score:.2f})"
    result = ExplainResult(
        found=True,
        query=args.concept,
        language=language,
        message=f"Matched {concept.id} {how}.",
        match_score=score,
        id=concept.id,
        category=concept.category,
        name=_text(concept.names, language),
        aliases=aliases,
        summary=_text(concept.summary, language),
        explanation=_text(concept.explanation, language) if full else None,
        analogy=_text(concept.analogy, language) if full else None,
        formula=concept.formula if full else None,
        snippet=concept.snippet if full else None,
        related=[_ref(kb, r, language) for r in concept.related],
        pitfalls=[_text(p, language) for p in concept.pitfalls] if full else [],
        try_it=TryItCall(
            tool=t.tool, arguments=t.arguments, what_to_look_for=_text(t.what_to_look_for, language)
        )
        if (t and full)
        else None,
        demo=demo_result,
        demo_name=concept.demo,
        resource_uri=f"concept://{concept.id}",
        suggestions=[Suggestion(score=s, **_ref(kb, cid, language).model_dump()) for cid, s in ranked[1:4]],
    )
    images = [InlineImage(png=png, caption=_both(demo_result.title))] if png and demo_result else []
    return ToolOutput(result=result, images=images, summary=_summary_text(result))
