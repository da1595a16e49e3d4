"""Make docs/llm_lab.md's transcript: the LLM lab's tools called through a real MCP client (in memory, legacy
handshake), pictures copied to docs/images/. The transcript is printed as Markdown.

    python bench/llm_lab_transcript.py > /tmp/transcript.md
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from mcp import Client

from mcp_server.server import build_server
from tools.config import LabConfig
from tools.tiny_gpt.corpus import builtin_corpus

DOCS = Path(__file__).resolve().parents[1] / "docs" / "images"


def show(call: str, res, picture: str | None = None, keys: tuple[str, ...] = ()) -> None:
    text = res.content[0].text
    print(f"**Call** `{call}`\n\n```text\n{text}\n```\n")
    if keys:
        data = res.structured_content
        print(
            "```json\n"
            + json.dumps({k: data[k] for k in keys}, ensure_ascii=False, indent=1)[:3000]
            + "\n```\n"
        )
    images = [b for b in res.content if b.type == "image"]
    if picture and images:
        (DOCS / picture).write_bytes(base64.b64decode(images[0].data))
        print(f"![{picture}](images/{picture})\n")


async def main() -> None:
    tmp = Path(tempfile.mkdtemp())
    cfg = LabConfig.create(tmp / "out", [tmp])
    mine = tmp / "my_notes.txt"
    mine.write_text(builtin_corpus("concepts_en"), encoding="utf-8")
    progress: list[str] = []

    async def on_progress(done, total, message):
        progress.append(f"{done:g}/{total:g} {message}")

    async with Client(build_server(cfg), mode="legacy") as c:
        res = await c.call_tool(
            "tokenize_text", {"text": "How many r's are in strawberry?", "tokenizer": "bpe"}
        )
        show(
            'tokenize_text(text="How many r\'s are in strawberry?", tokenizer="bpe")',
            res,
            "llm_strawberry.png",
        )
        args = {
            "text": "How many r's are in strawberry?",
            "compare_text": "草莓这个词里有几个字母r？",
            "tokenizer": "bytes",
        }
        res = await c.call_tool("tokenize_text", args)
        show(f"tokenize_text({args})", res, "llm_bytes_zh.png")
        args = {
            "text": "神经网络的基本单元是神经元。",
            "tokenizer": "bpe",
            "corpus": "concepts_zh",
            "bpe_merges": 800,
        }
        res = await c.call_tool("tokenize_text", args)
        show(f"tokenize_text({args})", res, "llm_bpe_zh.png")

        t0 = time.perf_counter()
        res = await c.call_tool(
            "train_tiny_gpt",
            {"preset": "quick", "corpus_path": str(mine)},  # the preset's own 25 s budget: one call
            progress_callback=on_progress,
        )
        wall = time.perf_counter() - t0
        print("Progress notifications the client received:\n\n```text\n" + "\n".join(progress) + "\n```\n")
        show('train_tiny_gpt(preset="quick", corpus_path="my_notes.txt")', res, "llm_quick_curves.png",
             ("parameters", "parameter_breakdown", "baselines", "final_val_loss", "tokens_per_s", "torch_threads"))  # fmt: skip
        print(f"(whole call, client side: {wall:.1f} s)\n")
        run = res.structured_content
        (DOCS / "llm_quick_attention.png").write_bytes(
            base64.b64decode([b for b in res.content if b.type == "image"][1].data)
        )
        print("![attention](images/llm_quick_attention.png)\n")
        print(
            "```json\n" + json.dumps(run["attention"]["heads"][:4], ensure_ascii=False, indent=1) + "\n```\n"
        )
        for temperature in (0.2, 1.5):
            args = {
                "run_id": run["run_id"],
                "prompt": "The ",
                "temperature": temperature,
                "max_new_tokens": 60,
            }
            res = await c.call_tool("sample_text", args)
            show(f"sample_text(run_id=..., prompt='The ', temperature={temperature})", res,
                 f"llm_sample_t{str(temperature).replace('.', '')}.png")  # fmt: skip
    shutil.rmtree(tmp, ignore_errors=True)
    sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(main())
