// speechrnn-serve page: live listening over /api/stream, file prediction over /api/predict.
"use strict";

const $ = (id) => document.getElementById(id);
let labels = [];
let live = null; // {context, media, socket, node} while listening

function el(tag, attrs = {}, text = "") {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (text) node.textContent = text;
  return node;
}

async function loadModel() {
  const info = await (await fetch("/api/model")).json();
  labels = info.labels;
  const s = info.settings;
  $("model-line").textContent =
    `${info.model} (${info.kind}), ${labels.length} labels`;
  const facts = {
    model: `${info.model} (${info.kind})`,
    sha256: info.sha256.slice(0, 16) + "…",
    labels: labels.join(" "),
    "window stride": `${s.stream.stride} s`,
    smoothing: `${s.stream.average} s`,
    "detect at": s.stream.threshold,
    suppress: `${s.stream.suppress} s`,
    "top-k": s.top_k,
    "max upload": `${s.max_upload_mb} MiB`,
  };
  const list = $("model-facts");
  for (const [key, value] of Object.entries(facts)) {
    list.append(el("dt", {}, key), el("dd", {}, String(value)));
  }
  const bars = $("bars");
  labels.forEach((label, i) => {
    const bar = el("div", { class: "bar" });
    bar.append(el("div", { id: `bar-${i}` }));
    bars.append(el("span", {}, label), bar, el("span", { class: "num", id: `num-${i}` }, "0.00"));
  });
}

function setStatus(text, error = false) {
  const status = $("live-status");
  status.textContent = text;
  status.className = error ? "error" : "";
}

function showLevel(db) {
  const share = Math.max(0, Math.min(1, (db + 70) / 60)); // -70 dB .. -10 dB
  $("level").style.width = `${(share * 100).toFixed(0)}%`;
}

function showPosteriors(probabilities) {
  probabilities.forEach((p, i) => {
    $(`bar-${i}`).style.width = `${(p * 100).toFixed(1)}%`;
    $(`num-${i}`).textContent = p.toFixed(2);
  });
}

function addDetection(event) {
  const item = el("li", {
    "data-label": event.label,
    "data-start": event.start,
    "data-end": event.end,
    "data-probability": event.probability,
  });
  item.append(
    el("span", { class: "time" }, `${event.start.toFixed(2)} s`),
    el("span", { class: "word" }, event.label),
    el("span", { class: "p" }, event.probability.toFixed(2)),
  );
  const list = $("detections");
  list.append(item);
  list.scrollTop = list.scrollHeight;
}

function onMessage(message) {
  const event = JSON.parse(message.data);
  if (event.type === "posteriors") {
    showPosteriors(event.probabilities);
    setStatus(`listening: ${event.time.toFixed(1)} s heard`);
  } else if (event.type === "detection") {
    addDetection(event);
  } else if (event.type === "error") {
    setStatus(`server: ${event.message}`, true);
  }
}

async function startListening() {
  const media = await navigator.mediaDevices.getUserMedia({
    audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false,
             autoGainControl: false },
  });
  const context = new AudioContext();
  await context.audioWorklet.addModule("/static/worklet.js");
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/api/stream`);
  socket.binaryType = "arraybuffer";
  await new Promise((resolve, reject) => {
    socket.onopen = resolve;
    socket.onerror = () => reject(new Error("cannot open the stream"));
  });
  socket.onmessage = onMessage;
  socket.onclose = () => { if (live && live.socket === socket) stopListening("stream closed"); };
  const node = new AudioWorkletNode(context, "pcm16k");
  node.port.onmessage = (message) => {
    const pcm = new Int16Array(message.data);
    let power = 0;
    for (const x of pcm) power += (x / 32768) ** 2;
    showLevel(10 * Math.log10(power / pcm.length + 1e-10));
    if (socket.readyState === WebSocket.OPEN) socket.send(message.data);
  };
  const mute = context.createGain();
  mute.gain.value = 0; // keeps the worklet pulled without playing the microphone back
  context.createMediaStreamSource(media).connect(node).connect(mute).connect(context.destination);
  await context.resume();
  live = { context, media, socket, node };
  $("listen").textContent = "Stop";
  $("listen").classList.add("on");
  setStatus("listening");
}

function stopListening(reason = "microphone off") {
  if (!live) return;
  const { context, media, socket } = live;
  live = null;
  media.getTracks().forEach((track) => track.stop());
  context.close();
  if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: "stop" }));
  $("listen").textContent = "Listen";
  $("listen").classList.remove("on");
  showLevel(-100);
  setStatus(reason);
}

async function toggleListening() {
  if (live) return stopListening();
  try {
    await startListening();
  } catch (error) {
    setStatus(`cannot listen: ${error.message}`, true);
  }
}

function showResult(answer, ok) {
  const result = $("result");
  result.hidden = false;
  const line = $("result-line");
  line.replaceChildren();
  const rows = $("topk").querySelector("tbody");
  rows.replaceChildren();
  const timeline = $("timeline");
  timeline.replaceChildren();
  timeline.hidden = true;
  if (!ok) {
    line.append(el("span", { class: "error" }, answer.error));
    return;
  }
  line.append(
    `${answer.file}: `,
    el("span", { class: "word", id: "result-label" }, answer.label),
    ` ${answer.probability.toFixed(3)} (${answer.duration.toFixed(2)} s)`,
  );
  for (const { label, probability } of answer.top_k) {
    const row = el("tr");
    row.append(el("td", {}, label), el("td", {}, probability.toFixed(3)));
    rows.append(row);
  }
  if (answer.detections) {
    timeline.hidden = false;
    for (const d of answer.detections) {
      const mark = el("span", { "data-label": d.label, "data-start": d.start,
                                title: `${d.start.toFixed(2)}-${d.end.toFixed(2)} s` }, d.label);
      mark.style.left = `${(100 * d.start) / answer.duration}%`;
      mark.style.width = `${(100 * (d.end - d.start)) / answer.duration}%`;
      timeline.append(mark);
    }
  }
}

async function upload(file) {
  const form = new FormData();
  form.append("file", file, file.name);
  $("result-line").textContent = `${file.name}: …`;
  try {
    const response = await fetch("/api/predict", { method: "POST", body: form });
    showResult(await response.json(), response.ok);
  } catch (error) {
    showResult({ error: `upload failed: ${error.message}` }, false);
  }
}

function setUpDrop() {
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    if (e.dataTransfer.files.length) upload(e.dataTransfer.files[0]);
  });
  $("file-input").addEventListener("change", (e) => {
    if (e.target.files.length) upload(e.target.files[0]);
  });
}

$("listen").addEventListener("click", toggleListening);
setUpDrop();
loadModel().catch((error) => { $("model-line").textContent = `no model: ${error.message}`; });
