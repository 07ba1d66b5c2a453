// speechrnn-serve page: live listening over /api/stream, file prediction over /api/predict,
// teaching a word over /api/takes and /api/enroll.
"use strict";

const $ = (id) => document.getElementById(id);
const RATE = 16000;
let labels = [];
let live = null; // {context, media, socket, node} while listening
let recording = null; // {mic, frames} while recording takes
let takes = null; // the last recording of takes, a WAV Blob, once the server found them

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
  const name = info.released ? info.description : info.model;
  $("model-line").textContent = `${name} (${info.kind}), ${labels.length} labels`;
  const facts = {
    model: `${info.description} (${info.kind})`,
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
  list.replaceChildren();
  for (const [key, value] of Object.entries(facts)) {
    list.append(el("dt", {}, key), el("dd", {}, String(value)));
  }
  const bars = $("bars");
  bars.replaceChildren();
  labels.forEach((label, i) => {
    const bar = el("div", { class: "bar" });
    bar.append(el("div", { id: `bar-${i}` }));
    bars.append(el("span", {}, label), bar, el("span", { class: "num", id: `num-${i}` }, "0.00"));
  });
  if (!info.teach.enabled) {
    for (const id of ["teach-word", "teach-record", "teach-go"]) $(id).disabled = true;
    setTeachStatus(info.teach.reason);
  }
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

// The microphone as 100 ms frames of 16 kHz 16-bit PCM, each handed to onFrame.
async function openMicrophone(onFrame) {
  const media = await navigator.mediaDevices.getUserMedia({
    audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false,
             autoGainControl: false },
  });
  const context = new AudioContext();
  await context.audioWorklet.addModule("/static/worklet.js");
  const node = new AudioWorkletNode(context, "pcm16k");
  node.port.onmessage = (message) => {
    const pcm = new Int16Array(message.data);
    let power = 0;
    for (const x of pcm) power += (x / 32768) ** 2;
    showLevel(10 * Math.log10(power / pcm.length + 1e-10));
    onFrame(message.data, pcm);
  };
  const mute = context.createGain();
  mute.gain.value = 0; // keeps the worklet pulled without playing the microphone back
  context.createMediaStreamSource(media).connect(node).connect(mute).connect(context.destination);
  await context.resume();
  return { context, media, node };
}

function closeMicrophone({ context, media }) {
  media.getTracks().forEach((track) => track.stop());
  context.close();
  showLevel(-100);
}

async function startListening() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/api/stream`);
  socket.binaryType = "arraybuffer";
  await new Promise((resolve, reject) => {
    socket.onopen = resolve;
    socket.onerror = () => reject(new Error("cannot open the stream"));
  });
  socket.onmessage = onMessage;
  socket.onclose = () => { if (live && live.socket === socket) stopListening("stream closed"); };
  const mic = await openMicrophone((data) => {
    if (socket.readyState === WebSocket.OPEN) socket.send(data);
  });
  live = { ...mic, socket };
  $("listen").textContent = "Stop";
  $("listen").classList.add("on");
  setStatus("listening");
}

function stopListening(reason = "microphone off") {
  if (!live) return;
  const { socket } = live;
  closeMicrophone(live);
  live = null;
  if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: "stop" }));
  $("listen").textContent = "Listen";
  $("listen").classList.remove("on");
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

function setTeachStatus(text, error = false) {
  const status = $("teach-status");
  status.textContent = text;
  status.className = error ? "error" : "";
}

// 16 kHz mono 16-bit PCM frames as a WAV file.
function wavBlob(frames) {
  const samples = frames.reduce((n, f) => n + f.length, 0);
  const header = new DataView(new ArrayBuffer(44));
  const text = (at, s) => [...s].forEach((c, i) => header.setUint8(at + i, c.charCodeAt(0)));
  text(0, "RIFF"); header.setUint32(4, 36 + 2 * samples, true); text(8, "WAVE");
  text(12, "fmt "); header.setUint32(16, 16, true); header.setUint16(20, 1, true);
  header.setUint16(22, 1, true); header.setUint32(24, RATE, true);
  header.setUint32(28, 2 * RATE, true); header.setUint16(32, 2, true);
  header.setUint16(34, 16, true); text(36, "data"); header.setUint32(40, 2 * samples, true);
  return new Blob([header, ...frames], { type: "audio/wav" });
}

function showTakes(answer) {
  const list = $("teach-takes");
  list.replaceChildren();
  for (const take of answer.takes || []) {
    list.append(el("li", { "data-start": take.start, "data-end": take.end },
                   `${take.start.toFixed(2)}-${take.end.toFixed(2)} s`));
  }
}

async function toggleRecording() {
  const button = $("teach-record");
  if (recording) {
    const { frames } = recording;
    closeMicrophone(recording.mic);
    recording = null;
    button.textContent = "Record";
    button.classList.remove("on");
    return checkTakes(wavBlob(frames));
  }
  takes = null;
  $("teach-go").disabled = true;
  showTakes({});
  try {
    const frames = [];
    const mic = await openMicrophone((_, pcm) => {
      frames.push(pcm);
      setTeachStatus(`recording: ${(frames.length / 10).toFixed(1)} s`);
    });
    recording = { mic, frames };
    button.textContent = "Stop";
    button.classList.add("on");
  } catch (error) {
    setTeachStatus(`cannot record: ${error.message}`, true);
  }
}

async function post(url, fields, blob) {
  const form = new FormData();
  for (const [key, value] of Object.entries(fields)) form.append(key, value);
  form.append("file", blob, "takes.wav");
  const response = await fetch(url, { method: "POST", body: form });
  return [response.ok, await response.json()];
}

async function checkTakes(blob) {
  setTeachStatus("finding the takes…");
  const [ok, answer] = await post("/api/takes", {}, blob);
  showTakes(answer);
  if (!ok) return setTeachStatus(answer.problems.join("; "), true);
  takes = blob;
  $("teach-go").disabled = false;
  setTeachStatus(`${answer.takes.length} takes found: press Teach`);
}

async function teach() {
  const word = $("teach-word").value.trim();
  if (!word) return setTeachStatus("type the new word first", true);
  $("teach-go").disabled = true;
  setTeachStatus(`teaching "${word}" (a minute or two)…`);
  try {
    const [ok, answer] = await post("/api/enroll", { word }, takes);
    if (!ok) throw new Error(answer.error);
    const heard = answer.calibration.recall;
    setTeachStatus(`learnt "${answer.word}" (${(100 * heard).toFixed(0)}% of the takes ` +
                   `recognised); saved as ${answer.files.onnx}`);
    $("teach-status").dataset.word = answer.word;
    await loadModel();
    if (live) {
      stopListening("switching to the new model");
      await toggleListening();
    }
  } catch (error) {
    setTeachStatus(`not taught: ${error.message}`, true);
    $("teach-go").disabled = !takes;
  }
}

$("listen").addEventListener("click", toggleListening);
$("teach-record").addEventListener("click", toggleRecording);
$("teach-go").addEventListener("click", teach);
setUpDrop();
loadModel().catch((error) => { $("model-line").textContent = `no model: ${error.message}`; });
