// What every view shares: the connection to the host, render timing, colours, small canvas helpers.
import { App, applyDocumentTheme, applyHostStyleVariables } from "@modelcontextprotocol/ext-apps";

// The playground's colours: orange for class 0 / negative, blue for class 1 / positive (tools/toy_mlp/plot.py).
export const ORANGE = [245, 147, 34];
export const GREY = [232, 234, 235];
export const BLUE = [8, 119, 189];

/** t in [0, 1] -> [r, g, b] on orange - grey - blue. */
export function diverging(t) {
  const [a, b, u] = t < 0.5 ? [ORANGE, GREY, t * 2] : [GREY, BLUE, t * 2 - 1];
  return [0, 1, 2].map((i) => Math.round(a[i] + (b[i] - a[i]) * u));
}

/** t in [0, 1] -> [r, g, b] on a perceptual ramp (viridis, 5 stops). */
const VIRIDIS = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
export function viridis(t) {
  const x = Math.min(Math.max(t, 0), 1) * (VIRIDIS.length - 1);
  const i = Math.min(Math.floor(x), VIRIDIS.length - 2);
  const u = x - i;
  return [0, 1, 2].map((k) => Math.round(VIRIDIS[i][k] + (VIRIDIS[i + 1][k] - VIRIDIS[i][k]) * u));
}

export function b64bytes(text) {
  const raw = atob(text);
  const out = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
  return out;
}

export const $ = (sel) => document.querySelector(sel);

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

export function fmt(x, digits = 3) {
  if (x === null || x === undefined) return "n/a";
  if (Number.isInteger(x)) return String(x);
  return Math.abs(x) >= 1e4 || (Math.abs(x) < 1e-3 && x !== 0) ? x.toExponential(2) : x.toFixed(digits);
}

/**
 * Connect to the host. `onInput(args)` gets the arguments of the call that opened the view, `onResult(result)`
 * every tool result (the one the host sends and those of calls the view makes). Render timing is kept in
 * window.mllabTiming: resultAt (result received) and renderedAt (first frame painted after rendering it).
 */
export function connect(name, { onInput, onResult }) {
  const app = new App({ name, version: "0.1.0" }, {}, { autoResize: true });
  window.mllabTiming = [];
  const deliver = (result, source) => {
    const t = { source, resultAt: performance.now(), renderedAt: null };
    window.mllabTiming.push(t);
    let drawn = null;
    if (result.isError) {
      status(errorText(result), "error");
    } else {
      status("");
      drawn = onResult(result); // may be a promise (images to decode first)
    }
    Promise.resolve(drawn).then(() => requestAnimationFrame(() => {
      t.renderedAt = performance.now();
      // also on the page itself, where a test can read it without evaluating script (the CSP forbids eval)
      document.body.dataset.renderMs = (t.renderedAt - t.resultAt).toFixed(1);
      document.body.dataset.renders = String(window.mllabTiming.length);
    }));
  };
  app.ontoolinput = (params) => onInput(params.arguments || {});
  app.ontoolresult = (result) => deliver(result, "host");
  app.onhostcontextchanged = (ctx) => applyContext(ctx);
  app.onteardown = async () => ({});
  app.connect().then(() => applyContext(app.getHostContext()));

  /** Call a tool through the host; the result is rendered like the first one. */
  async function call(tool, args) {
    status(`running ${tool}…`, "busy");
    try {
      const result = await app.callServerTool({ name: tool, arguments: args }, { timeout: 600_000 });
      deliver(result, "view");
      return result;
    } catch (err) {
      status(String(err && err.message ? err.message : err), "error");
      return null;
    }
  }
  return { app, call };
}

function applyContext(ctx) {
  if (!ctx) return;
  if (ctx.theme) applyDocumentTheme(ctx.theme);
  if (ctx.styles && ctx.styles.variables) applyHostStyleVariables(ctx.styles.variables);
}

function errorText(result) {
  return (result.content || []).filter((c) => c.type === "text").map((c) => c.text).join("\n") || "error";
}

/** The result's inline images as data: URIs (what every client gets as image content). */
export function images(result) {
  return (result.content || []).filter((c) => c.type === "image").map((c) => `data:${c.mimeType};base64,${c.data}`);
}

export function loadImage(src) {
  return new Promise((resolve, reject) => {
    const im = new Image();
    im.onload = () => resolve(im);
    im.onerror = reject;
    im.src = src;
  });
}

export function status(text, kind = "") {
  const node = document.getElementById("status");
  if (!node) return;
  node.textContent = text;
  node.className = kind;
}
