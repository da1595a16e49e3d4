"""MCP registration of explain_concept, the concept resources, the explain-with-demo prompt and completion.

The work, the search and the completion ranking are in tools/explain/; this module only maps them.
"""

from __future__ import annotations

import json
from typing import Annotated

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.prompts.base import UserMessage
from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_PARAMS, Completion, PromptReference, ResourceTemplateReference
from pydantic import Field

from mcp_server.adapter import READ_ONLY, register_tool, resource_errors
from tools import explain
from tools.config import LabConfig
from tools.paths import CONCEPT_INDEX_URI, CONCEPT_URI

CONCEPT_TEMPLATE = CONCEPT_URI + "{id}"
PROMPT_NAME = "explain_with_demo"

DESCRIPTION = """\
Explain a deep-learning, LLM, tooling or Python concept for a beginner, in English and/or Simplified Chinese,
from this server's curated knowledge base of 100+ concepts (tensor, HWC/CHW, normalization, dataloader, ReLU,
softmax, backpropagation, cross-entropy, learning rate, overfitting, dropout, Adam, residual connection,
vanishing gradients, batch/layer norm, CNN, Transformer, attention, diffusion, LoRA, tokenizer, RLHF, MCP,
CUDA, venv, magic methods, ...).

`concept` accepts any English or Chinese name or alias, ignoring case, spaces and punctuation, and tolerates
typos ('relu activation', 'lr', 'Residual-Connection', '残差', '学习率'). Unknown queries return found=false
with the closest concept ids: call again with one of them. `language`: en | zh | both (default: the script
of the query). `detail`: summary | full (default full).

A full answer has: summary, explanation, everyday analogy, LaTeX formula, a runnable PyTorch snippet,
pitfalls, related concept ids, and `try_it`: a ready call of another tool of this server that shows the
concept (tensorize_image, train_toy_mlp, generate_image). Many concepts also compute a live demo with torch
at call time, numbers in `demo.values` and a small plot: activations with their autograd derivatives,
softmax with `temperature`, MSE, cross-entropy (`target_class`), gradient descent on x² with
`learning_rate` (above 1 it diverges), the chain rule, normalization of pixel values, a 3x3 convolution,
dropout (`dropout_p`, `seed`), batch vs layer norm, and the gradient reaching the input of
deep plain vs residual stacks (vanishing / exploding gradients). `demo_input` supplies your own numbers to the demo.
Read-only: writes no files.
"""

PROMPT_TEXT = """\
Teach me the concept "{query}" with a live demonstration{lang_line}.

1. Call the tool `explain_concept` with {explain_args}.
2. Explain it in plain words for a beginner, using the explanation and the everyday analogy. Show the formula
   (LaTeX) if there is one and say what each symbol means.
3. If the result has a live `demo`, walk through its numbers and picture and say what to notice.
4. Then run the hands-on experiment: call `{tool}` with {tool_args}, and explain what the result shows
   ({look_for}).
5. Finish with the common pitfalls and suggest two related concepts to explore next.
"""

PROMPT_TEXT_UNKNOWN = """\
I want to learn about "{query}"{lang_line}. Call the tool `explain_concept` with concept="{query}".
It may not find an exact match: if it returns found=false, pick the most likely of its suggestions
({suggestions}), call explain_concept again with that id, explain it for a beginner with its analogy and
live demo, and then run its `try_it` call and explain what the result shows.
"""

LANG_LINES = {
    "en": ", in English",
    "zh": ", in Simplified Chinese (简体中文)",
    "both": ", in English and Chinese",
}


def register(mcp: MCPServer, cfg: LabConfig) -> None:
    register_tool(
        mcp,
        cfg,
        name="explain_concept",
        title="Explain a concept (EN/中文) with a live demo",
        description=DESCRIPTION,
        input_model=explain.ExplainInput,
        result_model=explain.ExplainResult,
        run=explain.run,
        annotations=READ_ONLY,
    )

    @mcp.resource(
        CONCEPT_TEMPLATE,
        name="concept",
        title="A concept, in English and Chinese",
        description="One concept of the knowledge base as markdown in both languages: summary, explanation, "
        f"analogy, pitfalls, formula, code, related concepts and a try-it call. Ids: see {CONCEPT_INDEX_URI}.",
        mime_type="text/markdown",
    )
    def read_concept(id: str) -> str:
        with resource_errors():
            return explain.concept_markdown(explain.concept_by_id(id), "both")

    @mcp.resource(
        CONCEPT_INDEX_URI,
        name="concept_index",
        title="Index of all concepts",
        description="Every concept id with its English and Chinese name and a one-line summary, by category.",
        mime_type="text/markdown",
    )
    def read_index() -> str:
        return explain.index_markdown()

    @mcp.prompt(
        name=PROMPT_NAME,
        title="Explain a concept with a live demo",
        description="Explain a deep-learning concept for a beginner: explain_concept (with its live torch demo), "
        "then the hands-on try-it call of this server's tools. language: en, zh or both (default: the script "
        "of the concept name).",
    )
    def explain_with_demo(
        concept: Annotated[
            str,
            Field(
                description="The concept to learn, by any English or Chinese name or alias, e.g. 'ReLU', '残差连接'."
            ),
        ],
        language: Annotated[
            str,
            Field(description="en, zh (Simplified Chinese), both, or auto (the script of the concept name)."),
        ] = "auto",
    ) -> list[UserMessage]:
        if language not in explain.LANGUAGES:  # MCPError: the SDK hides other exceptions' text
            allowed = ", ".join(explain.LANGUAGES)
            raise MCPError(INVALID_PARAMS, f"Invalid `language` = {language!r}: must be one of {allowed}")
        lang = explain.resolve_language(concept, language)
        found, _, ranked = explain.lookup(concept)
        if found is None:
            suggestions = ", ".join(cid for cid, _ in ranked[:5])
            text = PROMPT_TEXT_UNKNOWN.format(
                query=concept, lang_line=LANG_LINES[lang], suggestions=suggestions
            )
            return [UserMessage(text)]
        args = {"concept": found.id, "language": lang}
        t = found.try_it
        text = PROMPT_TEXT.format(
            query=concept,
            lang_line=LANG_LINES[lang],
            explain_args=json.dumps(args, ensure_ascii=False),
            tool=t.tool if t else "explain_concept",
            tool_args=json.dumps(t.arguments if t else args, ensure_ascii=False),
            look_for=(t.what_to_look_for.zh if lang == "zh" else t.what_to_look_for.en) if t else "the demo",
        )
        return [UserMessage(text)]

    @mcp.completion()
    async def complete(ref, argument, context) -> Completion | None:
        values = None
        if (
            isinstance(ref, ResourceTemplateReference)
            and ref.uri == CONCEPT_TEMPLATE
            and argument.name == "id"
        ):
            values = explain.complete_concepts(argument.value, ids_only=True)
        elif isinstance(ref, PromptReference) and ref.name == PROMPT_NAME:
            if argument.name == "concept":
                values = explain.complete_concepts(argument.value, ids_only=False)
            elif argument.name == "language":
                values = explain.complete_languages(argument.value)
        if values is None:
            return None
        cap = explain.MAX_COMPLETIONS
        return Completion(values=values[:cap], total=len(values), has_more=len(values) > cap)
