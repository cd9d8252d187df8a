// The draw-a-digit page. Standard web APIs only (Pointer Events, Canvas 2D, fetch); it calls the
// service's public API like any client, so what it shows is what the API answered.
"use strict";

const SIDE = 28; // the model's input: 28x28, white digit on black
const BOX = 20; // MNIST fits each digit in 20x20 and centres it by centre of mass
const PAUSE_MS = 600; // predict by itself this long after the last stroke
const KEY_STORE = "mnist-api-key";

const $ = (id) => document.getElementById(id);
const pad = $("pad");
const ink = pad.getContext("2d", { willReadFrequently: true });
const preview = $("preview").getContext("2d");
let drawing = false;
let drawn = false;
let timer = null;
let lastEvent = null;

function clearPad() {
  ink.fillStyle = "#000";
  ink.fillRect(0, 0, pad.width, pad.height);
  drawn = false;
}

function point(event) {
  const box = pad.getBoundingClientRect();
  return [
    ((event.clientX - box.left) * pad.width) / box.width,
    ((event.clientY - box.top) * pad.height) / box.height,
  ];
}

function startStroke(event) {
  drawing = true;
  drawn = true;
  clearTimeout(timer);
  pad.setPointerCapture(event.pointerId);
  const [x, y] = point(event);
  ink.beginPath();
  ink.moveTo(x, y);
  ink.lineTo(x + 0.1, y + 0.1);
  ink.stroke();
}

function continueStroke(event) {
  if (!drawing) return;
  const [x, y] = point(event);
  ink.lineTo(x, y);
  ink.stroke();
}

function endStroke() {
  if (!drawing) return;
  drawing = false;
  clearTimeout(timer);
  timer = setTimeout(predictDrawing, PAUSE_MS);
}

// The drawing as MNIST's 28x28: crop to the ink, fit into 20x20 keeping the aspect ratio, place
// in 28x28 with the centre of mass at the centre. Returns null when nothing is drawn.
function toMnist() {
  const { data } = ink.getImageData(0, 0, pad.width, pad.height);
  let top = pad.height, left = pad.width, bottom = -1, right = -1;
  for (let y = 0; y < pad.height; y++) {
    for (let x = 0; x < pad.width; x++) {
      if (data[(y * pad.width + x) * 4] > 16) {
        top = Math.min(top, y); bottom = Math.max(bottom, y);
        left = Math.min(left, x); right = Math.max(right, x);
      }
    }
  }
  if (bottom < 0) return null;
  const width = right - left + 1, height = bottom - top + 1;
  const scale = BOX / Math.max(width, height);
  const w = Math.max(1, Math.round(width * scale)), h = Math.max(1, Math.round(height * scale));
  const small = document.createElement("canvas");
  small.width = w;
  small.height = h;
  const smallInk = small.getContext("2d", { willReadFrequently: true });
  smallInk.imageSmoothingEnabled = true;
  smallInk.imageSmoothingQuality = "high";
  smallInk.drawImage(pad, left, top, width, height, 0, 0, w, h);
  const boxed = smallInk.getImageData(0, 0, w, h).data;
  const frame = new Float64Array(SIDE * SIDE);
  const y0 = Math.floor((SIDE - h) / 2), x0 = Math.floor((SIDE - w) / 2);
  let mass = 0, my = 0, mx = 0;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const v = boxed[(y * w + x) * 4];
      frame[(y + y0) * SIDE + x + x0] = v;
      mass += v; my += v * (y + y0); mx += v * (x + x0);
    }
  }
  const dy = Math.round((SIDE - 1) / 2 - my / mass), dx = Math.round((SIDE - 1) / 2 - mx / mass);
  const rows = [];
  for (let y = 0; y < SIDE; y++) {
    const row = [];
    for (let x = 0; x < SIDE; x++) {
      const sy = y - dy, sx = x - dx;
      const inside = sy >= 0 && sy < SIDE && sx >= 0 && sx < SIDE;
      row.push(inside ? Math.round(frame[sy * SIDE + sx]) : 0);
    }
    rows.push(row);
  }
  return rows;
}

function showPixels(rows) {
  const image = preview.createImageData(SIDE, SIDE);
  rows.flat().forEach((v, i) => {
    image.data.set([v, v, v, 255], i * 4);
  });
  preview.putImageData(image, 0, 0);
  $("preview-caption").textContent = "The 28x28 image sent";
}

function headers(extra) {
  const key = sessionStorage.getItem(KEY_STORE);
  return key ? { ...extra, "X-API-Key": key } : extra;
}

function say(text) {
  $("status").textContent = text;
}

async function call(path, options) {
  let response;
  try {
    response = await fetch(path, options);
  } catch (err) {
    throw new Error("The service did not answer. Is it running? Try again in a moment.");
  }
  let body = null;
  try {
    body = await response.json();
  } catch (err) {
    body = null;
  }
  if (response.status === 401) {
    throw new Error("The service needs an API key: enter it under API key, then try again.");
  }
  if (!response.ok) {
    const why = body && body.message ? body.message : response.statusText;
    throw new Error(`The service refused (${response.status}): ${why}`);
  }
  return body;
}

function showAnswer(body) {
  const answer = body.predictions[0];
  $("digit").textContent = String(answer.predicted_class);
  answer.probabilities.forEach((p, digit) => {
    const item = document.querySelector(`#bars li[data-digit="${digit}"]`);
    item.dataset.probability = String(p);
    item.querySelector(".fill").style.width = `${(100 * p).toFixed(1)}%`;
    item.querySelector(".value").textContent = `${(100 * p).toFixed(1)}%`;
    item.classList.toggle("top", digit === answer.predicted_class);
  });
  const form = $("feedback");
  form.dataset.eventId = answer.event_id;
  form.hidden = false;
  $("feedback-status").textContent = "";
  say(`The model says ${answer.predicted_class}, ${(100 * answer.confidence).toFixed(1)}% sure.`);
}

function resetAnswer() {
  $("digit").textContent = "-";
  document.querySelectorAll("#bars li").forEach((item) => {
    delete item.dataset.probability;
    item.querySelector(".fill").style.width = "0";
    item.querySelector(".value").textContent = "-";
    item.classList.remove("top");
  });
  $("feedback").hidden = true;
  preview.clearRect(0, 0, SIDE, SIDE);
  say("");
}

async function predictDrawing() {
  clearTimeout(timer);
  const rows = toMnist();
  if (rows === null) {
    say("Draw a digit first.");
    return;
  }
  showPixels(rows);
  say("Asking the model...");
  try {
    const body = await call("/predict", {
      method: "POST",
      headers: headers({ "Content-Type": "application/json" }),
      body: JSON.stringify({ image: rows }),
    });
    showAnswer(body);
  } catch (err) {
    say(err.message);
  }
}

async function predictUpload() {
  const file = $("upload").files[0];
  if (!file) return;
  const form = new FormData();
  form.append("file", file);
  const photo = new Image();
  photo.onload = () => {
    preview.drawImage(photo, 0, 0, SIDE, SIDE);
    URL.revokeObjectURL(photo.src);
  };
  photo.src = URL.createObjectURL(file);
  $("preview-caption").textContent = "The photo sent (the service makes its own 28x28 from it)";
  say("Asking the model...");
  try {
    showAnswer(await call("/predict/image", { method: "POST", headers: headers({}), body: form }));
  } catch (err) {
    say(err.message);
  }
}

async function sendFeedback(event) {
  event.preventDefault();
  const form = $("feedback");
  const label = Number($("truth").value);
  try {
    await call("/feedback", {
      method: "POST",
      headers: headers({ "Content-Type": "application/json" }),
      body: JSON.stringify({ event_id: form.dataset.eventId, label }),
    });
    $("feedback-status").textContent = `Thank you: ${label} is recorded as the right digit.`;
    form.hidden = true;
  } catch (err) {
    $("feedback-status").textContent = err.message;
  }
}

async function showModel() {
  try {
    const meta = await call("/metadata", { headers: headers({}) });
    const accuracy = meta.test_metrics && meta.test_metrics.accuracy;
    const tested = accuracy ? `, test accuracy ${(100 * accuracy).toFixed(2)}%` : "";
    const registry = meta.registry_version ? ` (registry version ${meta.registry_version})` : "";
    $("model").textContent =
      `Model ${meta.model_name}, version ${meta.model_version}${registry}${tested}.`;
  } catch (err) {
    $("model").textContent = err.message;
  }
}

function setUp() {
  ink.lineWidth = 20;
  ink.lineCap = "round";
  ink.lineJoin = "round";
  ink.strokeStyle = "#fff";
  clearPad();
  pad.addEventListener("pointerdown", startStroke);
  pad.addEventListener("pointermove", continueStroke);
  pad.addEventListener("pointerup", endStroke);
  pad.addEventListener("pointercancel", endStroke);
  $("predict").addEventListener("click", predictDrawing);
  $("clear").addEventListener("click", () => {
    clearTimeout(timer);
    clearPad();
    resetAnswer();
  });
  $("upload").addEventListener("change", predictUpload);
  $("feedback").addEventListener("submit", sendFeedback);
  const key = $("apikey");
  key.value = sessionStorage.getItem(KEY_STORE) || "";
  key.addEventListener("change", () => {
    if (key.value) sessionStorage.setItem(KEY_STORE, key.value);
    else sessionStorage.removeItem(KEY_STORE);
    showModel();
  });
  showModel();
}

setUp();
