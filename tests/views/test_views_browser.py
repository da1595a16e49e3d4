"""The views in a real headless Chromium against the real server over HTTP, through /lab (our own host).

Each view: loads, renders the tool's result (the screenshot shows the boundary), a control change sends a tool
call that reaches the server and updates the view, it paints within 300 ms of the result arriving, and no
request leaves the page except to its server (all others are refused and recorded; DNS is cut as well).
"""

from __future__ import annotations

import io
import json
import urllib.parse
from pathlib import Path

import numpy as np
import pytest
from browser_support import LabServer, screenshot_dir
from PIL import Image

from mcp_server import apps

pytestmark = pytest.mark.browser

RENDER_BUDGET_MS = 300
ORANGE, BLUE = (245, 147, 34), (8, 119, 189)


def lab_url(origin: str, tool: str, args: dict, token: str | None = None) -> str:
    fragment = {"tool": tool, "run": "1", "args": json.dumps(args)}
    if token:
        fragment["token"] = token
    return f"{origin}/lab#{urllib.parse.urlencode(fragment)}"


def near(pixel, colour, tol=40) -> bool:
    return all(abs(a - b) <= tol for a, b in zip(pixel[:3], colour, strict=True))


def share_near(png: bytes, colour, tol: int = 40) -> float:
    im = Image.open(io.BytesIO(png)).convert("RGB").resize((200, 200))
    pixels = list(im.getdata())
    return sum(near(p, colour, tol) for p in pixels) / len(pixels)


def saved_runs(output_dir: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((output_dir / "runs").glob("*.json"))]


def test_playground_renders_the_boundary_and_retrains_when_a_control_changes(
    lab_server, page_factory, tmp_path
):
    from playwright.sync_api import expect

    p = page_factory(lab_server.origin)
    before = len(saved_runs(lab_server.output_dir)) if (lab_server.output_dir / "runs").exists() else 0
    p.page.goto(
        lab_url(lab_server.origin, "train_toy_mlp", {"dataset": "xor", "epochs": 60, "n_samples": 200})
    )
    expect(p.page.locator("#status")).to_have_text("train_toy_mlp done", timeout=60_000)
    view = p.page.frame_locator("#view iframe")
    body = view.locator("body")
    expect(body).to_have_attribute("data-frame", "last", timeout=10_000)  # the animation reached the end

    # 1. rendered: the boundary canvas shows both classes' colours, the caption the run's accuracy
    boundary = view.locator("#boundary-0").screenshot()
    assert share_near(boundary, ORANGE) > 0.1 and share_near(boundary, BLUE) > 0.1
    expect(view.locator("figcaption").first).to_contain_text("test accuracy")
    render_ms = float(body.get_attribute("data-render-ms"))
    assert render_ms < RENDER_BUDGET_MS

    # 2. a control change re-runs the tool through the host and the server, and the view shows the new run
    view.locator("#activation").select_option("relu")
    expect(body).to_have_attribute("data-renders", "2", timeout=60_000)
    expect(view.locator("figcaption").first).to_contain_text("relu")
    runs = saved_runs(lab_server.output_dir)
    assert len(runs) == before + 2 and runs[-1]["arguments"]["activation"] == "relu"
    assert runs[-1]["arguments"]["dataset"] == "xor"  # the other arguments of the first call are kept

    # 3. "compare with previous": both settings side by side, from one call with two variants
    view.locator("#compare").check()
    view.locator("#learning_rate").select_option("0.1")
    expect(body).to_have_attribute("data-renders", "3", timeout=60_000)
    expect(view.locator("figure.run")).to_have_count(2)
    assert [v["name"] for v in saved_runs(lab_server.output_dir)[-1]["arguments"]["variants"]] == [
        "before",
        "now",
    ]
    second_render_ms = float(body.get_attribute("data-render-ms"))
    assert second_render_ms < RENDER_BUDGET_MS
    expect(body).to_have_attribute("data-frame", "last", timeout=10_000)
    p.page.locator("#view iframe").screenshot(path=str(screenshot_dir(tmp_path) / "view-playground.png"))

    # 4. nothing left the page but requests to its own server
    assert p.foreign == [] and p.errors == []
    assert all(u.startswith(lab_server.origin) for u in p.requests)
    print(f"\nplayground: first render {render_ms:.1f} ms, two-run render {second_render_ms:.1f} ms")


def test_playground_shows_a_refusal_from_the_server_without_breaking(lab_server, page_factory):
    from playwright.sync_api import expect

    p = page_factory(lab_server.origin)
    p.page.goto(
        lab_url(lab_server.origin, "train_toy_mlp", {"dataset": "circle", "epochs": 20, "n_samples": 100})
    )
    view = p.page.frame_locator("#view iframe")
    expect(view.locator("body")).to_have_attribute("data-frame", "last", timeout=60_000)
    view.locator("#hidden_layers").fill("8, 8")
    view.locator("#epochs").select_option("1000")
    # n_samples 100 at ratio 0.5 is 50 training points x 1000 epochs: under the cap, so it trains
    expect(view.locator("body")).to_have_attribute("data-renders", "2", timeout=60_000)
    view.locator("#hidden_layers").fill("8, 99")
    view.locator("#hidden_layers").dispatch_event("change")
    expect(view.locator("#status")).to_contain_text("1 to 64")  # refused in the view, no call made
    assert p.foreign == [] and p.errors == []


def test_lab_connects_only_with_the_servers_token(tmp_path, page_factory):
    from playwright.sync_api import expect

    token = "views-test-token-0123456789"
    server = LabServer(tmp_path, "--auth-token", token)
    try:
        p = page_factory(server.origin)
        p.page.goto(f"{server.origin}/lab")
        expect(p.page.locator("#status")).to_contain_text("cannot connect", timeout=30_000)
        p.page.goto(f"{server.origin}/lab#token={token}")
        p.page.reload()
        expect(p.page.locator("#status")).to_contain_text("connected", timeout=30_000)
        assert p.page.locator("#tool option").count() == sum(len(v.tools) for v in apps.VIEWS)
        assert p.foreign == []
        # the token travels in the Authorization header, never in a URL the server sees
        assert not any(token in u.split("#")[0] for u in p.requests)
    finally:
        server.stop()


def test_diffusion_view_steps_through_denoising_and_reruns_with_another_seed(
    lab_server, page_factory, tmp_path
):
    from playwright.sync_api import expect

    p = page_factory(lab_server.origin)
    args = {"prompt": "a red circle on a blue background", "steps": 4, "show_steps": True}
    p.page.goto(lab_url(lab_server.origin, "generate_image", args))
    view = p.page.frame_locator("#view iframe")
    body = view.locator("body")
    expect(body).to_have_attribute("data-renders", "1", timeout=300_000)  # the first call loads the pipeline
    render_ms = float(body.get_attribute("data-render-ms"))
    assert render_ms < RENDER_BUDGET_MS
    expect(view.locator(".token")).to_have_count(
        9
    )  # <|startoftext|> a red circle on a blue background <|endoftext|>
    expect(view.locator(".token").nth(2)).to_have_text("red·")
    final = view.locator("#picture").screenshot()
    assert share_near(final, (200, 40, 40), tol=70) > 0.02  # some red
    p.page.locator("#view iframe").screenshot(path=str(screenshot_dir(tmp_path) / "view-diffusion.png"))

    # the slider shows the model's prediction at an early step: another picture than the final one
    view.locator("#step").fill("0")
    expect(body).to_have_attribute("data-step", "0")
    expect(view.locator("#step-label")).to_contain_text("step 1 of 4")
    assert view.locator("#picture").screenshot() != final

    # another seed: a tool call through the host that reaches the server, and a new picture
    view.locator("#seed-next").click()
    expect(body).to_have_attribute("data-renders", "2", timeout=120_000)
    expect(view.locator("#facts")).to_contain_text("seed 1")
    assert p.foreign == [] and p.errors == []
    print(f"\ndiffusion: first render {render_ms:.1f} ms")


def test_tensor_view_reads_values_under_the_pointer_and_reruns_with_another_layout(
    lab_server, page_factory, tmp_path
):
    from playwright.sync_api import expect

    # a 40 x 30 picture whose levels are known: R = 6 x column, G = 8 x row, B = 200
    a = np.zeros((30, 40, 3), np.uint8)
    a[..., 0] = np.arange(40)[None, :] * 6
    a[..., 1] = np.arange(30)[:, None] * 8
    a[..., 2] = 200
    path = lab_server.images / "gradient.png"
    Image.fromarray(a).save(path)

    p = page_factory(lab_server.origin)
    p.page.goto(lab_url(lab_server.origin, "tensorize_image", {"image": str(path), "normalize": "unit"}))
    view = p.page.frame_locator("#view iframe")
    body = view.locator("body")
    expect(body).to_have_attribute("data-renders", "1", timeout=60_000)
    render_ms = float(body.get_attribute("data-render-ms"))
    assert render_ms < RENDER_BUDGET_MS
    expect(view.locator("#shape")).to_contain_text("tensor [3,30,40] float32 (CHW)")
    image = view.locator("#image").screenshot()
    shot = Image.open(io.BytesIO(image)).convert("RGB")
    assert near(shot.getpixel((4, 4)), (0, 0, 200), 4)  # the image itself, drawn pixel for pixel
    assert near(shot.getpixel((shot.width - 5, shot.height - 5)), (234, 232, 200), 4)

    # under the pointer: row 5, column 10 -> R level 60 = 0.2353 as x/255, at x[0, 5, 10], offset 0*30*40 + 5*40 + 10
    view.locator("#image").hover(position={"x": 10 * 7.2 + 3, "y": 5 * 7.2 + 3})
    expect(body).to_have_attribute("data-pixel", "5,10")
    rows = view.locator("#readout tr")
    expect(rows.nth(1)).to_have_text("R600.2353x[0, 5, 10]0·30·40 + 5·40 + 10 = 210")
    expect(rows.nth(2)).to_contain_text("G40" + f"{40 / 255:.4f}")
    p.page.locator("#view iframe").screenshot(path=str(screenshot_dir(tmp_path) / "view-tensor.png"))

    # the layout control re-runs the tool: HWC, and the index arithmetic follows
    view.locator("#layout").select_option("HWC")
    expect(body).to_have_attribute("data-renders", "2", timeout=60_000)
    expect(view.locator("#shape")).to_contain_text("tensor [30,40,3] float32 (HWC)")
    view.locator("#image").hover(position={"x": 10 * 7.2 + 3, "y": 5 * 7.2 + 3})
    expect(rows.nth(1)).to_have_text("R600.2353x[5, 10, 0](5·40 + 10)·3 + 0 = 630")
    assert p.foreign == [] and p.errors == []
    print(f"\ntensor: first render {render_ms:.1f} ms")


# ---- the language view (train_tiny_gpt, sample_text)

# a tiny GPT that trains in seconds: 2 layers x 2 heads x 32 wide, context 16, 200 steps (val 2.05 nats, under
# the bigram model's 2.14), 5 evaluations
TINY_GPT = {"corpus": "names", "n_layer": 2, "n_head": 2, "n_embd": 32, "block_size": 16, "batch_size": 16,
            "max_steps": 200, "eval_interval": 50, "learning_rate": 0.01, "sample_tokens": 30,
            "attention_prompt": "shofer\nlysack\ntroathyr"}  # fmt: skip
LOSS_LEFT, LOSS_WIDTH = 34, 460 - 34 - 70  # the loss plot's left padding and width (views/src/language.js)
HEAT_LABEL = 34


def shown(token: str) -> str:
    """A token as the view writes it (a newline and spaces made visible)."""
    return token.replace("\n", "↵").replace(" ", "␣").replace("\t", "⇥") or "∅"


def count_near(png: bytes, colour, tol: int = 30) -> int:
    im = Image.open(io.BytesIO(png)).convert("RGB")
    return sum(near(p, colour, tol) for p in im.getdata())


def newest_gpt_run(output_dir: Path) -> dict:
    path = max((output_dir / "gpt_runs").glob("*/metrics.json"), key=lambda p: p.stat().st_mtime)
    return json.loads(path.read_text(encoding="utf-8"))["result"]


def attention_weight(result: dict, layer: int, head: int, q: int, k: int) -> float:
    """weights_b64 read as its description says: per layer, per head, the rows up to the diagonal, bytes / 255."""
    import base64

    T, H = len(result["attention"]["tokens"]), result["settings"]["n_head"]
    raw = base64.b64decode(result["attention"]["weights_b64"])
    return raw[(layer * H + head) * T * (T + 1) // 2 + q * (q + 1) // 2 + k] / 255


def next_token_reference(run_path: str, prompt: str, temperature: float):
    """The first step by hand with transformers: softmax(logits / temperature) after the prompt."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(run_path).eval()
    tok = AutoTokenizer.from_pretrained(run_path)
    ids = tok(prompt, add_special_tokens=False, return_tensors="pt").input_ids
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, -1]  # (V,)
    model_p = torch.softmax(logits, -1)
    p = torch.softmax(logits / temperature, -1) if temperature > 0 else model_p
    return tok, p, model_p


def test_language_view_draws_curves_and_attention_and_resamples_at_another_temperature(
    lab_server, page_factory, tmp_path
):
    from playwright.sync_api import expect

    p = page_factory(lab_server.origin)
    p.page.goto(lab_url(lab_server.origin, "train_tiny_gpt", TINY_GPT))
    view = p.page.frame_locator("#view iframe")
    body = view.locator("body")
    expect(body).to_have_attribute("data-renders", "1", timeout=120_000)
    render_ms = float(body.get_attribute("data-render-ms"))
    assert render_ms < RENDER_BUDGET_MS
    r = newest_gpt_run(lab_server.output_dir)  # the result as the server saved it
    steps = [s["step"] for s in r["samples"]]
    assert steps == r["history"]["step"] == [0, 50, 100, 150, 200]

    # 1. the loss curve: the val line (near black) and the two dashed baselines (orange uniform, blue bigram)
    loss = view.locator("#loss").screenshot()
    assert count_near(loss, (34, 34, 34)) > 100
    assert count_near(loss, (245, 147, 34)) > 100 and count_near(loss, (8, 119, 189)) > 100
    expect(view.locator("#train-facts")).to_contain_text(f"vocab {r['vocab_size']}, 200 steps")

    # 2. pointing at an evaluation shows its sample: the first (gibberish), then the last
    for i in (0, 4):
        view.locator("#loss").hover(position={"x": LOSS_LEFT + LOSS_WIDTH * steps[i] / 200, "y": 100})
        expect(body).to_have_attribute("data-eval", str(steps[i]))
        assert view.locator("#sample-text").text_content() == "↵" + r["samples"][i]["text"]

    # 3. attention: the heatmap is drawn (viridis weights, grey masked future); another head, and under the pointer
    # the query and key tokens with the weight the result carries for that layer, head and cell
    heat = view.locator("#heatmap").screenshot()
    assert count_near(heat, (215, 215, 215), 6) > 2000 and count_near(heat, (68, 1, 84), 60) > 200
    view.locator("#layer").select_option("1")
    view.locator("#head").select_option("1")
    expect(body).to_have_attribute("data-head", "1,1")
    T, tokens = len(r["attention"]["tokens"]), r["attention"]["tokens"]
    assert T == 16
    cell = min(24, (360 - HEAT_LABEL) // T)
    q, k = T - 1, 6  # the last token, and the newline after "shofer"
    view.locator("#heatmap").hover(
        position={"x": HEAT_LABEL + k * cell + cell / 2, "y": HEAT_LABEL + q * cell + cell / 2}
    )
    expect(body).to_have_attribute("data-cell", f"{q},{k}")
    w = attention_weight(r, 1, 1, q, k)
    expect(view.locator("#att-readout")).to_have_text(
        f"query {q} '{shown(tokens[q])}' → key {k} '{shown(tokens[k])}': {w:.3f}"
    )
    assert body.get_attribute("data-renders") == "1"  # choosing a head needs no tool call

    # 4. the temperature control calls sample_text on this run through the host and the server
    view.locator("#temperature").fill("0.5")
    expect(body).to_have_attribute("data-renders", "2", timeout=60_000)
    second_ms = float(body.get_attribute("data-render-ms"))
    expect(view.locator("#sample-facts")).to_contain_text(f"run {r['run_id']} · temperature 0.5")
    expect(view.locator("#generated .tok[data-i]")).to_have_count(60)
    expect(view.locator("#generated .tok.prompt")).to_have_text("↵")  # the prompt field's \n, as a newline
    # the first token's probability and top 5, against transformers on the saved run at the same temperature
    tok, probs, model_p = next_token_reference(r["run_path"], "\n", 0.5)
    first = view.locator("#generated .tok[data-i]").first.text_content()
    first_id = tok.convert_tokens_to_ids("\n" if first == "↵" else first)
    view.locator("#generated .tok[data-i='0']").hover()
    expect(view.locator("#choice")).to_contain_text(
        f"p = {float(probs[first_id]):.3f} at temperature 0.5 (the model's own: {float(model_p[first_id]):.3f})"
    )
    top = probs.topk(5)
    expect(view.locator("#choice .bar")).to_have_count(5 if first_id in top.indices.tolist() else 6)
    for n, (pr, i) in enumerate(zip(top.values.tolist(), top.indices.tolist(), strict=True)):
        expect(view.locator("#choice .bar").nth(n)).to_have_text(f"{shown(tok.decode([i]))}{pr:.3f}")
    view.locator("#heatmap").hover(
        position={"x": HEAT_LABEL + k * cell + cell / 2, "y": HEAT_LABEL + q * cell + cell / 2}
    )
    view.locator("#generated .tok[data-i='2']").hover()
    p.page.locator("#view iframe").screenshot(path=str(screenshot_dir(tmp_path) / "view-language.png"))

    # 5. opened by sample_text itself: no training to show, only the tokens; greedy = every chosen p is 1
    s = page_factory(lab_server.origin)
    s.page.goto(
        lab_url(
            lab_server.origin, "sample_text", {"run_id": r["run_id"], "temperature": 0, "max_new_tokens": 20}
        )
    )
    sview = s.page.frame_locator("#view iframe")
    expect(sview.locator("body")).to_have_attribute("data-renders", "1", timeout=60_000)
    sample_ms = float(sview.locator("body").get_attribute("data-render-ms"))
    assert sample_ms < RENDER_BUDGET_MS
    expect(sview.locator("#training")).to_be_hidden()
    expect(sview.locator("#generated .tok[data-i]")).to_have_count(20)
    expect(sview.locator("#choice")).to_contain_text(
        f"p = 1.000 at temperature 0 (the model's own: {float(model_p.max()):.3f})"
    )

    # 6. nothing left either page but requests to its own server
    for page in (p, s):
        assert page.foreign == [] and page.errors == []
        assert all(u.startswith(lab_server.origin) for u in page.requests)
    print(
        f"\nlanguage: first render {render_ms:.1f} ms, after sampling {second_ms:.1f} ms, sample_text alone {sample_ms:.1f} ms"
    )


def test_language_view_follows_a_training_that_outlives_the_call_as_a_job(lab_server, page_factory):
    from playwright.sync_api import expect

    p = page_factory(lab_server.origin)
    args = {**TINY_GPT, "max_steps": 30, "eval_interval": 10, "wait_s": 0}  # the call returns a job at once
    p.page.goto(lab_url(lab_server.origin, "train_tiny_gpt", args))
    view = p.page.frame_locator("#view iframe")
    # the job handle first, then job_status calls made by the view until the final result is drawn
    expect(view.locator("#attention")).to_be_visible(timeout=120_000)
    assert int(view.locator("body").get_attribute("data-renders")) >= 2
    r = newest_gpt_run(lab_server.output_dir)
    expect(view.locator("#train-facts")).to_contain_text(f"{r['parameters']:,} parameters")
    expect(view.locator("#sampler")).to_be_visible()
    assert p.foreign == [] and p.errors == []
