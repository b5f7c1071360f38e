// The tisdiss page: upload a recording, follow the job, listen to and download the speakers.
// Plain JavaScript against the server's own /v1 API; nothing is loaded from anywhere else.
"use strict";

const $ = (id) => document.getElementById(id);
let info = null;
let chosen = null;
let players = [];

function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

function clock(seconds) {
  const s = Math.max(0, Math.round(seconds));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

function megabytes(bytes) {
  if (bytes >= 1e7) return `${Math.round(bytes / 1e6)} MB`;
  return bytes >= 1e6 ? `${(bytes / 1e6).toFixed(1)} MB` : `${Math.max(1, Math.round(bytes / 1e3))} kB`;
}

function showError(message) {
  const box = $("error");
  const text = String(message || "Something went wrong.").trim();
  box.textContent = /[.!?]$/.test(text) ? text : `${text}.`;
  box.hidden = false;
  $("progress").hidden = true;
}

function clearError() {
  $("error").hidden = true;
}

async function getJSON(url, options) {
  let response;
  try {
    response = await fetch(url, options);
  } catch (err) {
    throw new Error("The server cannot be reached; is tisdiss serve still running?");
  }
  let body = null;
  try { body = await response.json(); } catch (err) { body = null; }
  if (!response.ok) throw new Error(body && body.error ? body.error : `The server answered ${response.status}`);
  return body;
}

// -- model, presets and limits
async function loadInfo() {
  try {
    info = await getJSON("/v1/info");
  } catch (err) {
    showError(err.message);
    return;
  }
  const m = info.model;
  $("model").replaceChildren(
    h("b", {}, m.name), ` · ${m.sample_rate / 1000} kHz · ${m.speakers} speakers · ${m.device} ${m.precision}`
  );
  $("version").textContent = `tisdiss ${info.version}`;
  if (!info.denoise) {  // the server has no RNNoise: the choice would be refused
    $("denoise").value = "false";
    $("denoise").disabled = true;
    $("denoise").title = "Not available on this server (pip install 'tisdiss[denoise]')";
  }
  const limits = info.limits;
  $("drop-hint").textContent =
    `WAV, FLAC, MP3, Ogg${info.input_suffixes.includes(".m4a") ? ", m4a and videos" : " and more"} · ` +
    `up to ${megabytes(limits.max_upload_bytes)} and ${clock(limits.max_duration_seconds)} long`;
  $("keep").textContent = limits.keep_seconds >= 3600 && limits.keep_seconds % 3600 === 0
    ? `${limits.keep_seconds / 3600} h` : clock(limits.keep_seconds);
  renderPresets();
  if (!info.speed_measured) setTimeout(loadInfo, 2500);  // the speed is measured once, just after start
}

function renderPresets() {
  const previous = document.querySelector("input[name=preset]:checked");
  const selected = previous ? previous.value : "balanced";
  const metric = (info.quality_metric || "").split(/[ ,(]/)[0];
  const unit = (info.quality_metric || "").includes("(dB)") ? " dB" : "";
  const cards = info.presets.map((p) => {
    const id = `preset-${p.name}`;
    const quality = p.quality === null ? "—" : `${p.quality.toFixed(2)}${unit}`;
    const speed = p.rtf === null ? "measuring…" : `${p.rtf.toFixed(p.rtf < 0.1 ? 3 : 2)}`;
    const perMinute = p.rtf === null ? "" : ` (${clock(p.rtf * 60)} of work per minute of audio)`;
    return h("div", { class: "preset" },
      h("input", { type: "radio", name: "preset", id, value: p.name, checked: p.name === selected }),
      h("label", { for: id },
        h("span", { class: "name" }, p.name),
        h("span", { class: "depth" }, `N_sep ${p.n_sep} · N_re ${p.n_re}`),
        h("div", { class: "stats" },
          h("span", { title: info.quality_metric || "no measured quality in the model card" },
            h("b", {}, quality), metric || "quality"),
          h("span", { title: `real-time factor measured on this machine${perMinute}` },
            h("b", {}, speed), "RTF here"))));
  });
  $("presets").replaceChildren(h("legend", {}, "Speed and quality"), ...cards);
}

// -- choosing a file
function choose(file) {
  if (!file) return;
  clearError();
  chosen = file;
  $("drop").classList.add("chosen");
  $("drop-title").textContent = file.name;
  $("go").disabled = false;
  if (info && file.size > info.limits.max_upload_bytes) {
    showError(`${file.name} is ${megabytes(file.size)}; this server takes files up to ${megabytes(info.limits.max_upload_bytes)}`);
    $("go").disabled = true;
  }
}

function setupDrop() {
  const drop = $("drop");
  $("file").addEventListener("change", (e) => choose(e.target.files[0]));
  for (const type of ["dragenter", "dragover"]) {
    drop.addEventListener(type, (e) => { e.preventDefault(); drop.classList.add("over"); });
  }
  for (const type of ["dragleave", "drop"]) {
    drop.addEventListener(type, (e) => { e.preventDefault(); drop.classList.remove("over"); });
  }
  drop.addEventListener("drop", (e) => choose(e.dataTransfer.files[0]));
}

// -- uploading and following the job
function progress(fraction, stage, eta) {
  $("progress").hidden = false;
  $("fill").style.width = `${Math.round(100 * Math.min(1, Math.max(0, fraction)))}%`;
  $("stage").textContent = stage;
  $("eta").textContent = eta || "";
}

function upload(form) {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open("POST", "/v1/jobs");
    request.upload.onprogress = (e) => {
      if (e.lengthComputable) progress(e.loaded / e.total, `Uploading ${Math.round((100 * e.loaded) / e.total)} %`);
    };
    request.onload = () => {
      let body = null;
      try { body = JSON.parse(request.responseText); } catch (err) { body = null; }
      if (request.status === 202) resolve(body);
      else reject(new Error(body && body.error ? body.error : `The server answered ${request.status}`));
    };
    request.onerror = () => reject(new Error("The upload failed: the server could not be reached"));
    request.send(form);
  });
}

async function follow(job) {
  while (job.state === "queued" || job.state === "running") {
    const p = job.progress;
    if (job.state === "queued") {
      progress(0, p.queue_position > 1 ? `Waiting for a free worker (${p.queue_position} in line)` : "Starting…");
    } else if (p.chunks_done < p.chunks_total) {
      const eta = p.remaining_seconds === null ? "" : `${clock(p.remaining_seconds)} left`;
      progress(p.fraction, `Separating: chunk ${p.chunks_done} of ${p.chunks_total}`, eta);
    } else {
      progress(1, "Preparing the players…");
    }
    await new Promise((r) => setTimeout(r, 350));
    job = await getJSON(`/v1/jobs/${job.id}`);
  }
  return job;
}

async function separate(event) {
  event.preventDefault();
  if (!chosen) return;
  clearError();
  $("results").hidden = true;
  $("go").disabled = true;
  const form = new FormData();
  form.append("file", chosen, chosen.name);
  form.append("preset", document.querySelector("input[name=preset]:checked")?.value || "balanced");
  form.append("format", $("format").value);
  form.append("speakers", $("speakers").value);
  form.append("band", $("band").value);
  form.append("denoise", $("denoise").value);
  try {
    progress(0, "Uploading…");
    const job = await follow(await upload(form));
    if (job.state === "done") {
      $("progress").hidden = true;
      showResults(job);
    } else {
      showError(job.error || `The job was ${job.state}`);
    }
  } catch (err) {
    showError(err.message);
  } finally {
    $("go").disabled = false;
  }
}

// -- results
function downloads(url, fmt) {
  const formats = [fmt, ...info.formats.filter((f) => f !== fmt)];
  return h("div", { class: "downloads" },
    formats.map((f) => h("a", { href: `${url}?download=1&format=${f}`, download: true }, f.toUpperCase())));
}

function track(kind, title, note, audioUrl, pictureUrl, actions) {
  const audio = h("audio", { controls: true, preload: "metadata", src: audioUrl });
  players.push(audio);
  return h("div", { class: `track ${kind}` },
    h("div", { class: "track-head" },
      h("div", { class: "track-name" }, h("span", { class: "dot" }), title, note ? h("small", {}, note) : null),
      actions),
    h("img", { src: pictureUrl, alt: `${title}: waveform and spectrogram`, width: 720, height: 160 }),
    audio);
}

function abListening() {
  // Playing one track pauses the others and starts where the last one was: A/B at the same moment.
  let last = null;
  for (const audio of players) {
    audio.addEventListener("play", () => {
      if (last && last !== audio && Number.isFinite(last.currentTime)) audio.currentTime = last.currentTime;
      for (const other of players) if (other !== audio) other.pause();
      last = audio;
    });
  }
}

function showResults(job) {
  players = [];
  const d = job.depth;
  const bits = [
    job.input.name,
    `${clock(job.input.duration_seconds)} at ${job.input.sample_rate / 1000} kHz`,
    `N_sep ${d.n_sep}, N_re ${d.n_re} (${d.reason})`,
    `separated in ${job.progress.elapsed_seconds.toFixed(1)} s`,
  ];
  $("summary").textContent = bits.join(" · ") + (job.warnings.length ? ` · note: ${job.warnings.join("; ")}` : "");
  $("zip").href = job.zip;
  const tracks = [
    track("mixture", "Original mixture", "for A/B", job.mixture.url, job.mixture.picture,
      h("div", { class: "downloads" }, h("a", { href: `${job.mixture.url}?download=1`, download: true }, "WAV"))),
    ...job.speakers.map((s, i) =>
      track(`spk${i + 1}`, `Speaker ${i + 1}`, null, s.url, s.picture, downloads(s.url, job.format))),
  ];
  $("tracks").replaceChildren(...tracks);
  abListening();
  $("results").hidden = false;
}

document.addEventListener("DOMContentLoaded", () => {
  setupDrop();
  $("form").addEventListener("submit", separate);
  loadInfo();
});
