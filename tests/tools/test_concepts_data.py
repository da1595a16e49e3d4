"""The whole concept knowledge base (both parts): schema, coverage, links, try-it calls, demos and snippets.

Every snippet of every concept runs here in one child process (one torch import), each in a fresh
namespace under its own alarm, and must print something.
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

from tools.explain import TOOL_NAMES, load_kb, normalize
from tools.explain.concept_schema import Concept
from tools.explain.demos import DEMOS

CONCEPTS_DIR = Path(__file__).resolve().parents[2] / "tools" / "data" / "concepts"
CJK = re.compile(r"[\u4e00-\u9fff]")
ALLOWED_IMPORTS = {"torch", "numpy"} | set(sys.stdlib_module_names)
SNIPPET_TIMEOUT_S = 20

PART_A = {
    "tensors_images": "tensor hwc_chw normalization channels",
    "data": "dataset getitem_len dataloader batch",
    "basics": "neuron weight bias linear_layer activation_function relu sigmoid tanh gelu softmax "
    "forward_propagation backpropagation loss_function mse cross_entropy gradient partial_derivative "
    "gradient_descent learning_rate epoch batch_size convergence overfitting underfitting regularization "
    "dropout initialization normal_distribution sgd momentum adam",
    "deep_networks": "network_degradation residual_connection vanishing_gradient exploding_gradient batch_norm "
    "layer_norm",
}
CATEGORIES = {
    "tensors_images",
    "data",
    "basics",
    "deep_networks",
    "architectures",
    "llm",
    "tooling",
    "python",
}


def _raw() -> list[tuple[str, dict]]:
    out = []
    for path in sorted(CONCEPTS_DIR.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        assert isinstance(data, list), f"{path.name} must hold a JSON list of concepts"
        out += [(path.name, item) for item in data]
    return out


RAW = _raw()
CONCEPTS = [Concept.model_validate(item) for _, item in RAW]
BY_ID = {c.id: c for c in CONCEPTS}


def test_every_file_validates_against_the_schema_and_ids_are_unique():
    ids = [c.id for c in CONCEPTS]
    assert sorted({i for i in ids if ids.count(i) > 1}) == []
    assert {c.category for c in CONCEPTS} <= CATEGORIES


def test_the_knowledge_base_has_at_least_100_concepts():
    assert len(CONCEPTS) >= 100, f"only {len(CONCEPTS)} concepts"


def test_the_loader_reads_the_same_concepts_as_package_data():
    assert sorted(load_kb().concepts) == sorted(BY_ID)


def test_part_a_covers_its_assigned_ids_in_their_categories():
    for category, ids in PART_A.items():
        for cid in ids.split():
            assert cid in BY_ID, cid
            assert BY_ID[cid].category == category, cid


def test_ids_md_lists_every_concept():
    listed = set(re.findall(r"[a-z0-9_]+", (CONCEPTS_DIR / "IDS.md").read_text(encoding="utf-8")))
    assert sorted(set(BY_ID) - listed) == []


def test_related_ids_exist_and_never_point_at_the_concept_itself():
    dangling = {c.id: sorted(set(c.related) - set(BY_ID)) for c in CONCEPTS if set(c.related) - set(BY_ID)}
    assert dangling == {}
    assert [c.id for c in CONCEPTS if c.id in c.related] == []


def test_no_name_or_alias_is_shared_by_two_concepts():
    owner: dict[str, set[str]] = {}
    for c in CONCEPTS:
        for name in [c.id, c.names.en, c.names.zh, *c.aliases_en, *c.aliases_zh]:
            owner.setdefault(normalize(name), set()).add(c.id)
    assert {k: sorted(v) for k, v in owner.items() if len(v) > 1} == {}


def test_chinese_texts_are_written_in_chinese_and_english_texts_in_english():
    for c in CONCEPTS:
        zh = [c.summary.zh, c.explanation.zh, c.analogy.zh, *(p.zh for p in c.pitfalls)]
        en = [c.summary.en, c.explanation.en, c.analogy.en, *(p.en for p in c.pitfalls)]
        if c.try_it:
            zh.append(c.try_it.what_to_look_for.zh)
            en.append(c.try_it.what_to_look_for.en)
        assert all(CJK.search(t) for t in zh), c.id
        assert not any(CJK.search(t) for t in en), c.id


def test_every_concept_has_the_teaching_parts():
    for c in CONCEPTS:
        assert "\n" not in c.summary.en and "\n" not in c.summary.zh, c.id
        assert len(c.explanation.en) >= 150 and len(c.explanation.zh) >= 60, c.id
        assert c.pitfalls and c.related, c.id


def test_demos_name_a_live_demo_of_explain_concept():
    assert {c.id: c.demo for c in CONCEPTS if c.demo is not None and c.demo not in DEMOS} == {}


def test_the_demos_the_issue_asks_for_are_attached():
    for cid, name in [
        ("relu", "relu"),
        ("sigmoid", "sigmoid"),
        ("tanh", "tanh"),
        ("gelu", "gelu"),
        ("activation_function", "activations"),
        ("softmax", "softmax"),
        ("mse", "mse"),
        ("cross_entropy", "cross_entropy"),
        ("gradient_descent", "gradient_descent"),
        ("normalization", "normalization"),
        ("dropout", "dropout"),
        ("batch_norm", "norm_compare"),
        ("layer_norm", "norm_compare"),
        ("backpropagation", "chain_rule"),
        ("vanishing_gradient", "depth_gradient"),
        ("exploding_gradient", "depth_gradient"),
        ("residual_connection", "depth_gradient"),
    ]:
        assert BY_ID[cid].demo == name, cid


def _input_models() -> dict:
    from tools.explain import ExplainInput

    models = {"explain_concept": ExplainInput}
    try:
        from tools.tensorize import TensorizeInput

        models["tensorize_image"] = TensorizeInput
    except ImportError:
        pass
    try:
        from tools.toy_mlp.schema import TrainToyMlpInput

        models["train_toy_mlp"] = TrainToyMlpInput
    except ImportError:
        pass
    try:
        from tools.generate import GenerateInput

        models["generate_image"] = GenerateInput
    except ImportError:
        pass
    from tools.sample_text.schema import SampleTextInput
    from tools.tiny_gpt.schema import TrainTinyGptInput
    from tools.tokenize_text.schema import TokenizeTextInput

    models |= {
        "tokenize_text": TokenizeTextInput,
        "train_tiny_gpt": TrainTinyGptInput,
        "sample_text": SampleTextInput,
    }
    from tools.align import CompareGptStagesInput, FinetuneGptInput

    models["finetune_gpt"] = FinetuneGptInput
    models["compare_gpt_stages"] = CompareGptStagesInput
    return models


def test_try_it_calls_are_accepted_by_the_tools_input_models():
    models = _input_models()
    for c in CONCEPTS:
        t = c.try_it
        if t is None:
            continue
        assert t.tool in TOOL_NAMES and t.arguments, c.id
        model = models.get(t.tool)
        if model is None:
            continue
        assert set(t.arguments) <= set(model.model_fields), (c.id, set(t.arguments) - set(model.model_fields))
        model.model_validate(t.arguments)
        for variant in t.arguments.get("variants") or []:
            model.model_validate({**t.arguments, "variants": None, **variant})


def test_train_try_its_with_variants_still_train_the_settings_they_name():
    # train_toy_mlp trains only the variants when there are some: a top-level setting that every variant
    # overrides would never run, and "compare sigmoid with ReLU" would silently train ReLU alone
    for c in CONCEPTS:
        t = c.try_it
        if t is None or t.tool != "train_toy_mlp" or not t.arguments.get("variants"):
            continue
        variants = t.arguments["variants"]
        for key, value in t.arguments.items():
            if key != "variants":
                assert any(v.get(key, value) == value for v in variants), (c.id, key)


def test_generate_image_try_its_use_its_documented_arguments():
    documented = {"prompt", "negative_prompt", "model", "steps", "guidance_scale", "seed", "width", "height",
                  "scheduler", "num_images", "init_image", "strength", "show_steps"}  # fmt: skip
    for c in CONCEPTS:
        if c.try_it is not None and c.try_it.tool == "generate_image":
            assert set(c.try_it.arguments) <= documented and c.try_it.arguments.get("prompt"), c.id


def test_explain_concept_try_its_name_a_concept_the_lookup_finds():
    from tools.explain import lookup

    for c in CONCEPTS:
        if c.try_it is not None and c.try_it.tool == "explain_concept":
            found, _, _ = lookup(c.try_it.arguments["concept"])
            assert found is not None, c.id


def test_formulas_have_balanced_braces():
    for c in CONCEPTS:
        if c.formula:
            depth = 0
            for ch in c.formula.replace(r"\{", "").replace(r"\}", ""):
                depth += {"{": 1, "}": -1}.get(ch, 0)
                assert depth >= 0, c.id
            assert depth == 0, c.id


def test_snippets_import_only_torch_numpy_and_the_standard_library():
    for c in CONCEPTS:
        modules = set()
        for node in ast.walk(ast.parse(c.snippet)):
            if isinstance(node, ast.Import):
                modules |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                modules.add(node.module.split(".")[0])
        assert modules <= ALLOWED_IMPORTS, (c.id, modules - ALLOWED_IMPORTS)


_RUNNER = textwrap.dedent(
    """
    import contextlib, io, json, signal, sys, time, traceback

    def _timeout(signum, frame):
        raise TimeoutError("snippet ran past {timeout} s")

    signal.signal(signal.SIGALRM, _timeout)
    results = {{}}
    for cid, code in json.load(sys.stdin).items():
        out = io.StringIO()
        start = time.perf_counter()
        signal.alarm({timeout})
        try:
            with contextlib.redirect_stdout(out):
                exec(compile(code, cid, "exec"), {{"__name__": "__main__"}})
            results[cid] = {{"ok": True, "stdout": out.getvalue()}}
        except BaseException:
            results[cid] = {{"ok": False, "stdout": out.getvalue(), "error": traceback.format_exc()}}
        finally:
            signal.alarm(0)
            results[cid]["seconds"] = time.perf_counter() - start
    sys.__stdout__.write(json.dumps(results))
    """
).format(timeout=SNIPPET_TIMEOUT_S)


@pytest.fixture(scope="module")
def snippet_results() -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", _RUNNER],
        input=json.dumps({c.id: c.snippet for c in CONCEPTS}),
        capture_output=True,
        text=True,
        timeout=SNIPPET_TIMEOUT_S * 10,
        env={**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


@pytest.mark.skipif(sys.platform == "win32", reason="the runner times snippets out with SIGALRM")
@pytest.mark.parametrize("concept_id", [c.id for c in CONCEPTS])
def test_snippet_runs_and_prints_something(snippet_results, concept_id):
    result = snippet_results[concept_id]
    assert result["ok"], result.get("error")
    assert result["stdout"].strip(), f"{concept_id}: the snippet printed nothing"
