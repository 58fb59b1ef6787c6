// midiforge web page: builds the form from /api/models (one input per generation option,
// shown only for the models whose sampler reads it), submits jobs, polls their status and
// shows each finished piece (piano roll, audio, MIDI download). No libraries, no network
// access beyond this server. Every POST and DELETE carries the session's CSRF token (the
// cookie the server set with the page, echoed in a header), which another site cannot send.
"use strict";

const POLL_MS = 500; // how often a running job's status is asked for
const state = { models: {}, fields: [], samplers: {}, csrf: null };
const MISSING_MODEL = "model: missing; pick a model from the list";
const FINISHED = new Set(["done", "error", "cancelled"]);
const INSTRUMENTS_SHOWN = 4; // instrument names in the input's hint; the model line lists all

function $(id) { return document.getElementById(id); }

function csrfHeaders() {
  if (!state.csrf) return {};
  const prefix = `${state.csrf.cookie}=`;
  const cookie = document.cookie.split("; ").find((c) => c.startsWith(prefix));
  return cookie ? { [state.csrf.header]: cookie.slice(prefix.length) } : {};
}

function showError(message) {
  const box = $("error");
  box.textContent = message || "";
  box.hidden = !message;
}

async function readJson(response) {
  try { return await response.json(); } catch (e) { return { error: `HTTP ${response.status}` }; }
}

// One labelled input per field of /api/models' "fields", in their order: a number, or a text
// the server reads with the option's own parser (the instruments).
function buildFields(fields) {
  const box = $("options");
  for (const field of fields) {
    const label = document.createElement("label");
    label.dataset.option = field.option;
    label.title = field.help;
    const text = document.createElement("span");
    text.className = "label-text";
    text.textContent = Object.values(field.labels)[0];
    const input = document.createElement("input");
    Object.assign(input, { id: field.name, name: field.name, type: field.type });
    if (field.type === "text") {
      input.maxLength = field.max_chars;
      input.autocomplete = "off";
    } else {
      input.min = field.min;
      input.max = field.max;
      input.step = field.integer ? "1" : "any";
    }
    if (field.placeholder) input.placeholder = field.placeholder;
    if (field.default !== null) input.value = field.default;
    label.append(text, " ", input);
    box.append(label);
  }
  state.fields = fields;
}

// Show (and send) only the inputs the model's sampler reads; hidden inputs are disabled, so
// the form does not submit them.
function selectModel(id) {
  const info = state.models[id];
  const style = $("style");
  style.replaceChildren(new Option("(any)", ""));
  if (!info) return;
  for (const label of info.labels) style.add(new Option(label, label));
  const used = new Set(state.samplers[info.kind] || []);
  for (const element of document.querySelectorAll("[data-option]")) {
    const on = used.has(element.dataset.option);
    element.hidden = !on;
    for (const input of element.querySelectorAll("input, select")) input.disabled = !on;
  }
  const known = (info.instruments || []).map((i) => i.name);
  for (const field of state.fields) {
    const text = field.labels[info.kind];
    if (text) $(field.name).parentElement.querySelector(".label-text").textContent = text;
    if (field.choices_from === "instruments") $(field.name).placeholder = instrumentHint(field, known);
  }
  $("model-info").textContent =
    `${info.model} (${info.kind} sampler)` + (info.dataset ? ` trained on ${info.dataset}` : "") +
    (info.labels.length ? ` · styles: ${info.labels.join(", ")}` : "") +
    (known.length ? ` · instruments: ${known.join(", ")}` : "");
}

// "the model's choice; knows Drums, Electric Bass (finger), …": what the model can play.
function instrumentHint(field, known) {
  const shown = known.slice(0, INSTRUMENTS_SHOWN).join(", ");
  const more = known.length > INSTRUMENTS_SHOWN ? ", …" : "";
  return known.length ? `${field.placeholder}; knows ${shown}${more}` : field.placeholder;
}

async function loadModels() {
  const response = await fetch("/api/models");
  const data = await readJson(response);
  if (!response.ok) { showError(data.error); return; }
  const select = $("model");
  select.replaceChildren();
  state.csrf = data.csrf;
  for (const info of data.models) {
    state.models[info.id] = info;
    let text = info.shipped ? `shipped ${info.model}${info.id === "default" ? " (default)" : ""}`
      : `${info.id} — ${info.model}`;
    if (info.problem) text = `${info.id} — broken: ${info.problem}`;
    const option = new Option(text, info.id);
    if (info.problem) { // listed, greyed, not selectable
      option.disabled = true;
      option.className = "broken";
      option.title = info.problem;
    }
    select.add(option);
  }
  const usable = data.models.filter((m) => !m.problem);
  if (!usable.length) {
    showError(`No trained model found in ${data.runs_dir}/; train one with "midiforge train".`);
  }
  if (data.selected) select.value = data.selected;
  state.samplers = data.samplers;
  buildFields(data.fields);
  selectModel(select.value);
  const limits = data.limits;
  if (limits) {
    $("limits").textContent = `One job: at most ${limits.max_job_tokens} tokens or notes ` +
      `(pieces × length), ${limits.max_job_steps} denoising steps (pieces × steps), and ` +
      `${limits.job_seconds} s of work; jobs run one at a time, in order.`;
  }
  $("generate").disabled = !usable.length;
}

function pieceElement(piece) {
  const div = document.createElement("div");
  div.className = "piece";
  const title = document.createElement("h3");
  title.textContent = `${piece.name} · ${piece.notes} notes`;
  div.append(title);
  if (piece.png) {
    const img = document.createElement("img");
    img.className = "pianoroll";
    img.alt = `piano roll of ${piece.name}`;
    img.src = piece.png;
    div.append(img);
  }
  if (piece.wav) {
    const audio = document.createElement("audio");
    audio.controls = true;
    audio.preload = "metadata";
    audio.src = piece.wav;
    div.append(audio);
  }
  const link = document.createElement("a");
  link.className = "download";
  link.href = piece.midi;
  link.download = piece.midi.split("/").pop();
  link.textContent = `Download ${link.download}`;
  div.append(link);
  if (piece.warning) {
    const warn = document.createElement("p");
    warn.className = "hint";
    warn.textContent = piece.warning;
    div.append(warn);
  }
  return div;
}

function jobElement(jobId, modelId) {
  const card = document.createElement("article");
  card.className = "job";
  card.id = `job-${jobId}`;
  card.dataset.status = "queued";
  const title = document.createElement("h2");
  title.textContent = `Job ${jobId} · ${modelId}`;
  const bar = document.createElement("progress"); // no value: an indeterminate bar
  const stage = document.createElement("p");
  stage.className = "stage";
  const cancel = document.createElement("button");
  cancel.type = "button";
  cancel.className = "cancel";
  cancel.textContent = "Cancel";
  cancel.addEventListener("click", () => cancelJob(jobId, card));
  card.append(title, bar, stage, cancel);
  $("jobs").prepend(card);
  return card;
}

async function cancelJob(jobId, card) {
  const button = card.querySelector("button.cancel");
  if (button) button.disabled = true;
  const response = await fetch(`/api/jobs/${jobId}`, { method: "DELETE", headers: csrfHeaders() });
  if (!response.ok) {
    const data = await readJson(response);
    card.querySelector(".stage").textContent = data.error;
    if (button) button.disabled = false;
  }
}

async function poll(jobId, card) {
  const response = await fetch(`/api/jobs/${jobId}`);
  const data = await readJson(response);
  const stage = card.querySelector(".stage");
  if (!response.ok) { stage.textContent = data.error; stage.className = "error"; return; }
  card.dataset.status = data.status;
  if (data.status === "queued") {
    stage.textContent = `queued (position ${data.position} in the queue)`;
  } else if (data.status === "running") {
    const budget = data.budget_s ? ` of at most ${data.budget_s} s` : "";
    stage.textContent = `${data.stage} · ${data.seconds.toFixed(1)} s${budget}`;
  } else if (FINISHED.has(data.status)) {
    card.querySelector("progress").remove();
    card.querySelector("button.cancel")?.remove();
    if (data.status === "cancelled") {
      stage.textContent = `cancelled after ${data.seconds.toFixed(1)} s`;
    } else if (data.status === "error") {
      stage.textContent = data.error;
      stage.className = "error";
    } else {
      stage.textContent = `done in ${data.seconds.toFixed(1)} s · seed ${data.seed}`;
      for (const piece of data.pieces) card.append(pieceElement(piece));
    }
    return;
  }
  setTimeout(() => poll(jobId, card), POLL_MS);
}

async function submit(event) {
  event.preventDefault();
  showError("");
  if (!$("model").value) { showError(MISSING_MODEL); return; }
  const form = new FormData($("form"));
  for (const input of document.querySelectorAll("input[type='file']")) { // send chosen files only
    if (input.disabled || !input.files.length) form.delete(input.name);
  }
  const response = await fetch("/api/generate", {
    method: "POST", body: form, headers: csrfHeaders(),
  });
  const data = await readJson(response);
  if (!response.ok) { showError(data.error); return; }
  const card = jobElement(data.job, form.get("model"));
  poll(data.job, card);
}

window.addEventListener("DOMContentLoaded", () => {
  $("model").addEventListener("change", (e) => selectModel(e.target.value));
  $("form").addEventListener("submit", submit);
  loadModels().catch((e) => showError(`cannot reach the server: ${e}`));
});
