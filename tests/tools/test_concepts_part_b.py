"""The second half of the concept knowledge base (architectures, LLMs, tooling, Python).

Every entry must validate against tools.explain.concept_schema.Concept, carry real Chinese text, point
only at concepts that exist, and ship a snippet that runs with torch, numpy and the stdlib alone.
"""

from __future__ import annotations

import json
from pathlib import Path

from tools.explain.concept_schema import Concept

CONCEPTS_DIR = Path(__file__).resolve().parents[2] / "tools" / "data" / "concepts"

PART_B = {
    "part_b_architectures.json": (
        "architectures",
        "cnn convolution pooling rnn gan autoencoder vae latent_space transformer attention embedding unet "
        "clip diffusion sampler_scheduler denoising_strength classifier_free_guidance latent_upscaling lora "
        "fine_tuning",
    ),
    "part_b_llm.json": (
        "llm",
        "token tokenizer pre_training sft rlhf reward_model grpo reasoning_tokens distillation context_window "
        "temperature",
    ),
    "part_b_tooling.json": (
        "tooling",
        "mcp mcp_server mcp_client mcp_protocol sdk api npm npx docker numpy opencv pytorch cuda cudnn tensorrt "
        "conda pip venv environment_variables jupyter",
    ),
    "part_b_python.json": ("python", "class object instance magic_methods inheritance polymorphism"),
}


def _load(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as f:
        data = json.load(f)
    assert isinstance(data, list), f"{path.name} must hold a JSON list"
    return data


def _part_b() -> list[tuple[str, Concept]]:
    present = [name for name in PART_B if (CONCEPTS_DIR / name).exists()]
    return [(name, Concept.model_validate(raw)) for name in present for raw in _load(CONCEPTS_DIR / name)]


PART_B_CONCEPTS = _part_b()


def _all_ids() -> list[str]:
    return [raw["id"] for path in sorted(CONCEPTS_DIR.glob("*.json")) for raw in _load(path)]


def test_part_b_files_hold_exactly_the_assigned_ids_in_their_category():
    for name, (category, ids) in PART_B.items():
        got = [c for file, c in PART_B_CONCEPTS if file == name]
        assert sorted(c.id for c in got) == sorted(ids.split()), name
        assert {c.category for c in got} == {category}, name


def test_every_concept_has_pitfalls_and_a_one_line_summary():
    for _, c in PART_B_CONCEPTS:
        assert 1 <= len(c.pitfalls) <= 3, c.id
        assert "\n" not in c.summary.en and "\n" not in c.summary.zh, c.id
        assert c.related, c.id


def test_every_name_and_alias_finds_its_own_concept():
    # an exact key is what rank() answers with score 1.0; a key another concept claimed first would be lost
    from tools.explain import load_kb, normalize

    exact = load_kb().exact
    for _, c in PART_B_CONCEPTS:
        for name in [c.id, c.names.en, c.names.zh, *c.aliases_en, *c.aliases_zh]:
            assert exact.get(normalize(name)) == c.id, (c.id, name, exact.get(normalize(name)))
