"""The second half of the concept knowledge base (architectures, LLMs, tooling, Python).

Every entry must validate against tools.concept_schema.Concept, carry real Chinese text, point
only at concepts that exist, and ship a snippet that runs with torch, numpy and the stdlib alone.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tools.concept_schema import Concept

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

TOOLS = {"tensorize_image", "train_toy_mlp", "generate_image", "explain_concept"}
ALLOWED_IMPORTS = {"torch", "numpy"} | set(sys.stdlib_module_names)
CJK = re.compile(r"[\u4e00-\u9fff]")
SNIPPET_TIMEOUT_S = 20


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


def test_concept_ids_are_unique_across_every_concept_file():
    ids = _all_ids()
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    assert duplicates == []


def test_related_ids_point_at_concepts_that_exist():
    known = set(_all_ids())
    dangling = {c.id: sorted(set(c.related) - known) for _, c in PART_B_CONCEPTS if set(c.related) - known}
    assert dangling == {}


def test_related_ids_never_point_at_the_concept_itself():
    assert [c.id for _, c in PART_B_CONCEPTS if c.id in c.related] == []


def test_chinese_fields_are_written_in_chinese():
    for _, c in PART_B_CONCEPTS:
        # names.zh may stay in Latin letters: Chinese writers say "Transformer", "CLIP", "U-Net" as is
        texts = [c.summary.zh, c.explanation.zh, c.analogy.zh, *(p.zh for p in c.pitfalls)]
        if c.try_it:
            texts.append(c.try_it.what_to_look_for.zh)
        assert all(CJK.search(t) for t in texts), c.id
        assert all(CJK.search(a) or a.isascii() for a in c.aliases_zh), c.id


def test_every_concept_has_pitfalls_and_a_one_line_summary():
    for _, c in PART_B_CONCEPTS:
        assert 1 <= len(c.pitfalls) <= 3, c.id
        assert "\n" not in c.summary.en and "\n" not in c.summary.zh, c.id
        assert c.related, c.id


def test_try_it_calls_a_tool_this_server_has():
    for _, c in PART_B_CONCEPTS:
        if c.try_it is not None:
            assert c.try_it.tool in TOOLS, c.id
            assert c.try_it.arguments, c.id


def test_try_it_arguments_are_accepted_by_the_tool_input_models():
    from tools.explain import ExplainInput
    from tools.tensorize import TensorizeInput
    from tools.toy_mlp.schema import TrainToyMlpInput

    models = {
        "explain_concept": ExplainInput,
        "tensorize_image": TensorizeInput,
        "train_toy_mlp": TrainToyMlpInput,
    }
    for _, c in PART_B_CONCEPTS:
        if c.try_it is not None and c.try_it.tool in models:
            models[c.try_it.tool].model_validate(c.try_it.arguments)
            for variant in c.try_it.arguments.get("variants") or []:
                models[c.try_it.tool].model_validate({**c.try_it.arguments, "variants": None, **variant})


def test_generate_image_try_its_use_only_its_documented_arguments():
    documented = {
        "prompt",
        "negative_prompt",
        "model",
        "steps",
        "guidance_scale",
        "seed",
        "width",
        "height",
        "scheduler",
        "num_images",
        "init_image",
        "strength",
        "show_steps",
    }
    for _, c in PART_B_CONCEPTS:
        if c.try_it is not None and c.try_it.tool == "generate_image":
            assert set(c.try_it.arguments) <= documented, c.id
            assert c.try_it.arguments["prompt"], c.id


def test_explain_concept_try_its_name_a_concept_the_lookup_finds():
    from tools.explain import FOUND_THRESHOLD, rank

    for _, c in PART_B_CONCEPTS:
        if c.try_it is not None and c.try_it.tool == "explain_concept":
            (best, score), *_ = rank(c.try_it.arguments["concept"])
            assert score >= FOUND_THRESHOLD, (c.id, best, score)
            # pointing at itself only makes sense to show its live demo
            assert best != c.id or c.demo is not None, c.id


def test_every_name_and_alias_finds_its_own_concept():
    # an exact key is what rank() answers with score 1.0; a key another concept claimed first would be lost
    from tools.explain import load_kb, normalize

    exact = load_kb().exact
    for _, c in PART_B_CONCEPTS:
        for name in [c.id, c.names.en, c.names.zh, *c.aliases_en, *c.aliases_zh]:
            assert exact.get(normalize(name)) == c.id, (c.id, name, exact.get(normalize(name)))


def test_demos_name_a_live_demo_of_explain_concept():
    from tools.demos import DEMOS

    assert {c.id: c.demo for _, c in PART_B_CONCEPTS if c.demo is not None and c.demo not in DEMOS} == {}
    assert {c.id: c.demo for _, c in PART_B_CONCEPTS if c.demo} == {
        "cnn": "convolution",
        "convolution": "convolution",
        "temperature": "softmax",
    }


def test_formulas_have_balanced_braces():
    for _, c in PART_B_CONCEPTS:
        if c.formula is not None:
            depth = 0
            for ch in c.formula.replace(r"\{", "").replace(r"\}", ""):
                depth += {"{": 1, "}": -1}.get(ch, 0)
                assert depth >= 0, c.id
            assert depth == 0, c.id


def test_snippets_import_only_torch_numpy_and_the_standard_library():
    for _, c in PART_B_CONCEPTS:
        modules = set()
        for node in ast.walk(ast.parse(c.snippet)):
            if isinstance(node, ast.Import):
                modules |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                modules.add(node.module.split(".")[0])
        assert modules <= ALLOWED_IMPORTS, (c.id, modules - ALLOWED_IMPORTS)


# One child process runs every snippet, each in a fresh namespace under its own alarm: a single
# torch import instead of one per snippet keeps this test at seconds on a 2-core machine.
_RUNNER = textwrap.dedent(
    """
    import contextlib, io, json, signal, sys, traceback

    def _timeout(signum, frame):
        raise TimeoutError("snippet ran past {timeout} s")

    signal.signal(signal.SIGALRM, _timeout)
    results = {{}}
    for cid, code in json.load(sys.stdin).items():
        out = io.StringIO()
        signal.alarm({timeout})
        try:
            with contextlib.redirect_stdout(out):
                exec(compile(code, cid, "exec"), {{"__name__": "__main__"}})
            results[cid] = {{"ok": True, "stdout": out.getvalue()}}
        except BaseException:
            results[cid] = {{"ok": False, "stdout": out.getvalue(), "error": traceback.format_exc()}}
        finally:
            signal.alarm(0)
    sys.__stdout__.write(json.dumps(results))
    """
).format(timeout=SNIPPET_TIMEOUT_S)


@pytest.fixture(scope="module")
def snippet_results() -> dict:
    snippets = {c.id: c.snippet for _, c in PART_B_CONCEPTS}
    proc = subprocess.run(
        [sys.executable, "-c", _RUNNER],
        input=json.dumps(snippets),
        capture_output=True,
        text=True,
        timeout=SNIPPET_TIMEOUT_S * 6,
        # one thread: tiny tensors gain nothing from more, and a loaded CI machine loses a lot
        env={**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


@pytest.mark.skipif(sys.platform == "win32", reason="the runner times snippets out with SIGALRM")
@pytest.mark.parametrize("concept_id", [c.id for _, c in PART_B_CONCEPTS])
def test_snippet_runs_and_prints_something(snippet_results, concept_id):
    result = snippet_results[concept_id]
    assert result["ok"], result.get("error")
    assert result["stdout"].strip(), f"{concept_id}: the snippet printed nothing"
