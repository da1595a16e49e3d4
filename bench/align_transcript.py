"""Write the transcript section of docs/llm_alignment.md: LLM lab II through a real MCP client. The SDK's client starts the server
as a subprocess (`python -m mcp_server`, stdio, legacy handshake as Claude Desktop speaks) and calls
finetune_gpt (SFT, DPO, GRPO) and compare_gpt_stages on the built-in task, then on the user's own files (pairs,
preference triples, prompts, read by the client as an assistant would), then the reward-hacking run. Pictures go
to docs/images/.

    PYTHONPATH=$PWD nice python bench/align_transcript.py   # about 3 to 8 minutes on 2 busy cores
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

from mcp import Client, StdioServerParameters

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGE = DOCS / "llm_alignment.md"
START, END = "<!-- transcript: made by bench/align_transcript.py -->", "<!-- end of transcript -->"
KEYS = {
    "finetune_gpt": ("run_id", "settings", "before", "after", "steps_run", "wall_time_s"),
    "compare_gpt_stages": ("stages",),
}


def own_files(folder: Path) -> dict[str, Path]:
    """The user's data: addition asked another way ('what is 23+58?'), as JSON Lines files."""
    rng = random.Random(1)
    rows = [(rng.randint(0, 99), rng.randint(0, 99)) for _ in range(400)]
    files = {"pairs": folder / "my_pairs.jsonl", "triples": folder / "my_prefs.jsonl"}
    files["prompts"] = folder / "my_prompts.jsonl"
    with files["pairs"].open("w") as f:
        for a, b in rows[:300]:
            f.write(json.dumps({"prompt": f"what is {a}+{b}?", "response": f" {a + b}"}) + "\n")
    with files["triples"].open("w") as f:
        for a, b in rows[:300]:
            wrong = a + b + rng.choice([-10, -1, 1, 10]) if a + b >= 10 else a + b + 1
            f.write(json.dumps({"prompt": f"what is {a}+{b}?", "chosen": f" {a + b}", "rejected": f" {wrong}"}) + "\n")  # fmt: skip
    with files["prompts"].open("w") as f:
        for a, b in rows[300:]:
            f.write(json.dumps({"prompt": f"what is {a}+{b}?", "answer": str(a + b)}) + "\n")
    return files


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class Session:
    def __init__(self, client: Client, md: list[str]) -> None:
        self.c, self.md = client, md

    async def call(self, name: str, args: dict, picture: str | None = None, shown_args: dict | None = None):
        """One tool call; a job handle is followed with job_status until the result comes."""
        progress: list[str] = []

        async def on_progress(done, total, message):
            progress.append(f"{done:g}/{total:g} {message}")

        t0 = time.perf_counter()
        wait = {"wait_s": 55} if name == "finetune_gpt" else {}  # long-running tools only (docs/jobs.md)
        res = await self.c.call_tool(name, {**args, **wait}, progress_callback=on_progress)
        data = res.structured_content or {}
        while not res.is_error and data.get("job_id") and data.get("status") in ("queued", "running"):
            res = await self.c.call_tool("job_status", {"job_id": data["job_id"], "wait_s": 55})
            data = res.structured_content or {}
            data = data.get("result") or data
        wall = time.perf_counter() - t0
        self.md.append(f"**Call** `{name}({json.dumps(shown_args or args, ensure_ascii=False)})`\n")
        if progress:
            shown = progress if len(progress) <= 6 else [*progress[:3], "...", *progress[-3:]]
            self.md.append(
                f"Progress notifications ({len(progress)}):\n\n```text\n" + "\n".join(shown) + "\n```\n"
            )
        self.md.append(f"```text\n{res.content[0].text}\n```\n")
        if name in KEYS and not res.is_error:
            part = {k: data[k] for k in KEYS[name] if k in data}
            self.md.append("```json\n" + json.dumps(part, ensure_ascii=False, indent=1)[:2500] + "\n```\n")
        images = [b for b in res.content if b.type == "image"]
        if picture and images:
            (DOCS / "images" / picture).write_bytes(base64.b64decode(images[0].data))
            self.md.append(f"![{picture}](images/{picture})\n")
        self.md.append(f"(whole call, client side: {wall:.1f} s)\n")
        print(f"{name}: {wall:.1f} s", file=sys.stderr, flush=True)
        if res.is_error:
            raise SystemExit(f"{name} failed: {res.content[0].text}")
        return data


async def main() -> None:
    tmp = Path(tempfile.mkdtemp())
    files = own_files(tmp)
    params = StdioServerParameters(
        command=sys.executable,
        args=[
            "-m",
            "mcp_server",
            "--output-dir",
            str(tmp / "out"),
            "--allow-dir",
            str(tmp),
            "--log-level",
            "WARNING",
        ],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        cwd=str(ROOT),
    )
    md = [
        "## Through a real MCP client: a transcript\n",
        "Made by `bench/align_transcript.py`: the MCP SDK's client starts the server over stdio (legacy handshake)"
        " and calls the tools in order. Texts are the tools' own answers; JSON is a part of the structured result."
        f" Machine: 2 CPU cores shared with other work ({time.strftime('%Y-%m-%d')}).\n",
        "### The built-in task: SFT, DPO, GRPO, then the comparison\n",
    ]
    async with Client(params, mode="legacy") as c:
        s = Session(c, md)
        sft = await s.call("finetune_gpt", {"method": "sft"}, "llm_alignment_sft.png")
        dpo = await s.call(
            "finetune_gpt", {"method": "dpo", "base_run": sft["run_id"]}, "llm_alignment_dpo.png"
        )
        grpo = await s.call(
            "finetune_gpt", {"method": "grpo", "base_run": dpo["run_id"]}, "llm_alignment_grpo.png"
        )
        await s.call("compare_gpt_stages", {"runs": [grpo["run_id"]]}, "llm_alignment_stages.png")

        md.append("### Your own data: three JSON Lines files\n")
        md.append(
            "The user's files ask the sum another way (`what is 23+58?` → ` 81`): `my_pairs.jsonl` (300 prompt /"
            " response pairs), `my_prefs.jsonl` (300 prompt / chosen / rejected, rejected off by 1 or 10),"
            " `my_prompts.jsonl` (100 prompts with answers). The client reads each file and passes its rows.\n"
        )
        own = {k: read_jsonl(p) for k, p in files.items()}
        short = {k: f"<{len(v)} rows of {files[k].name}>" for k, v in own.items()}
        args = {"method": "sft", "task": "custom", "pairs": own["pairs"]}
        o_sft = await s.call("finetune_gpt", args, None, {**args, "pairs": short["pairs"]})
        args = {"method": "dpo", "task": "custom", "base_run": o_sft["run_id"], "triples": own["triples"]}
        o_dpo = await s.call("finetune_gpt", args, None, {**args, "triples": short["triples"]})
        args = {"method": "grpo", "task": "custom", "base_run": o_dpo["run_id"], "prompts": own["prompts"],
                "rewards": [{"kind": "exact_answer"}, {"kind": "format", "weight": 0.2}]}  # fmt: skip
        o_grpo = await s.call("finetune_gpt", args, None, {**args, "prompts": short["prompts"]})
        args = {"runs": [o_grpo["run_id"]], "task": "custom", "prompts": own["prompts"],
                "rewards": [{"kind": "exact_answer"}, {"kind": "format", "weight": 0.2}]}  # fmt: skip
        await s.call(
            "compare_gpt_stages", args, "llm_alignment_own.png", {**args, "prompts": short["prompts"]}
        )

        md.append("### Reward hacking: a reward that only checks the length\n")
        args = {"method": "grpo", "base_run": sft["run_id"], "rewards": [{"kind": "length", "target": 8}],
                "beta": 0.0, "learning_rate": 1e-3, "steps": 40, "time_budget_s": 55}  # fmt: skip
        await s.call("finetune_gpt", args, "llm_alignment_reward_hacking.png")
    splice("\n".join(md))
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"wrote the transcript into {PAGE}", file=sys.stderr)


def splice(transcript: str) -> None:
    """Replace the text between the markers of docs/llm_alignment.md (or append the section)."""
    page = PAGE.read_text(encoding="utf-8")
    head, _, rest = page.partition(START)
    tail = rest.partition(END)[2] if rest else "\n"
    PAGE.write_text(
        f"{head.rstrip()}\n\n{START}\n{transcript.strip()}\n{END}\n{tail.lstrip()}", encoding="utf-8"
    )


if __name__ == "__main__":
    asyncio.run(main())
