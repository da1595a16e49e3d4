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
        assert p.page.locator("#tool option").count() == len(apps.VIEWS)
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
