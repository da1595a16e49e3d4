"""explain_concept: look a deep-learning concept up in the bilingual knowledge base, with a live demo.

The knowledge base is data (tools/data/concepts/*.json, validated by tools.concept_schema.Concept),
loaded once and indexed by every name and alias in both languages. Lookup is forgiving: case, spaces
and punctuation are ignored, then a fuzzy score ranks concepts by the query words they cover
(rare words count more, so "relu activation" is ReLU, not "activation function") and by character
similarity (typos, partial Chinese names such as 残差). Importing this module does not import torch.
"""

from __future__ import annotations

import json
import re

from tools.common import InlineImage, Reporter, ToolOutput
from tools.config import LabConfig
from tools.explain.concept_schema import Concept
from tools.explain.knowledge import KnowledgeBase, load_kb, lookup, resolve_language
from tools.explain.schema import (
    ConceptRef,
    DemoParams,
    DemoText,
    ExplainInput,
    ExplainResult,
    Suggestion,
    Text,
    TryItCall,
)
from tools.paths import CONCEPT_URI

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
            f"`{t.tool}({short_arguments(t.arguments)})`",
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


# the labels of the text answer, in the answer's language
_TEXT_LABELS = {
    "en": ("Formula", "Live demo", "Try it", "Closest"),
    "zh": ("公式", "实时演示", "动手试试", "最接近的"),
    "both": ("Formula / 公式", "Live demo / 实时演示", "Try it / 动手试试", "Closest / 最接近的"),
}
_DATA_URI = re.compile(r"data:([\w.+-]+/[\w.+-]+);base64,[A-Za-z0-9+/=]{40,}")


def short_arguments(arguments: dict) -> str:
    """The arguments as JSON for a text line, with every base64 data URI replaced by a short stand-in (the full
    value stays in the structured try_it.arguments)."""
    text = json.dumps(arguments, ensure_ascii=False)
    return _DATA_URI.sub(
        lambda m: f"data:{m.group(1)};base64,... ({len(m.group(0))} chars, see try_it.arguments)", text
    )


def _summary_text(r: ExplainResult) -> str:
    formula, demo, try_it, closest = _TEXT_LABELS.get(r.language, _TEXT_LABELS["both"])
    if not r.found:
        sugg = ", ".join(f"{s.id} ({_both(s.name)})" for s in r.suggestions)
        return f"{r.message} {closest}: {sugg}."
    lines = [f"{_both(r.name)} [{r.id}]: {_both(r.summary, ' | ')}"]
    if r.formula:
        lines.append(f"{formula}: {r.formula}")
    if r.demo is not None:
        lines.append(f"{demo} `{r.demo.name}`: {_both(r.demo.title)}")
    if r.try_it is not None:
        lines.append(f"{try_it}: {r.try_it.tool}({short_arguments(r.try_it.arguments)})")
    return "\n".join(lines)


def _suggestions(kb, concept: Concept, score: float, ranked: list, language: str) -> list[Suggestion]:
    """On an exact match, the concept's own links (what to read next); on a fuzzy one, the runners-up."""
    if score >= 0.99:
        scores = dict(ranked)
        return [
            Suggestion(score=scores.get(r, 0.0), **_ref(kb, r, language).model_dump())
            for r in concept.related[:3]
        ]
    return [Suggestion(score=s, **_ref(kb, cid, language).model_dump()) for cid, s in ranked[1:4]]


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
        from tools.explain.demos import run_demo  # torch and matplotlib load here, not at start-up

        reporter.check_cancelled()
        fields = [k for k in DemoParams.__dataclass_fields__ if k != "language"]
        params = DemoParams(**{k: getattr(args, k) for k in fields}, language=language)
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
        resource_uri=f"{CONCEPT_URI}{concept.id}",
        suggestions=_suggestions(kb, concept, score, ranked, language),
    )
    images = [InlineImage(png=png, caption=_both(demo_result.title))] if png and demo_result else []
    return ToolOutput(result=result, images=images, summary=_summary_text(result))
