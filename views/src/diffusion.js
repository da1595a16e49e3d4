// Diffusion view of generate_image: a slider through the denoising steps (the model's prediction of the final
// image at each shown step, from the result's step strip), the prompt's tokens, and controls that re-run the
// tool (seed, steps, and for img2img the strength). Pictures are the result's own inline images.
import { $, connect, el, images, loadImage } from "./common.js";

const TOOL = "generate_image";
const SIDE = 320;
const STEPS = [2, 4, 8, 12, 20, 30, 50];

let args = {};
let shown = null; // { sc, final, strip, frames }

const lab = connect("ml-lab diffusion", {
  onInput: (input) => {
    args = { ...input };
    showControls();
  },
  onResult: (res) => render(res),
});

function showControls() {
  $("#prompt").value = args.prompt || "";
  $("#seed").value = String(args.seed ?? 0);
  const steps = $("#steps");
  const value = String(args.steps ?? 20);
  if (![...steps.options].some((o) => o.value === value)) steps.append(el("option", { value }, value));
  steps.value = value;
  $("#show_steps").checked = Boolean(args.show_steps);
  const img2img = Boolean(args.init_image);
  $("#strength-box").hidden = !img2img;
  $("#strength").value = String(args.strength ?? 0.8);
  $("#strength-out").textContent = Number($("#strength").value).toFixed(2);
}

function rerun() {
  const next = {
    ...args,
    prompt: $("#prompt").value,
    seed: Number($("#seed").value),
    steps: Number($("#steps").value),
    show_steps: $("#show_steps").checked,
  };
  if (args.init_image) next.strength = Number($("#strength").value);
  args = next;
  lab.call(TOOL, next);
}

async function render(res) {
  const sc = res.structuredContent;
  if (!sc || !sc.images) return;
  const pictures = images(res);
  const n = sc.images.length;
  const final = await loadImage(pictures[0]);
  const strip = sc.steps_shown.length && pictures[n] ? await loadImage(pictures[n]) : null;
  shown = { sc, final, strip, frames: sc.steps_shown.length };
  const slider = $("#step");
  slider.max = String(shown.frames); // the strip's frames, then the final image
  slider.value = slider.max;
  slider.disabled = !strip;
  $("#tokens").replaceChildren(
    ...sc.tokens.tokens.map((t, i) =>
      el("span", { class: "token" + (t.startsWith("<|") ? " special" : ""), title: `id ${sc.tokens.ids[i]}` }, t.replace("</w>", "·"))),
  );
  $("#token-note").textContent = `${sc.tokens.count} tokens (· ends a word)` + (sc.tokens.truncated ? ", prompt truncated" : "");
  const t = sc.timings;
  $("#facts").textContent =
    `${sc.mode} · ${sc.model} · ${sc.width}×${sc.height} · ${sc.steps_run} ${sc.scheduler} steps · guidance ${sc.guidance_scale}` +
    (sc.strength !== null ? ` · strength ${sc.strength}` : "") + ` · seed ${sc.seed} · ${t.total_s.toFixed(2)} s` +
    ` · latent ${JSON.stringify(sc.shapes.latent)}`;
  showStep(shown.frames);
}

function showStep(k) {
  const { sc, final, strip, frames } = shown;
  const ctx = $("#picture").getContext("2d");
  ctx.imageSmoothingEnabled = false; // show the model's pixels as they are
  ctx.clearRect(0, 0, SIDE, SIDE);
  if (k >= frames || !strip) {
    ctx.drawImage(final, 0, 0, SIDE, SIDE);
    $("#step-label").textContent = strip ? `final image (step ${sc.steps_run})` : "final image (ask for show steps to see the denoising)";
  } else {
    // the strip is the frames side by side with 2-pixel gaps, maybe scaled down for inline use
    const scale = strip.width / (frames * sc.width + 2 * (frames - 1));
    const x = k * (sc.width + 2) * scale;
    ctx.drawImage(strip, x, 0, sc.width * scale, strip.height, 0, 0, SIDE, SIDE);
    $("#step-label").textContent = `step ${sc.steps_shown[k]} of ${sc.steps_run}: the model's prediction of the final image`;
  }
  document.body.dataset.step = String(k);
}

for (const s of STEPS) $("#steps").append(el("option", { value: String(s) }, String(s)));
$("#step").addEventListener("input", (e) => shown && showStep(Number(e.target.value)));
$("#prompt").addEventListener("change", rerun);
for (const id of ["seed", "steps", "show_steps", "strength"]) $(`#${id}`).addEventListener("change", rerun);
$("#strength").addEventListener("input", () => ($("#strength-out").textContent = Number($("#strength").value).toFixed(2)));
$("#seed-next").addEventListener("click", () => {
  $("#seed").value = String(Number($("#seed").value) + 1);
  rerun();
});
