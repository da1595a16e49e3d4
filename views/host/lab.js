// /lab: a minimal MCP Apps host of our own. It connects to this server's /mcp with the official MCP client
// (negotiating Apps), calls a tool, and renders the tool's ui:// view in a sandboxed iframe through the App
// Bridge, which forwards the view's own tool calls back to the server. A bearer token, when the server needs
// one, is read from the page's fragment (/lab#token=...): fragments never reach the server or its logs.
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import { AppBridge, getToolUiResourceUri, PostMessageTransport, RESOURCE_MIME_TYPE } from "@modelcontextprotocol/ext-apps/app-bridge";

const APPS = "io.modelcontextprotocol/ui";
const $ = (sel) => document.querySelector(sel);
const params = new URLSearchParams(location.hash.slice(1));
const token = params.get("token");

const log = (text) => ($("#status").textContent = text);
// A first generate_image call loads the diffusion pipeline; on a busy CPU that took minutes (the SDK's default
// request timeout is 60 s). Progress notifications reset it.
const CALL = { timeout: 600_000, resetTimeoutOnProgress: true, onprogress: () => {} };
window.mllabHost = { calls: 0, resultSentAt: null };

async function connectClient() {
  const client = new Client(
    { name: "ml-lab /lab", version: "0.1.0" },
    { capabilities: { extensions: { [APPS]: { mimeTypes: [RESOURCE_MIME_TYPE] } } } },
  );
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  await client.connect(new StreamableHTTPClientTransport(new URL("/mcp", location.href), { requestInit: { headers } }));
  return client;
}

async function main() {
  let client;
  try {
    client = await connectClient();
  } catch (err) {
    log(`cannot connect to /mcp: ${err.message || err}` + (token ? "" : " (if the server needs a token, open /lab#token=...)"));
    return;
  }
  const { tools } = await client.listTools();
  const withViews = tools.filter((t) => getToolUiResourceUri(t));
  const picker = $("#tool");
  for (const t of withViews) picker.append(new Option(t.title || t.name, t.name));
  const wanted = params.get("tool");
  if (wanted && withViews.some((t) => t.name === wanted)) picker.value = wanted;
  const showExample = async () => {
    const tool = withViews.find((t) => t.name === picker.value);
    $("#args").value = params.get("args") || JSON.stringify(await exampleArgs(client, tool), null, 1);
  };
  picker.addEventListener("change", () => {
    params.delete("args");
    showExample();
  });
  await showExample();
  $("#run").addEventListener("click", () => open(client, withViews.find((t) => t.name === picker.value)));
  log(`connected: ${withViews.length} tools with views`);
  document.body.dataset.ready = "1";
  if (params.get("run") === "1") $("#run").click();
}

async function exampleArgs(client, tool) {
  if (tool?.name === "sample_text") return { run_id: await latestGptRun(client), prompt: "\n", temperature: 0.8 };
  const examples = {
    train_toy_mlp: { dataset: "spiral", epochs: 200 },
    tensorize_image: { image: "photo.jpg", resize: 64 },
    generate_image: { prompt: "a red circle on a blue background", steps: 8, show_steps: true },
    train_tiny_gpt: { corpus: "names", max_steps: 200, eval_interval: 40 },
  };
  return examples[tool?.name] || {};
}

/** The newest train_tiny_gpt run (mllab://gpt-runs), for sample_text's example; "" when there is none. */
async function latestGptRun(client) {
  try {
    const { contents } = await client.readResource({ uri: "mllab://gpt-runs" });
    return JSON.parse(contents[0].text)[0]?.run_id || "";
  } catch {
    return "";
  }
}

/** Call `tool` with the arguments in the form and show its view with the result. */
async function open(client, tool) {
  let args;
  try {
    args = JSON.parse($("#args").value || "{}");
  } catch (err) {
    log(`arguments are not JSON: ${err.message}`);
    return;
  }
  const uri = getToolUiResourceUri(tool);
  const { contents } = await client.readResource({ uri });
  const html = contents.find((c) => c.mimeType === RESOURCE_MIME_TYPE)?.text;
  if (!html) return log(`${uri} is not an MCP Apps view`);

  const frame = document.createElement("iframe");
  // scripts only: the view runs in an opaque origin, no same-origin access to this page or the server
  frame.setAttribute("sandbox", "allow-scripts");
  frame.title = `${tool.name} view`;
  $("#view").replaceChildren(frame);
  const bridge = new AppBridge(client, { name: "ml-lab /lab", version: "0.1.0" }, { serverTools: {}, logging: {} }, {
    hostContext: { theme: matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light", displayMode: "inline" },
  });
  bridge.oncalltool = (params) => client.callTool(params, CALL); // the view's own calls, with our timeout
  bridge.onsizechange = ({ height }) => {
    if (height != null) frame.style.height = `${Math.min(height + 4, 4000)}px`;
  };
  const initialized = new Promise((resolve) => (bridge.oninitialized = resolve));
  // listen before the view loads: its first message (ui/initialize) is sent as soon as its script runs
  await bridge.connect(new PostMessageTransport(frame.contentWindow, frame.contentWindow));
  frame.srcdoc = html;
  await initialized;
  await bridge.sendToolInput({ arguments: args });
  log(`running ${tool.name}…`);
  let result;
  try {
    result = await client.callTool({ name: tool.name, arguments: args }, CALL);
  } catch (err) {
    result = { isError: true, content: [{ type: "text", text: String(err.message || err) }] };
  }
  window.mllabHost.calls += 1;
  window.mllabHost.resultSentAt = performance.now();
  await bridge.sendToolResult(result);
  log(result.isError ? `${tool.name} failed: ${result.content?.[0]?.text}` : `${tool.name} done`);
}

main();
