// Playground view of train_toy_mlp: the boundary animating over training, loss curves, and controls that re-run
// the tool through the host. Everything drawn comes from the tool's structured result (runs[].boundary, view).
import { $, b64bytes, BLUE, connect, diverging, el, fmt, ORANGE, status } from "./common.js";

const TOOL = "train_toy_mlp";
const DATASETS = ["circle", "xor", "gauss", "spiral", "moons", "plane", "gauss_bump", "sine"];
const FEATURES = ["x1", "x2", "x1^2", "x2^2", "x1*x2", "sin x1", "sin x2"];
const ACTIVATIONS = ["tanh", "relu", "sigmoid", "linear", "gelu", "leaky_relu", "silu"];
const RATES = [0.00001, 0.0001, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1, 3];
const REG_RATES = [0, 0.0001, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1];
const EPOCHS = [20, 50, 100, 200, 300, 500, 1000];
const DEFAULTS = {
  dataset: "spiral", noise: 0, features: ["x1", "x2"], hidden_layers: [8, 8], activation: "tanh",
  learning_rate: 0.01, regularization: "none", regularization_rate: 0.001, epochs: 300,
};
// The network/training settings a variant may change (tools/toy_mlp/schema.py VARIANT_FIELDS, those shown here).
const VARIANT_KEYS = ["features", "hidden_layers", "activation", "learning_rate", "regularization", "regularization_rate", "epochs"];
const FRAME_MS = 350;
const SIDE = 240;

let args = {}; // the arguments of the last call as given (the controls show these, or the defaults)
let result = null;
let frame = 0;
let timer = null;

const lab = connect("ml-lab playground", {
  onInput: (input) => {
    args = { ...input };
    showControls();
  },
  onResult: (res) => render(res.structuredContent),
});

// ---- controls

function select(key, values, label = (v) => String(v)) {
  return el("select", { id: key, onchange: changed }, ...values.map((v) => el("option", { value: String(v) }, label(v))));
}

function buildControls() {
  const feats = el("span", { class: "features" },
    ...FEATURES.map((f) => el("label", {}, el("input", { type: "checkbox", value: f, onchange: changed }), f)));
  $("#controls").append(
    el("label", {}, "data ", select("dataset", DATASETS)),
    el("label", {}, "noise ", el("input", { id: "noise", type: "range", min: "0", max: "0.5", step: "0.05", onchange: changed }),
      el("output", { id: "noise-out" })),
    el("label", {}, "features ", feats),
    el("label", {}, "hidden layers ", el("input", { id: "hidden_layers", size: "9", title: "widths, e.g. 8, 8", onchange: changed })),
    el("label", {}, "activation ", select("activation", ACTIVATIONS)),
    el("label", {}, "learning rate ", select("learning_rate", RATES)),
    el("label", {}, "regularisation ", select("regularization", ["none", "l1", "l2"])),
    el("label", {}, "rate ", select("regularization_rate", REG_RATES)),
    el("label", {}, "epochs ", select("epochs", EPOCHS)),
    el("label", { title: "train the previous and the new settings side by side" },
      el("input", { id: "compare", type: "checkbox" }), "compare with previous"),
  );
}

function ensureOption(id, value) {
  const node = $(`#${id}`);
  if (![...node.options].some((o) => o.value === String(value))) node.append(el("option", { value: String(value) }, String(value)));
  node.value = String(value);
}

function showControls() {
  const a = { ...DEFAULTS, ...args };
  const custom = a.dataset === "custom";
  ensureOption("dataset", a.dataset);
  $("#noise").value = String(a.noise);
  $("#noise").disabled = custom; // noise applies to generated data only
  $("#noise-out").textContent = String(a.noise);
  for (const box of document.querySelectorAll(".features input")) box.checked = a.features.includes(box.value);
  $("#hidden_layers").value = a.hidden_layers.join(", ");
  for (const key of ["activation", "learning_rate", "regularization", "regularization_rate", "epochs"]) ensureOption(key, a[key]);
}

function readControls() {
  const widths = $("#hidden_layers").value.split(/[ ,]+/).filter(Boolean).map(Number);
  const next = {
    dataset: $("#dataset").value,
    features: [...document.querySelectorAll(".features input:checked")].map((b) => b.value),
    hidden_layers: widths,
    activation: $("#activation").value,
    learning_rate: Number($("#learning_rate").value),
    regularization: $("#regularization").value,
    regularization_rate: Number($("#regularization_rate").value),
    epochs: Number($("#epochs").value),
  };
  if (next.dataset !== "custom") next.noise = Number($("#noise").value);
  return next;
}

function pick(obj, keys) {
  return Object.fromEntries(keys.filter((k) => k in obj).map((k) => [k, obj[k]]));
}

function changed() {
  const next = readControls();
  $("#noise-out").textContent = String(next.noise ?? "");
  if (next.hidden_layers.some((w) => !Number.isInteger(w) || w < 1 || w > 64) || next.hidden_layers.length > 8) {
    status("hidden layers: up to 8 widths from 1 to 64, e.g. 8, 8 (empty = a linear model)", "error");
    return;
  }
  if (next.features.length === 0) {
    status("pick at least one feature", "error");
    return;
  }
  const before = { ...DEFAULTS, ...args };
  const call = { ...args, ...next };
  delete call.variants;
  if ($("#compare").checked && before.dataset === call.dataset && before.noise === (call.noise ?? 0)) {
    call.variants = [
      { name: "before", ...pick(before, VARIANT_KEYS) },
      { name: "now", ...pick(call, VARIANT_KEYS) },
    ];
  }
  args = call;
  lab.call(TOOL, call);
}

// ---- drawing

function boundaryImage(view, snapshot) {
  const n = view.grid;
  const bytes = b64bytes(snapshot.values_b64);
  const small = el("canvas", { width: String(n), height: String(n) });
  const ctx = small.getContext("2d");
  const img = ctx.createImageData(n, n);
  for (let row = 0; row < n; row++) {
    for (let col = 0; col < n; col++) {
      const [r, g, b] = diverging(bytes[row * n + col] / 255);
      const i = ((n - 1 - row) * n + col) * 4; // row 0 is y_min: the bottom of the picture
      img.data.set([r, g, b, 220], i);
    }
  }
  ctx.putImageData(img, 0, 0);
  return small;
}

function drawBoundary(canvas, view, snapshot) {
  const ctx = canvas.getContext("2d");
  const [x0, x1, y0, y1] = view.extent;
  ctx.clearRect(0, 0, SIDE, SIDE);
  ctx.imageSmoothingEnabled = true;
  // the grid holds values at cell centres; stretch it so that those centres land on the grid's coordinates
  const cell = SIDE / (view.grid - 1);
  ctx.drawImage(boundaryImage(view, snapshot), -cell / 2, -cell / 2, SIDE + cell, SIDE + cell);
  const span = view.v_max - view.v_min;
  for (const [px, py, t, test] of view.points) {
    const [r, g, b] = span === 1 && view.v_min === 0 ? (t > 0.5 ? BLUE : ORANGE) : diverging((t - view.v_min) / span);
    ctx.beginPath();
    ctx.arc(((px - x0) / (x1 - x0)) * SIDE, SIDE - ((py - y0) / (y1 - y0)) * SIDE, 3, 0, 2 * Math.PI);
    ctx.fillStyle = `rgb(${r},${g},${b})`;
    ctx.fill();
    ctx.lineWidth = 0.8;
    ctx.strokeStyle = test ? "#000" : "#fff";
    ctx.stroke();
  }
}

function drawLoss(canvas, history, epoch) {
  const ctx = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height;
  ctx.clearRect(0, 0, W, H);
  const values = [...history.train_loss, ...history.test_loss].filter((v) => v !== null);
  if (!values.length) return;
  const log = Math.min(...values) > 0;
  const f = log ? Math.log10 : (v) => v;
  const lo = f(Math.min(...values)), hi = f(Math.max(...values));
  const last = history.epochs[history.epochs.length - 1] || 1;
  const X = (e) => 4 + (e / last) * (W - 8);
  const Y = (v) => H - 4 - ((f(v) - lo) / (hi - lo || 1)) * (H - 8);
  for (const [key, colour] of [["train_loss", "#999"], ["test_loss", "#222"]]) {
    ctx.beginPath();
    history.epochs.forEach((e, i) => {
      const v = history[key][i];
      if (v !== null) ctx[i ? "lineTo" : "moveTo"](X(e), Y(v));
    });
    ctx.strokeStyle = colour;
    ctx.lineWidth = 1.5;
    ctx.stroke();
  }
  ctx.fillStyle = "rgba(8,119,189,0.25)";
  ctx.fillRect(X(epoch) - 1, 0, 2, H);
}

function metric(run) {
  if (run.test_accuracy !== null) return `test accuracy ${(run.test_accuracy * 100).toFixed(1)}% (train ${(run.train_accuracy * 100).toFixed(1)}%)`;
  return `test R² ${fmt(run.test_r2)} (train ${fmt(run.train_r2)})`;
}

function render(sc) {
  if (!sc || !sc.view) return;
  result = sc;
  const runs = $("#runs");
  runs.replaceChildren(
    ...sc.runs.map((run, k) =>
      el("figure", { class: "run" + (sc.runs.length > 1 && run.name === sc.best_run ? " best" : "") },
        el("figcaption", {}, el("b", {}, run.name), el("br"), metric(run),
          run.stop_reason === "completed" ? "" : el("div", { class: "warn" }, run.stop_detail)),
        el("canvas", { class: "boundary", id: `boundary-${k}`, width: String(SIDE), height: String(SIDE) }),
        el("canvas", { class: "loss", id: `loss-${k}`, width: String(SIDE), height: "70" }),
        el("div", { class: "legend" }, "loss: train (grey), test (black)"),
      )),
  );
  const slider = $("#frame");
  slider.max = String(Math.max(...sc.runs.map((r) => r.boundary.length)) - 1);
  $("#summary").textContent = `${sc.dataset} · ${sc.task} · ${sc.n_train} train / ${sc.n_test} test points · run ${sc.run_id}`;
  play(0);
}

function showFrame(i) {
  frame = i;
  $("#frame").value = String(i);
  let epoch = 0;
  result.runs.forEach((run, k) => {
    const snap = run.boundary[Math.min(i, run.boundary.length - 1)];
    epoch = snap.epoch;
    drawBoundary($(`#boundary-${k}`), result.view, snap);
    drawLoss($(`#loss-${k}`), run.history, snap.epoch);
  });
  $("#epoch").textContent = `epoch ${epoch}`;
  document.body.dataset.frame = i === Number($("#frame").max) ? "last" : String(i);
}

function play(from) {
  clearInterval(timer);
  showFrame(from);
  timer = setInterval(() => {
    if (frame >= Number($("#frame").max)) return clearInterval(timer);
    showFrame(frame + 1);
  }, FRAME_MS);
}

buildControls();
showControls();
$("#frame").addEventListener("input", (e) => {
  clearInterval(timer);
  showFrame(Number(e.target.value));
});
$("#play").addEventListener("click", () => result && play(0));
