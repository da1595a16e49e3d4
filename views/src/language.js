// Language view of train_tiny_gpt and sample_text: the loss curves against the uniform and bigram baselines with
// the sample of each evaluation, the trained model's attention maps with the tokens under the pointer, and the
// next-token probabilities of sample_text with a temperature control that re-runs it through the host. Everything
// drawn is in the tools' structured results (history, samples, baselines, attention.weights_b64, tokens).
import { $, b64bytes, connect, diverging, el, status, viridis } from "./common.js";

const TOKENS = [20, 40, 60, 120, 200];
const LOSS_PAD = { left: 34, right: 70, top: 8, bottom: 18 };
const HEAT = 360; // the heatmap's side, labels included
const LABEL = 34; // room for the token labels along the top and the left
const THUMB = 54;

let train = null; // the last train_tiny_gpt result (or a job's partial result): history, samples, baselines, ...
let att = null; // { tokens, L, H, bytes, layer, head, query, cell }
let sampled = null; // the last sample_text result
let sampleArgs = null; // the arguments sample_text is called with: the run (or model folder), prompt, settings
let evalIndex = 0;
let followed = null; // the job id this view is waiting for
let trainPrompt = "\n"; // train_tiny_gpt's sample_prompt: what the samples continue

const lab = connect("ml-lab language", {
  onInput: (input) => {
    if ("run_id" in input || "model_path" in input) useSampleArgs(input);
    else if (input.sample_prompt) $("#prompt").value = escapeText((trainPrompt = input.sample_prompt));
  },
  onResult: (res) => render(res.structuredContent),
});

/** Shown characters for a token: a newline and spaces made visible, as in the tools' pictures. */
const visible = (t) => t.replaceAll("\n", "↵").replaceAll(" ", "␣").replaceAll("\t", "⇥") || "∅";
// The prompt field shows a newline as \n (a text field cannot hold one), and reads it back.
const escapeText = (t) => t.replaceAll("\\", "\\\\").replaceAll("\n", "\\n").replaceAll("\t", "\\t");
const unescapeText = (t) => t.replace(/\\([nt\\])/g, (_, c) => (c === "n" ? "\n" : c === "t" ? "\t" : "\\"));

function render(sc) {
  if (!sc) return;
  if (sc.job_id && sc.status) return followJob(sc);
  if (sc.history) renderTraining(sc);
  else if (sc.tokens && sc.settings) renderSample(sc);
}

// ---- a training that outlived the call's wait: draw what it has so far, and wait for the rest via job_status

function followJob(job) {
  if (job.status === "completed" && job.result) {
    followed = null;
    return render(job.result);
  }
  if (job.status !== "queued" && job.status !== "running") {
    followed = null;
    return status(`${job.tool} ${job.status}: ${job.error || ""}`, "error");
  }
  if (job.partial && job.partial.history) renderTraining({ ...job.partial, partial: true });
  status(`${job.tool} runs as job ${job.job_id}: ${job.progress?.message || job.status}`, "busy");
  if (followed === job.job_id) return;
  followed = job.job_id;
  (async () => {
    while (followed === job.job_id) {
      const res = await lab.call("job_status", { job_id: job.job_id, wait_s: 20 });
      if (!res || res.isError) {
        followed = null; // the error is on show; a new result starts afresh
        break;
      }
    }
  })();
}

// ---- training: loss curves, baselines, samples over training

function renderTraining(sc) {
  train = sc;
  $("#training").hidden = false;
  const h = sc.history;
  $("#eval").max = String(Math.max(sc.samples.length - 1, 0));
  $("#train-facts").textContent = sc.partial
    ? `(so far: step ${h.step[h.step.length - 1]})`
    : `· ${sc.parameters.toLocaleString("en")} parameters (${sc.settings.n_layer} layers × ${sc.settings.n_head} heads × ${sc.settings.n_embd}), ` +
      `vocab ${sc.vocab_size}, ${sc.steps_run} steps in ${sc.wall_time_s.toFixed(1)} s · val ${sc.final_val_loss.toFixed(3)} vs bigram ` +
      `${sc.baselines.bigram_loss.toFixed(3)}: ${sc.beats_bigram ? "beats it" : "does not beat it"}`;
  showEval(sc.samples.length - 1);
  if (sc.attention) renderAttention(sc);
  if (sc.run_id) useSampleArgs({ ...(sampleArgs || {}), run_id: sc.run_id, model_path: undefined });
}

function lossScale(sc, canvas) {
  const h = sc.history, b = sc.baselines;
  const all = [...h.train_loss, ...h.val_loss, b.bigram_loss, b.uniform_loss];
  const lo = Math.min(...all), hi = Math.max(...all);
  const pad = (hi - lo) * 0.05 || 0.1;
  const last = h.step[h.step.length - 1] || 1;
  const w = canvas.width - LOSS_PAD.left - LOSS_PAD.right, hgt = canvas.height - LOSS_PAD.top - LOSS_PAD.bottom;
  return {
    X: (step) => LOSS_PAD.left + (step / last) * w,
    Y: (v) => LOSS_PAD.top + (1 - (v - lo + pad) / (hi - lo + 2 * pad)) * hgt,
    lo, hi, last,
  };
}

function drawLoss() {
  const canvas = $("#loss"), ctx = canvas.getContext("2d"), sc = train, h = sc.history;
  const { X, Y, lo, hi, last } = lossScale(sc, canvas);
  const css = getComputedStyle(document.body);
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.font = "10px system-ui, sans-serif";
  ctx.fillStyle = css.getPropertyValue("--muted");
  ctx.textAlign = "right";
  const stepY = hi - lo > 3 ? 1 : hi - lo > 1 ? 0.5 : 0.1;
  for (let v = Math.ceil(lo / stepY) * stepY; v <= hi; v += stepY) ctx.fillText(v.toFixed(stepY < 1 ? 1 : 0), LOSS_PAD.left - 4, Y(v) + 3);
  ctx.textAlign = "center";
  ctx.fillText("0", X(0), canvas.height - 4);
  ctx.fillText(`step ${last}`, X(last), canvas.height - 4);
  for (const [v, colour, name] of [[sc.baselines.uniform_loss, "#f59322", "uniform"], [sc.baselines.bigram_loss, "#0877bd", "bigram"]]) {
    const y = Math.round(Y(v)); // on whole pixels: a crisp 2-pixel dash, not a blur over three rows
    ctx.beginPath();
    ctx.setLineDash([5, 4]);
    ctx.moveTo(X(0), y);
    ctx.lineTo(X(last), y);
    ctx.strokeStyle = colour;
    ctx.lineWidth = 2;
    ctx.stroke();
    ctx.setLineDash([]);
    ctx.fillStyle = colour;
    ctx.textAlign = "left";
    ctx.fillText(`${name} ${v.toFixed(2)}`, X(last) + 4, Y(v) + 3);
  }
  const at = sc.samples[evalIndex]?.step;
  if (at !== undefined) {
    ctx.fillStyle = "rgba(8,119,189,0.2)";
    ctx.fillRect(X(at) - 2, LOSS_PAD.top, 4, canvas.height - LOSS_PAD.top - LOSS_PAD.bottom);
  }
  for (const [key, colour] of [["train_loss", "#999"], ["val_loss", "#222"]]) {
    ctx.beginPath();
    h.step.forEach((s, i) => ctx[i ? "lineTo" : "moveTo"](X(s), Y(h[key][i])));
    ctx.strokeStyle = colour;
    ctx.lineWidth = 2;
    ctx.stroke();
    ctx.fillStyle = colour;
    h.step.forEach((s, i) => {
      ctx.beginPath();
      ctx.arc(X(s), Y(h[key][i]), s === at ? 4.5 : 2.5, 0, 2 * Math.PI);
      ctx.fill();
    });
  }
}

function showEval(i) {
  if (!train || !train.samples.length) return;
  evalIndex = Math.min(Math.max(i, 0), train.samples.length - 1);
  const sample = train.samples[evalIndex];
  const k = train.history.step.indexOf(sample.step);
  $("#eval").value = String(evalIndex);
  $("#sample-step").textContent = `step ${sample.step}`;
  $("#sample-loss").textContent = k < 0 ? "" : `train ${train.history.train_loss[k].toFixed(3)} · val ${train.history.val_loss[k].toFixed(3)} nats`;
  $("#sample-text").replaceChildren(el("span", { class: "muted" }, visible(trainPrompt)), sample.text);
  $("#sample-text").dataset.text = sample.text;
  document.body.dataset.eval = String(sample.step);
  drawLoss();
}

// ---- attention: one head's map, the token strip under the pointer, every head as a thumbnail

function renderAttention(sc) {
  const a = sc.attention, L = sc.settings.n_layer, H = sc.settings.n_head, T = a.tokens.length;
  const keep = att && att.L === L && att.H === H;
  att = { tokens: a.tokens, L, H, T, bytes: b64bytes(a.weights_b64), heads: a.heads,
    layer: keep ? att.layer : 0, head: keep ? att.head : 0, query: T - 1, cell: Math.max(4, Math.min(24, Math.floor((HEAT - LABEL) / T))) };
  $("#attention").hidden = false;
  $("#layer").replaceChildren(...Array.from({ length: L }, (_, i) => el("option", { value: String(i) }, String(i))));
  $("#head").replaceChildren(...Array.from({ length: H }, (_, i) => el("option", { value: String(i) }, String(i))));
  const grid = $("#heads");
  grid.style.gridTemplateColumns = `auto repeat(${H}, ${THUMB + 4}px)`;
  grid.replaceChildren(el("span", { class: "lab" }, ""), ...Array.from({ length: H }, (_, h) => el("span", { class: "lab" }, `head ${h}`)));
  for (let l = 0; l < L; l++) {
    grid.append(el("span", { class: "lab" }, `layer ${l}`));
    for (let h = 0; h < H; h++) {
      const c = el("canvas", { width: String(THUMB), height: String(THUMB), "data-layer": String(l), "data-head": String(h), title: `layer ${l}, head ${h}` });
      c.addEventListener("click", () => chooseHead(l, h));
      drawMap(c, l, h, THUMB / T, 0);
      grid.append(c);
    }
  }
  chooseHead(att.layer, att.head);
}

/** Weight of query q on key k (causal: keys after the query get none) in the packed lower triangles. */
function weight(layer, head, q, k) {
  if (k > q) return null;
  const n = (att.T * (att.T + 1)) / 2;
  return att.bytes[(layer * att.H + head) * n + (q * (q + 1)) / 2 + k] / 255;
}

/** One head's map as T x T pixels, scaled up to `cell` per weight without smoothing. */
function drawMap(canvas, layer, head, cell, margin) {
  const T = att.T, small = el("canvas", { width: String(T), height: String(T) });
  const sctx = small.getContext("2d"), img = sctx.createImageData(T, T);
  for (let q = 0; q < T; q++) {
    for (let k = 0; k < T; k++) {
      const w = weight(layer, head, q, k);
      img.data.set([...(w === null ? [215, 215, 215] : viridis(w)), 255], (q * T + k) * 4);
    }
  }
  sctx.putImageData(img, 0, 0);
  const ctx = canvas.getContext("2d");
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(small, margin, margin, T * cell, T * cell);
}

function chooseHead(layer, head) {
  att.layer = layer;
  att.head = head;
  $("#layer").value = String(layer);
  $("#head").value = String(head);
  for (const c of document.querySelectorAll("#heads canvas")) c.classList.toggle("on", c.dataset.layer === String(layer) && c.dataset.head === String(head));
  const focus = att.heads.find((f) => f.layer === layer && f.head === head);
  $("#head-facts").textContent = focus ? `mean distance ${focus.mean_distance} tokens · the last token looks at ${focus.top.join(", ")}` : "";
  drawHeatmap();
  showQuery(att.query, null);
  document.body.dataset.head = `${layer},${head}`;
}

function drawHeatmap() {
  const canvas = $("#heatmap"), { T, cell } = att;
  canvas.width = canvas.height = LABEL + T * cell;
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  drawMap(canvas, att.layer, att.head, cell, LABEL);
  ctx.fillStyle = getComputedStyle(document.body).getPropertyValue("--fg");
  ctx.font = `${Math.min(11, cell)}px ui-monospace, monospace`;
  ctx.textBaseline = "middle";
  att.tokens.forEach((t, i) => {
    const s = visible(t).slice(0, 4);
    ctx.textAlign = "right";
    ctx.fillText(s, LABEL - 3, LABEL + (i + 0.5) * cell); // queries down the left
    ctx.save();
    ctx.translate(LABEL + (i + 0.5) * cell, LABEL - 3);
    ctx.rotate(-Math.PI / 2);
    ctx.textAlign = "left";
    ctx.fillText(s, 0, 0); // keys along the top
    ctx.restore();
  });
}

/** Show where query q looks: its row as shading on the token strip; with key k, the one weight in words. */
function showQuery(q, k) {
  att.query = q;
  const strip = att.tokens.map((t, i) => {
    const w = weight(att.layer, att.head, q, i);
    const span = el("span", { class: "tok" + (i === q ? " query" : ""), title: w === null ? "after the query: masked" : `weight ${w.toFixed(3)}` }, visible(t));
    if (w !== null) span.style.background = `rgba(8,119,189,${(0.85 * w).toFixed(3)})`;
    span.addEventListener("mouseenter", () => showQuery(i, null));
    return span;
  });
  $("#att-tokens").replaceChildren(...strip);
  if (k !== null) {
    const w = weight(att.layer, att.head, q, k);
    $("#att-readout").textContent = `query ${q} '${visible(att.tokens[q])}' → key ${k} '${visible(att.tokens[k])}': ` +
      (w === null ? "masked (the future)" : w.toFixed(3));
    document.body.dataset.cell = `${q},${k}`;
  }
}

function onHeatmapPointer(e) {
  if (!att) return;
  const q = Math.floor((e.offsetY - LABEL) / att.cell), k = Math.floor((e.offsetX - LABEL) / att.cell);
  if (q >= 0 && k >= 0 && q < att.T && k < att.T) showQuery(q, k);
}

// ---- sample_text: each generated token with its probability and top 5; temperature re-runs the tool

function useSampleArgs(args) {
  sampleArgs = Object.fromEntries(Object.entries(args).filter(([, v]) => v !== undefined));
  $("#sampler").hidden = false;
  if (args.prompt !== undefined) $("#prompt").value = escapeText(args.prompt);
  else if (!$("#prompt").value) $("#prompt").value = "\\n";
  const t = Number(args.temperature ?? $("#temperature").value);
  $("#temperature").max = String(Math.max(3, t));
  $("#temperature").value = String(t);
  $("#temperature-out").textContent = t.toFixed(1);
  if (args.seed !== undefined) $("#seed").value = String(args.seed);
  const n = String(args.max_new_tokens ?? 60);
  if (![...$("#max_new_tokens").options].some((o) => o.value === n)) $("#max_new_tokens").append(el("option", { value: n }, n));
  $("#max_new_tokens").value = n;
}

function resample() {
  if (!sampleArgs) return;
  sampleArgs = {
    ...sampleArgs,
    prompt: unescapeText($("#prompt").value) || "\n",
    temperature: Number($("#temperature").value),
    seed: Number($("#seed").value),
    max_new_tokens: Number($("#max_new_tokens").value),
  };
  lab.call("sample_text", sampleArgs);
}

function renderSample(sc) {
  sampled = sc;
  const s = sc.settings;
  $("#sample-facts").textContent = `· ${sc.model} · temperature ${s.temperature}` + (s.top_k ? ` · top-k ${s.top_k}` : "") +
    (s.top_p ? ` · top-p ${s.top_p}` : "") + ` · seed ${s.seed} · mean log-probability ${sc.mean_log_probability.toFixed(2)}`;
  const spans = sc.tokens.map((t, i) => {
    const [r, g, b] = diverging(t.probability);
    const span = el("span", { class: "tok", tabindex: "0", "data-i": String(i), title: `p = ${t.probability.toFixed(3)}` }, visible(t.token));
    span.style.background = `rgba(${r},${g},${b},0.55)`;
    span.addEventListener("mouseenter", () => showChoice(i));
    span.addEventListener("focus", () => showChoice(i));
    return span;
  });
  $("#generated").replaceChildren(el("span", { class: "tok prompt" }, visible(sc.prompt)), ...spans);
  $("#gen-legend").hidden = false;
  showChoice(0);
}

function showChoice(i) {
  const t = sampled.tokens[i];
  if (!t) return $("#choice").replaceChildren();
  for (const s of document.querySelectorAll("#generated .tok[data-i]")) s.classList.toggle("on", s.dataset.i === String(i));
  const rows = t.alternatives.map((c) => bar(c.token, c.probability, c.token === t.token));
  if (!t.alternatives.some((c) => c.token === t.token)) rows.push(bar(t.token, t.probability, true, " (sampled, outside the top 5)"));
  $("#choice").replaceChildren(
    el("div", {}, el("b", {}, `token ${i + 1}: '${visible(t.token)}'`),
      ` p = ${t.probability.toFixed(3)} at temperature ${sampled.settings.temperature} (the model's own: ${t.model_probability.toFixed(3)})`),
    ...rows,
  );
  document.body.dataset.token = String(i);
}

function bar(token, p, chosen, note = "") {
  return el("div", { class: "bar" + (chosen ? " chosen" : "") },
    el("span", { class: "tokname" }, visible(token)), el("div", { style: `width:${Math.max(1, p * 160).toFixed(1)}px` }), `${p.toFixed(3)}${note}`);
}

// ---- controls

for (const n of TOKENS) $("#max_new_tokens").append(el("option", { value: String(n) }, String(n)));
$("#sampler").hidden = true;
$("#eval").addEventListener("input", (e) => showEval(Number(e.target.value)));
$("#loss").addEventListener("mousemove", (e) => {
  if (!train) return;
  const { X } = lossScale(train, $("#loss"));
  let best = 0;
  train.samples.forEach((s, i) => {
    if (Math.abs(X(s.step) - e.offsetX) < Math.abs(X(train.samples[best].step) - e.offsetX)) best = i;
  });
  if (best !== evalIndex) showEval(best);
});
$("#heatmap").addEventListener("mousemove", onHeatmapPointer);
$("#layer").addEventListener("change", () => chooseHead(Number($("#layer").value), att.head));
$("#head").addEventListener("change", () => chooseHead(att.layer, Number($("#head").value)));
$("#temperature").addEventListener("input", () => ($("#temperature-out").textContent = Number($("#temperature").value).toFixed(1)));
for (const id of ["temperature", "seed", "max_new_tokens"]) $(`#${id}`).addEventListener("change", resample);
$("#prompt").addEventListener("change", resample);
$("#sample").addEventListener("click", resample);
