// Tensor view of tensorize_image: the image, and under the pointer the pixel's raw levels and the tensor's values
// per channel with the index arithmetic of the layout; channel heatmaps. The layout and normalisation controls
// re-run the tool. Values are looked up in the result's own table (view.lut_b64), never recomputed here.
import { $, b64bytes, connect, el, fmt, viridis } from "./common.js";

const TOOL = "tensorize_image";
const SIDE = 288; // the image, drawn
const HEAT = 132; // each channel heatmap
const NORMALIZE = ["none", "unit", "imagenet", "minus_one_one"];

let args = {};
let t = null; // the decoded result: { sc, w, h, C, pixels, lut, H, W }

const lab = connect("ml-lab tensor", {
  onInput: (input) => {
    args = { ...input };
    showControls();
  },
  onResult: (res) => render(res.structuredContent),
});

function showControls() {
  $("#layout").value = args.layout || "CHW";
  const norm = args.normalize || "unit";
  if (![...$("#normalize").options].some((o) => o.value === norm)) $("#normalize").append(el("option", { value: norm }, norm));
  $("#normalize").value = norm;
}

function rerun() {
  args = { ...args, layout: $("#layout").value, normalize: $("#normalize").value };
  if (args.normalize !== "custom") {
    delete args.mean;
    delete args.std;
  }
  lab.call(TOOL, args);
}

function render(sc) {
  if (!sc || !sc.view) return;
  const v = sc.view;
  const C = sc.channels.length;
  const lutBytes = b64bytes(v.lut_b64);
  const lut = new Float32Array(lutBytes.buffer, lutBytes.byteOffset, C * 256);
  const dims = sc.shape.slice(sc.layout.startsWith("N") ? 1 : 0); // (C, H, W) or (H, W, C)
  const [H, W] = sc.layout.endsWith("CHW") ? [dims[1], dims[2]] : [dims[0], dims[1]];
  t = { sc, w: v.width, h: v.height, C, pixels: b64bytes(v.pixels_b64), lut, H, W, stride: v.stride };
  args.layout = sc.layout.replace("N", "");
  showControls();
  $("#shape").textContent =
    `tensor ${JSON.stringify(sc.shape)} ${sc.dtype.replace("torch.", "")} (${sc.layout}), normalize=${sc.normalize}, ` +
    `${sc.size_bytes.toLocaleString("en")} bytes` + (v.stride > 1 ? ` · showing every ${v.stride}th pixel` : "");
  drawImage();
  drawHeatmaps();
  $("#stats").replaceChildren(
    el("tr", {}, ...["channel", "min", "max", "mean", "std"].map((h) => el("th", {}, h))),
    ...sc.stats.map((s) => el("tr", {}, el("td", {}, s.channel), ...[s.min, s.max, s.mean, s.std].map((x) => el("td", {}, fmt(x, 4))))),
  );
  readout(0, 0);
}

function level(i, j, c) {
  return t.pixels[(i * t.w + j) * t.C + c];
}

function drawImage() {
  const small = el("canvas", { width: String(t.w), height: String(t.h) });
  const ctx = small.getContext("2d");
  const img = ctx.createImageData(t.w, t.h);
  for (let i = 0; i < t.h; i++) {
    for (let j = 0; j < t.w; j++) {
      const rgb = t.C >= 3 ? [level(i, j, 0), level(i, j, 1), level(i, j, 2)] : [level(i, j, 0), level(i, j, 0), level(i, j, 0)];
      img.data.set([...rgb, t.C === 4 ? level(i, j, 3) : 255], (i * t.w + j) * 4);
    }
  }
  ctx.putImageData(img, 0, 0);
  const canvas = $("#image");
  const scale = SIDE / Math.max(t.w, t.h);
  canvas.width = Math.round(t.w * scale);
  canvas.height = Math.round(t.h * scale);
  const c2 = canvas.getContext("2d");
  c2.imageSmoothingEnabled = false;
  c2.drawImage(small, 0, 0, canvas.width, canvas.height);
}

function drawHeatmaps() {
  const box = $("#heatmaps");
  box.replaceChildren();
  t.sc.channels.forEach((name, c) => {
    const s = t.sc.stats[c];
    const small = el("canvas", { width: String(t.w), height: String(t.h) });
    const ctx = small.getContext("2d");
    const img = ctx.createImageData(t.w, t.h);
    const span = s.max - s.min || 1;
    for (let i = 0; i < t.h; i++) {
      for (let j = 0; j < t.w; j++) {
        const value = t.lut[c * 256 + level(i, j, c)];
        img.data.set([...viridis((value - s.min) / span), 255], (i * t.w + j) * 4);
      }
    }
    ctx.putImageData(img, 0, 0);
    const scale = HEAT / Math.max(t.w, t.h);
    const canvas = el("canvas", { class: "heat", width: String(Math.round(t.w * scale)), height: String(Math.round(t.h * scale)) });
    const c2 = canvas.getContext("2d");
    c2.imageSmoothingEnabled = false;
    c2.drawImage(small, 0, 0, canvas.width, canvas.height);
    canvas.addEventListener("mousemove", (e) => pointer(e, canvas));
    box.append(el("figure", {}, canvas, el("figcaption", {}, `channel ${name}: ${fmt(s.min, 3)} … ${fmt(s.max, 3)}`)));
  });
}

function pointer(e, canvas) {
  if (!t) return;
  const r = canvas.getBoundingClientRect();
  const j = Math.min(t.w - 1, Math.max(0, Math.floor(((e.clientX - r.left) / r.width) * t.w)));
  const i = Math.min(t.h - 1, Math.max(0, Math.floor(((e.clientY - r.top) / r.height) * t.h)));
  readout(i, j);
}

function readout(i, j) {
  const row = i * t.stride, col = j * t.stride;
  const { C, H, W } = t;
  const batch = t.sc.layout.startsWith("N") ? "0, " : "";
  const chw = !t.sc.layout.endsWith("HWC");
  const lines = t.sc.channels.map((name, c) => {
    const raw = level(i, j, c);
    const value = t.lut[c * 256 + raw];
    const index = chw ? `x[${batch}${c}, ${row}, ${col}]` : `x[${batch}${row}, ${col}, ${c}]`;
    const flat = chw ? `${c}·${H}·${W} + ${row}·${W} + ${col} = ${c * H * W + row * W + col}` : `(${row}·${W} + ${col})·${C} + ${c} = ${(row * W + col) * C + c}`;
    return el("tr", {}, el("td", {}, name), el("td", {}, String(raw)), el("td", {}, fmt(value, 4)), el("td", { class: "code" }, index), el("td", { class: "code" }, flat));
  });
  $("#readout").replaceChildren(
    el("tr", {}, ...["", "raw level", "tensor value", "index", "flat offset (elements)"].map((h) => el("th", {}, h))),
    ...lines,
  );
  $("#where").textContent = `pixel row ${row}, column ${col}`;
  document.body.dataset.pixel = `${row},${col}`;
}

for (const n of NORMALIZE) $("#normalize").append(el("option", { value: n }, n));
$("#image").addEventListener("mousemove", (e) => pointer(e, $("#image")));
$("#layout").addEventListener("change", rerun);
$("#normalize").addEventListener("change", rerun);
