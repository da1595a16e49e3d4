"""MCP registration of generate_image and list_models (the work is in tools/generate/)."""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer

from mcp_server.adapter import READ_ONLY, WRITES_NEW_FILES, register_tool
from tools import diffusion_models, generate
from tools.config import LabConfig

DESCRIPTION = """\
Generate an image from a text prompt with a real latent diffusion pipeline (diffusers), on this machine,
offline: tokenizer -> CLIP text encoder -> UNet denoising a latent -> VAE decoder.

Models: 'builtin' (default), a tiny model this project trained from scratch on simple 64x64 scenes
("a small red circle in the top left on a blue background": colours red green blue yellow orange purple
white black; circle, square, triangle; small, medium, large; top left, top right, bottom left, bottom
right, center; a background colour), or any Stable Diffusion 1.x/2.x diffusers folder the server was
started with (--model-dir); call list_models to see them and the sizes each supports.

Options: negative_prompt, steps, guidance_scale, seed (same seed, same picture), width/height,
scheduler (default, ddim, euler, euler_a, dpm++, pndm), num_images. Image-to-image: init_image (path
under an allowed folder, data: URI, base64 or an mllab://outputs/... URI from an earlier call) with
strength (near 0 keeps the input, 1 ignores it). show_steps=true adds a strip of the model's
prediction of the final image at several denoising steps. show_latents=true adds the final latent's
channels as heatmaps next to the image. Hires fix: hires_scale (e.g. 2) upscales the final latent and
re-samples it at hires_strength, with a strip of plain latent upscaling (blurry) vs re-sampled.

Returns the image(s) inline and saved full size (path + mllab:// URI), the token ids and whether the
prompt was truncated, the tensor shapes at each stage, and timings (encode, denoise, decode).
Reports progress every denoising step and stops within a step when cancelled.
"""

LIST_DESCRIPTION = """\
List the diffusion models generate_image can use: the built-in one and each --model-dir folder, with
native size, allowed sizes, schedulers, prediction type, prompt token limit and (built-in) vocabulary.
Folders that are not usable Stable Diffusion pipelines are listed under problems with the reason.
"""


def register(mcp: MCPServer, cfg: LabConfig) -> None:
    register_tool(
        mcp,
        cfg,
        name="generate_image",
        title="Text -> image (latent diffusion)",
        description=DESCRIPTION,
        input_model=generate.GenerateInput,
        result_model=generate.GenerateResult,
        run=generate.run,
        annotations=WRITES_NEW_FILES,  # new PNGs; same seed and arguments, same picture
        long_running=True,
    )
    register_tool(
        mcp,
        cfg,
        name="list_models",
        title="Diffusion models available",
        description=LIST_DESCRIPTION,
        input_model=diffusion_models.ListModelsInput,
        result_model=diffusion_models.ListModelsResult,
        run=generate.list_models,
        annotations=READ_ONLY,
    )
