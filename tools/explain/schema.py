"""Arguments and result of explain_concept (pydantic only)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, Field

from tools.common import ToolInput


class DemoText(BaseModel):
    en: str | None = Field(None, description="English text (null when only Chinese was asked for).")
    zh: str | None = Field(
        None, description="Simplified Chinese text (null when only English was asked for)."
    )


class DemoResult(BaseModel):
    name: str = Field(description="Demo name, e.g. relu, softmax, gradient_descent.")
    title: DemoText = Field(description="What the demo computes.")
    parameters: dict[str, Any] = Field(description="The inputs used, defaults filled in.")
    values: dict[str, Any] = Field(description="The numbers torch computed (rounded to 6 decimals).")
    code: str = Field(description="PyTorch code that reproduces the numbers.")
    notes: list[DemoText] = Field(default_factory=list, description="What to notice in the numbers.")
    has_plot: bool = Field(False, description="Whether a picture of the demo is attached inline.")


@dataclass
class DemoParams:
    """The demo knobs of explain_concept's input (see ExplainInput for descriptions and bounds)."""

    demo_input: list[float] | None = None
    demo_target: list[float] | None = None
    target_class: int | None = None
    temperature: float = 1.0
    learning_rate: float | None = None
    steps: int = 20
    start_x: float = 4.0
    dropout_p: float = 0.5
    seed: int = 0
    plot: bool = True
    language: str = "both"  # the answer's language: the picture's titles and labels are in Chinese for "zh"


Language = Literal["auto", "en", "zh", "both"]
LANGUAGES: tuple[str, ...] = get_args(Language)
TOOL_NAMES = (
    "tensorize_image",
    "train_toy_mlp",
    "generate_image",
    "explain_concept",
    "tokenize_text",
    "train_tiny_gpt",
    "sample_text",
    "finetune_gpt",
    "compare_gpt_stages",
)

FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]


class ExplainInput(ToolInput):
    concept: str = Field(
        min_length=1,
        max_length=200,
        description="The concept to explain, by any English or Chinese name or alias, e.g. 'residual connection', "
        "'ReLU', 'lr', '残差连接', '学习率'. Case, spaces and punctuation do not matter; typos are tolerated.",
    )
    language: Language = Field(
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
