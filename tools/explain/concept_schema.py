"""The schema of the concept knowledge base (tools/data/concepts/*.json), validated in tests."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

ID_RE = re.compile(r"^[a-z0-9]+(_[a-z0-9]+)*$")


class Bilingual(BaseModel):
    model_config = ConfigDict(extra="forbid")
    en: str = Field(min_length=1, description="English text.")
    zh: str = Field(min_length=1, description="Simplified Chinese text.")


class TryIt(BaseModel):
    """A call of this server's tools that shows the concept."""

    model_config = ConfigDict(extra="forbid")
    tool: str = Field(
        description="tensorize_image | train_toy_mlp | generate_image | explain_concept | tokenize_text | "
        "train_tiny_gpt | sample_text"
    )
    arguments: dict = Field(default_factory=dict, description="The arguments of the call.")
    what_to_look_for: Bilingual


class Concept(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="snake_case id, e.g. residual_connection")
    category: str = Field(
        description="tensors_images | data | basics | deep_networks | architectures | llm | tooling | python"
    )
    names: Bilingual = Field(description="Main name in each language.")
    aliases_en: list[str] = Field(default_factory=list, description="Other English names and abbreviations.")
    aliases_zh: list[str] = Field(default_factory=list, description="Other Chinese names.")
    summary: Bilingual = Field(description="One line.")
    explanation: Bilingual = Field(description="Beginner-level explanation, a short paragraph or two.")
    analogy: Bilingual = Field(description="An everyday analogy.")
    formula: str | None = Field(None, description="LaTeX, where one exists.")
    snippet: str = Field(description="A short runnable Python snippet (torch/numpy/stdlib only).")
    related: list[str] = Field(default_factory=list, description="Ids of related concepts.")
    pitfalls: list[Bilingual] = Field(default_factory=list, description="Common mistakes.")
    try_it: TryIt | None = Field(None, description="A call of this server's tools that shows it.")
    demo: str | None = Field(None, description="Name of a live demo computed by explain_concept, if any.")

    @field_validator("id")
    @classmethod
    def _id_format(cls, v: str) -> str:
        if not ID_RE.match(v):
            raise ValueError(f"concept id {v!r} must be snake_case ascii")
        return v
