"""MCP Apps: the lab's interactive views as `ui://` resources, and the tools that open them.

Each view is one self-contained HTML file in mcp_server/views/ (built from views/ by `node views/build.mjs`).
A tool with a view carries `_meta.ui.resourceUri`; a host that negotiated Apps renders the view in a sandboxed
iframe and hands it the tool's result, which it draws from the same structured content every client gets. The
results themselves never depend on the client: hosts without Apps see exactly the same result.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

from mcp.server.apps import Apps
from mcp.server.mcpserver import MCPServer


@dataclass(frozen=True)
class View:
    file: str  # in mcp_server/views/
    tools: tuple[str, ...]  # the tools that open it
    title: str
    description: str

    @property
    def uri(self) -> str:
        return f"ui://ml-lab/{self.file}"


VIEWS = (
    View(
        "playground.html",
        ("train_toy_mlp",),
        "Playground",
        "The decision boundary animating over training, loss curves, and controls that re-run train_toy_mlp.",
    ),
    View(
        "tensor.html",
        ("tensorize_image",),
        "Tensor",
        "The image, and under the pointer each channel's raw level and tensor value with the CHW/HWC index "
        "arithmetic; channel heatmaps; layout and normalisation controls that re-run tensorize_image.",
    ),
    View(
        "diffusion.html",
        ("generate_image",),
        "Diffusion",
        "A slider through the denoising steps, the prompt's tokens, and seed/steps/strength controls that re-run "
        "generate_image.",
    ),
    View(
        "language.html",
        ("train_tiny_gpt", "sample_text"),
        "Language",
        "The tiny GPT's loss curves against the uniform and bigram baselines with the sample of each evaluation, "
        "its attention maps per layer and head with the tokens under the pointer, and sample_text's next-token "
        "probabilities (each token's top 5) with a temperature control that re-runs sample_text.",
    ),
)


def read_view(file: str) -> str:
    return resources.files("mcp_server").joinpath("views", file).read_text(encoding="utf-8")


def build_apps() -> Apps:
    """The Apps extension with every view registered as a `text/html;profile=mcp-app` resource."""
    apps = Apps()
    for view in VIEWS:
        apps.add_html_resource(
            view.uri, read_view(view.file), name=view.file, title=view.title, description=view.description
        )
    return apps


def link_tools(mcp: MCPServer) -> None:
    """Stamp `_meta.ui.resourceUri` on each registered tool that has a view (tools missing here are skipped)."""
    for view in VIEWS:
        for name in view.tools:
            tool = mcp._tool_manager.get_tool(name)  # the SDK has no public way to add _meta after add_tool
            if tool is not None:
                tool.meta = {**(tool.meta or {}), "ui": {"resourceUri": view.uri}}


LAB_PATH = "/lab"


class LabPage:
    """ASGI wrapper serving GET /lab: the views with a minimal host of our own (mcp_server/views/lab.html).

    The page is static code from the package and holds no data, so it is served without the bearer token (a
    browser cannot add an Authorization header to a page load). Everything it shows comes from /mcp, which
    keeps the server's token rules: the page reads the token from its fragment (/lab#token=...), which browsers
    never send to the server, and puts it on every MCP request.
    """

    def __init__(self, app, path: str = LAB_PATH) -> None:
        self.app, self.path = app, path
        self._body: bytes | None = None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"] not in (self.path, self.path + "/"):
            await self.app(scope, receive, send)
            return
        if scope["method"] not in ("GET", "HEAD"):
            await _respond(send, 405, b"method not allowed\n", b"text/plain", [(b"allow", b"GET, HEAD")])
            return
        if self._body is None:
            self._body = read_view("lab.html").encode("utf-8")
        body = b"" if scope["method"] == "HEAD" else self._body
        headers = [(b"cache-control", b"no-store"), (b"x-content-type-options", b"nosniff")]
        await _respond(send, 200, body, b"text/html; charset=utf-8", headers, length=len(self._body))


async def _respond(send, status: int, body: bytes, ctype: bytes, headers, length: int | None = None) -> None:
    head = [
        (b"content-type", ctype),
        (b"content-length", str(len(body) if length is None else length).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": head + list(headers)})
    await send({"type": "http.response.body", "body": body})
