// The draw-a-digit page: plain JavaScript, no build step, no libraries.
//
// Strokes are kept as point lists, so Undo redraws all but the last one. The canvas is sent as
// it looks (dark ink on white; the server normalises polarity, size and position) as a PNG to
// POST /api/predict; an uploaded photo is sent as its own bytes. Predictions run while drawing,
// 150 ms after the last move and at once on pointerup, with never more than one request in
// flight: a change made meanwhile is predicted when that request returns.
//
// Each answer comes with why (?explain=1): the ink it rests on and training digits like it. The
// buttons under it send the digit shown, as the model saw it, with its right label to
// POST /api/feedback, kept for the profile named; predictions use that profile's adapted model
// once the server has made one.
"use strict";

const DEBOUNCE_MS = 150;
const SIDE = 280; // the pad's size in drawing units, and the PNG's in pixels whatever the screen
const PREDICT_URL = "/api/predict";
const FEEDBACK_URL = "/api/feedback";
const PROFILE_KEY = "digitrec.profile";
const WARM = [255, 120, 0]; // the saliency's colour over the grey digit
const INK = "#111";
const PAPER = "#fff";
const EMPTY_MESSAGE = "Draw a digit (0–9) in the box, or upload a photo.";

const $ = (id) => document.getElementById(id);
const pad = $("pad");
const ink = pad.getContext("2d");
const exported = Object.assign(document.createElement("canvas"), { width: SIDE, height: SIDE });
const photo = $("photo");
const stage = $("stage");
const boxes = $("boxes");
const statusLine = $("status");
const digitText = $("digit");
const confidenceText = $("confidence");
const bars = $("bars");
const seen = $("seen");
const multi = $("multi");
const upload = $("upload");
const numberRow = $("number-row");
const numberText = $("number");
const chips = $("chips");
const undoButton = $("undo");
const why = $("why");
const saliencyCanvas = $("saliency");
const nearest = $("nearest");
const nearestCaption = $("nearest-caption");
const teach = $("teach");
const rightButton = $("right");
const fix = $("fix");
const profileInput = $("profile");
const taught = $("taught");

const input = {
  strokes: [], // each a list of [x, y] in drawing units, 0..SIDE
  pointerId: null, // the pointer drawing the last stroke, until it lifts
  photo: null, // an uploaded File, shown in place of the pad
  photoUrl: null,
};

const requests = {
  version: 0, // bumped on every change to the input
  epoch: 0, // bumped when the input is replaced (clear, upload, toggle): older answers are dropped
  shown: -1, // the version whose answer, error or empty message is on screen
  inFlight: false,
  timer: 0,
};

let answer = null; // the answer on screen
let selected = 0; // which digit of a multi-digit answer the bars describe
let shown = null; // the prediction the bars, the explanation and the buttons are about

// ---- drawing -------------------------------------------------------------------------------

// Sharp ink on any screen: as many canvas pixels as device pixels (up to 3 per CSS pixel).
function fitPad() {
  const side = Math.round(pad.clientWidth * Math.min(window.devicePixelRatio || 1, 3));
  if (!side || side === pad.width) return false; // hidden (a photo is shown) or unchanged
  pad.width = pad.height = side;
  redraw();
  return true;
}

const redraw = () => paint(ink, pad.width / SIDE);

function paint(context, scale) {
  context.setTransform(scale, 0, 0, scale, 0, 0);
  context.fillStyle = PAPER; // an opaque PNG: no transparency for the server to guess about
  context.fillRect(0, 0, SIDE, SIDE);
  context.lineWidth = SIDE / 14; // about an MNIST stroke once the digit is scaled to 20 px
  context.lineCap = "round";
  context.lineJoin = "round";
  context.strokeStyle = INK;
  context.fillStyle = INK;
  for (const points of input.strokes) {
    context.beginPath();
    if (points.length === 1) {
      context.arc(...points[0], context.lineWidth / 2, 0, 2 * Math.PI); // a tap: a dot
      context.fill();
    } else {
      context.moveTo(...points[0]);
      for (const point of points.slice(1)) context.lineTo(...point);
      context.stroke(); // one path per stroke: its edges smooth, not a string of overlapping caps
    }
  }
}

function padPoint(event) {
  const rect = pad.getBoundingClientRect();
  return [
    ((event.clientX - rect.left) * SIDE) / rect.width,
    ((event.clientY - rect.top) * SIDE) / rect.height,
  ];
}

pad.addEventListener("pointerdown", (event) => {
  if (input.pointerId !== null || event.button !== 0) return; // one finger draws; no eraser
  event.preventDefault();
  pad.setPointerCapture(event.pointerId);
  input.pointerId = event.pointerId;
  input.strokes.push([padPoint(event)]);
  redraw();
  changed();
});

pad.addEventListener("pointermove", (event) => {
  if (event.pointerId !== input.pointerId) return;
  const stroke = input.strokes[input.strokes.length - 1];
  const moves = event.getCoalescedEvents ? event.getCoalescedEvents() : [];
  for (const move of moves.length ? moves : [event]) stroke.push(padPoint(move));
  redraw(); // a few strokes of a few hundred points: a whole repaint costs well under a frame
  changed();
});

function endStroke(event) {
  if (event.pointerId !== input.pointerId) return;
  input.pointerId = null;
  predictNow();
}

pad.addEventListener("pointerup", endStroke);
pad.addEventListener("pointercancel", endStroke);
pad.addEventListener("lostpointercapture", endStroke);

function undo() {
  if (input.photo || !input.strokes.length) return;
  input.strokes.pop();
  input.pointerId = null;
  redraw();
  changed({ now: true });
}

function clear() {
  input.strokes = [];
  input.pointerId = null;
  dropPhoto();
  redraw();
  replaced();
}

$("undo").addEventListener("click", undo);
$("clear").addEventListener("click", clear);
document.addEventListener("keydown", (event) => {
  const typing = event.target instanceof HTMLInputElement && event.target.type !== "checkbox";
  if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "z" && !typing) {
    event.preventDefault();
    undo();
  }
});

// ---- photos: the file input, and drops anywhere on the page -----------------------------------

function usePhoto(file) {
  if (file.type && !file.type.startsWith("image/")) {
    showError(`${file.name} is ${file.type}, not an image; choose a photo (PNG, JPEG, …)`);
    return;
  }
  dropPhoto();
  input.photo = file;
  input.photoUrl = URL.createObjectURL(file);
  photo.src = input.photoUrl;
  photo.hidden = false;
  pad.hidden = true;
  input.strokes = [];
  redraw();
  selected = 0;
  statusLine.textContent = "Reading the photo…";
  replaced({ now: true });
}

function dropPhoto() {
  if (input.photoUrl) URL.revokeObjectURL(input.photoUrl);
  input.photo = input.photoUrl = null;
  photo.removeAttribute("src");
  photo.hidden = true;
  pad.hidden = false;
  fitPad();
}

upload.addEventListener("change", () => {
  if (upload.files.length) usePhoto(upload.files[0]);
  upload.value = ""; // choosing the same file again is a change too
});

photo.addEventListener("load", renderBoxes); // boxes need the photo's size

const carriesFiles = (event) => event.dataTransfer && [...event.dataTransfer.types].includes("Files");

document.addEventListener("dragover", (event) => {
  if (!carriesFiles(event)) return;
  event.preventDefault(); // without it the browser opens the file in place of the page
  event.dataTransfer.dropEffect = "copy";
  stage.classList.add("dragging");
});

document.addEventListener("dragleave", (event) => {
  if (!event.relatedTarget) stage.classList.remove("dragging"); // left the window
});

document.addEventListener("drop", (event) => {
  if (!carriesFiles(event)) return;
  event.preventDefault();
  stage.classList.remove("dragging");
  const files = [...event.dataTransfer.files];
  const image = files.find((file) => file.type.startsWith("image/")) || files[0];
  if (image) usePhoto(image);
  else showError("Drop an image file (a PNG or JPEG photo) to read it");
});

multi.addEventListener("change", () => {
  selected = 0;
  replaced({ now: true });
});

// ---- requests --------------------------------------------------------------------------------

const isEmpty = () => !input.photo && input.strokes.length === 0;

function changed({ now = false } = {}) {
  requests.version += 1;
  taught.textContent = ""; // about the input before: an answer to this one may come after a tap
  undoButton.disabled = Boolean(input.photo) || input.strokes.length === 0;
  clearTimeout(requests.timer);
  requests.timer = 0;
  if (isEmpty()) {
    showEmpty();
  } else if (now) {
    predictNow();
  } else {
    statusLine.dataset.state = "busy";
    requests.timer = setTimeout(predictNow, DEBOUNCE_MS);
  }
}

function replaced(options) {
  requests.epoch += 1;
  changed(options);
}

async function predictNow() {
  clearTimeout(requests.timer);
  requests.timer = 0;
  if (requests.inFlight || requests.shown === requests.version) return;
  if (isEmpty()) {
    showEmpty();
    return;
  }
  const { version, epoch } = requests;
  requests.inFlight = true;
  statusLine.dataset.state = "busy";
  try {
    const result = await postImage(currentImage(), multi.checked);
    if (epoch === requests.epoch) show(version, () => showAnswer(result));
  } catch (error) {
    if (epoch === requests.epoch) show(version, () => showError(error.message));
  } finally {
    requests.inFlight = false;
  }
  // Whatever changed while that request was out goes now, unless a debounce is still waiting.
  if (requests.shown !== requests.version && !requests.timer) predictNow();
}

function show(version, render) {
  render();
  requests.shown = version;
  if (version !== requests.version) statusLine.dataset.state = "busy"; // a newer one is coming
}

// The drawing as a SIDE × SIDE PNG. Encoded at once: Chromium runs `toBlob` as an idle task,
// which can wait a whole second when the page is busy, too slow for predicting as one draws.
function currentImage() {
  if (input.photo) return { blob: input.photo, name: input.photo.name || "photo" };
  paint(exported.getContext("2d"), 1);
  const base64 = exported.toDataURL("image/png").split(",")[1];
  const bytes = Uint8Array.from(atob(base64), (char) => char.charCodeAt(0));
  return { blob: new Blob([bytes], { type: "image/png" }), name: "drawing.png" };
}

function predictUrl(several) {
  const query = new URLSearchParams({ explain: "1" });
  if (several) query.set("multi", "1");
  const profile = profileInput.value.trim();
  if (profile) query.set("profile", profile);
  return `${PREDICT_URL}?${query}`;
}

async function postImage({ blob, name }, several) {
  const form = new FormData();
  form.append("image", blob, name);
  let response;
  try {
    response = await fetch(predictUrl(several), { method: "POST", body: form });
  } catch (error) {
    throw new Error(`Could not reach the server (${error.message}). Is it still running?`);
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    // not JSON: the status line below says what happened
  }
  if (!response.ok) {
    const why = body && typeof body.error === "string" ? body.error : response.statusText;
    throw new Error(`${why || "request failed"} (HTTP ${response.status})`);
  }
  if (!body || !Array.isArray(body.probabilities) || body.probabilities.length !== 10) {
    throw new Error("The server's answer is not a prediction (no ten probabilities in it)");
  }
  return body;
}

// ---- showing answers -------------------------------------------------------------------------

const percent = (p) => `${Math.round(p * 100)}%`;

function showEmpty() {
  clearTimeout(requests.timer);
  requests.timer = 0;
  requests.shown = requests.version;
  resetResult();
  statusLine.textContent = EMPTY_MESSAGE;
  statusLine.dataset.state = "empty";
}

function showError(message) {
  resetResult();
  statusLine.textContent = `Error: ${message}`;
  statusLine.dataset.state = "error";
}

function resetResult() {
  answer = null;
  shown = null;
  why.hidden = true;
  teach.hidden = true;
  digitText.textContent = "";
  digitText.classList.remove("uncertain");
  confidenceText.textContent = "";
  for (const bar of bars.children) setBar(bar, 0, false);
  drawSeen(null);
  numberRow.hidden = true;
  numberText.textContent = "";
  chips.replaceChildren();
  boxes.replaceChildren();
}

function showAnswer(result) {
  answer = result;
  const digits = Array.isArray(result.digits) ? result.digits : null;
  numberRow.hidden = digits === null;
  numberText.textContent = digits ? result.number || "" : "";
  if (!digits || selected >= digits.length) selected = 0;
  renderChips();
  renderBoxes();
  showDigit(digits && digits.length ? digits[selected] : result);
  statusLine.textContent = summary(result, digits);
  statusLine.dataset.state = "done";
}

function summary(result, digits) {
  // #confidence already says "Not sure"; this says why, and what to do.
  if (result.reason === "no ink") {
    return input.photo ? "No ink found in the photo: try a closer, sharper one." : "Draw a digit: no ink found.";
  }
  if (result.uncertain) {
    return digits && digits.length > 1
      ? "Some digits are unclear (dashed boxes): write them apart and clearly."
      : "This may not be a digit, or it is unclear: the best guess is shown.";
  }
  if (digits) {
    const pick = digits.length > 1 ? " Pick a digit to see its probabilities." : "";
    return `Read the number ${result.number}.${pick}`;
  }
  return `Looks like ${withArticle(result.digit)}.`;
}

// "a 7", "an 8", "an 11", "an 18", "an 80", "an 11000": "an" where the number is said starting
// with a vowel (eight, eleven, eighteen, eighty…, eleven thousand…).
function withArticle(number) {
  const digits = String(number);
  const leading = digits.length % 3 === 2 ? digits.slice(0, 2) : ""; // "11 000" is eleven thousand
  const vowel = digits.startsWith("8") || leading === "11" || leading === "18";
  return `${vowel ? "an" : "a"} ${digits}`;
}

function showDigit(prediction) {
  const noInk = prediction.reason === "no ink";
  digitText.textContent = noInk ? "?" : String(prediction.digit);
  digitText.classList.toggle("uncertain", Boolean(prediction.uncertain));
  const sure = percent(prediction.confidence);
  confidenceText.textContent = noInk ? "Not sure" : prediction.uncertain ? `Not sure · ${sure}` : `${sure} sure`;
  prediction.probabilities.forEach((p, digit) => {
    setBar(bars.querySelector(`[data-digit="${digit}"]`), p, !noInk && digit === prediction.digit);
  });
  drawSeen(prediction.image);
  shown = noInk ? null : prediction;
  teach.hidden = noInk;
  rightButton.textContent = `Right: ${prediction.digit}`;
  drawWhy(noInk ? null : prediction);
}

function setBar(bar, probability, top) {
  bar.style.width = `${(probability * 100).toFixed(1)}%`;
  bar.dataset.pct = percent(probability);
  bar.classList.toggle("top", top);
  bar.setAttribute("aria-label", `${bar.dataset.digit}: ${percent(probability)}`);
}

function drawSeen(image) {
  const context = seen.getContext("2d");
  const pixels = context.createImageData(seen.width, seen.height);
  for (let y = 0; y < seen.height; y++) {
    for (let x = 0; x < seen.width; x++) {
      const value = image ? Math.round(Math.min(Math.max(image[y][x], 0), 1) * 255) : 0;
      pixels.data.set([value, value, value, 255], (y * seen.width + x) * 4);
    }
  }
  context.putImageData(pixels, 0, 0);
}

// The saliency over the digit, as `digitrec.explanation.overlay_png` draws it, and training digits
// most like it: two of the answer, two of the runner-up (orange frames).
function drawWhy(prediction) {
  const explanation = prediction && prediction.explanation;
  why.hidden = !explanation;
  if (!explanation) return;
  const context = saliencyCanvas.getContext("2d");
  const pixels = context.createImageData(28, 28);
  for (let y = 0; y < 28; y++) {
    for (let x = 0; x < 28; x++) {
      const grey = Math.min(Math.max(prediction.image[y][x], 0), 1) * 255;
      const alpha = explanation.saliency[y][x] * 0.8;
      const rgb = WARM.map((warm) => Math.round(grey * (1 - alpha) + warm * alpha));
      pixels.data.set([...rgb, 255], (y * 28 + x) * 4);
    }
  }
  context.putImageData(pixels, 0, 0);
  const examples = [
    ...explanation.nearest.map((e) => [e, "answer"]),
    ...explanation.nearest_runner_up.map((e) => [e, "runner-up"]),
  ];
  nearest.replaceChildren(
    ...examples.map(([example, kind]) => {
      const canvas = Object.assign(document.createElement("canvas"), { width: 28, height: 28, className: kind });
      const image = canvas.getContext("2d").createImageData(28, 28);
      example.pixels.flat().forEach((value, i) => image.data.set([value, value, value, 255], i * 4));
      canvas.getContext("2d").putImageData(image, 0, 0);
      canvas.setAttribute("role", "img");
      canvas.setAttribute("aria-label", `a training ${kind === "answer" ? explanation.digit : explanation.runner_up}`);
      return canvas;
    }),
  );
  nearestCaption.textContent =
    `Training digits most like it: ${explanation.digit}s, and ${explanation.runner_up}s ` +
    "(orange frames), its second guess.";
}

// ---- corrections -----------------------------------------------------------------------------

async function sendCorrection(label) {
  const prediction = shown;
  if (!prediction) return;
  const profile = profileInput.value.trim() || "me";
  taught.dataset.state = "busy";
  taught.textContent = "Saving…";
  try {
    const body = JSON.stringify({
      image: prediction.image,
      label,
      profile,
      predicted: prediction.digit,
      source: "page",
    });
    const response = await fetch(FEEDBACK_URL, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body,
    });
    const kept = await response.json().catch(() => null);
    if (!response.ok) throw new Error((kept && kept.error) || `HTTP ${response.status}`);
    const what = label === prediction.digit ? `Kept as a right ${label}` : `Kept: it is ${withArticle(label)}`;
    const learning = kept.adapting ? " Learning your handwriting in the background…" : "";
    taught.textContent = `${what}, for profile “${kept.profile}” (${kept.corrections} so far).${learning}`;
    taught.dataset.state = "done";
  } catch (error) {
    taught.textContent = `Not saved: ${error.message}`;
    taught.dataset.state = "error";
  }
}

for (let digit = 0; digit <= 9; digit++) {
  const button = Object.assign(document.createElement("button"), { type: "button", textContent: String(digit) });
  button.setAttribute("aria-label", `It is ${withArticle(digit)}`);
  button.addEventListener("click", () => sendCorrection(digit));
  fix.append(button);
}
rightButton.addEventListener("click", () => shown && sendCorrection(shown.digit));
profileInput.value = localStorage.getItem(PROFILE_KEY) || "me";
profileInput.addEventListener("change", () => {
  localStorage.setItem(PROFILE_KEY, profileInput.value.trim());
  replaced({ now: true }); // read again with this profile's model
});

function renderChips() {
  const digits = answer && answer.digits;
  chips.replaceChildren();
  if (!digits || digits.length < 2) return;
  digits.forEach((prediction, i) => {
    const chip = document.createElement("button");
    chip.type = "button";
    chip.textContent = prediction.reason === "no ink" ? "?" : String(prediction.digit);
    chip.setAttribute("aria-pressed", String(i === selected));
    chip.setAttribute("aria-label", `digit ${i + 1} of ${digits.length}: ${chip.textContent}`);
    chip.addEventListener("click", () => {
      selected = i;
      renderChips();
      renderBoxes();
      showDigit(digits[i]);
    });
    chips.append(chip);
  });
}

// Each digit's box, from the image's pixels to the stage, where the image is fitted ("contain").
function renderBoxes() {
  boxes.replaceChildren();
  const digits = answer && answer.digits;
  if (!digits || !digits.length) return;
  const [width, height] = input.photo ? [photo.naturalWidth, photo.naturalHeight] : [SIDE, SIDE];
  if (!width || !height) return; // the photo has not loaded yet: its load event comes back here
  const scale = Math.min(boxes.clientWidth / width, boxes.clientHeight / height);
  const left = (boxes.clientWidth - width * scale) / 2;
  const top = (boxes.clientHeight - height * scale) / 2;
  digits.forEach((prediction, i) => {
    if (!prediction.box) return;
    const [l, t, r, b] = prediction.box;
    const box = document.createElement("div");
    box.className = "box";
    box.classList.toggle("uncertain", Boolean(prediction.uncertain));
    box.classList.toggle("selected", digits.length > 1 && i === selected);
    box.classList.toggle("label-inside", top + t * scale < 24); // no room above: label inside
    const margin = 3; // CSS pixels, so the border does not cover the ink
    Object.assign(box.style, {
      left: `${left + l * scale - margin}px`,
      top: `${top + t * scale - margin}px`,
      width: `${(r - l) * scale + 2 * margin}px`,
      height: `${(b - t) * scale + 2 * margin}px`,
    });
    const label = document.createElement("span");
    label.className = "box-label";
    label.textContent = prediction.reason === "no ink" ? "?" : String(prediction.digit);
    box.append(label);
    boxes.append(box);
  });
}

window.addEventListener("resize", () => {
  fitPad();
  renderBoxes();
});

if (!fitPad()) redraw();
showEmpty();
