// The service's page: a file's transcript with word timings, and live text from the microphone.
// Plain JavaScript modules, no build step; it talks to the same API as every other client.

const $ = (id) => document.getElementById(id);
const apiKey = () => $("api-key").value.trim();

// Each section has its own status line, beside its controls.
function setStatus(where, message, isError = false) {
  $(where).textContent = message;
  $(where).classList.toggle("error", isError);
}
const fileStatus = (message, isError) => setStatus("file-status", message, isError);
const liveStatus = (message, isError) => setStatus("live-status", message, isError);

// ---- Files -------------------------------------------------------------------------------

let result = null;
let fileName = "transcript";

async function transcribe(file) {
  fileName = file.name.replace(/\.[^.]*$/, "") || "transcript";
  const player = $("player");
  URL.revokeObjectURL(player.src);
  player.src = URL.createObjectURL(file);
  player.hidden = false;
  $("transcript").replaceChildren();
  $("downloads").hidden = true;
  $("transcript-help").hidden = true;
  fileStatus(`Transcribing ${file.name}…`);
  const body = new FormData();
  body.append("file", file);
  const headers = apiKey() ? { Authorization: `Bearer ${apiKey()}` } : {};
  let response;
  try {
    response = await fetch("/v1/transcribe", { method: "POST", body, headers });
  } catch (error) {
    refused(`The server could not be reached (${error.message}).`);
    return;
  }
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) {
    refused(answer.error?.message ?? `The server answered ${response.status}.`);
    return;
  }
  result = answer;
  showWords(answer.words);
  const timing = `${answer.duration.toFixed(1)} s of audio, transcribed in ${answer.processing_seconds.toFixed(2)} s`;
  fileStatus(answer.words.length ? `${file.name}: ${timing}.` : `${file.name}: no speech found in ${timing}.`);
}

function refused(message) {
  const player = $("player");
  player.hidden = true;
  player.removeAttribute("src");
  fileStatus(message, true);
}

function showWords(words) {
  const box = $("transcript");
  box.replaceChildren();
  words.forEach((word, index) => {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "word";
    button.textContent = word.word;
    button.dataset.index = index;
    button.title = `${word.start.toFixed(2)} s, ${Math.round(word.confidence * 100)}% sure`;
    button.classList.toggle("doubtful", word.confidence < 0.5);
    button.addEventListener("click", () => {
      $("player").currentTime = word.start;
      $("player").play().catch(() => {});
    });
    box.append(button, " ");
  });
  $("downloads").hidden = words.length === 0;
  $("transcript-help").hidden = words.length === 0;
}

function highlight() {
  if (!result) return;
  const time = $("player").currentTime;
  const current = result.words.findIndex((w) => w.start <= time && time < w.end);
  for (const button of $("transcript").querySelectorAll(".word")) {
    const on = Number(button.dataset.index) === current;
    if (on !== (button.getAttribute("aria-current") === "true")) button.setAttribute("aria-current", String(on));
  }
}

function clock(seconds, separator) {
  const ms = Math.round(seconds * 1000);
  const pad = (n, width = 2) => String(n).padStart(width, "0");
  return `${pad(Math.floor(ms / 3600000))}:${pad(Math.floor(ms / 60000) % 60)}:${pad(Math.floor(ms / 1000) % 60)}${separator}${pad(ms % 1000, 3)}`;
}

const FORMATS = {
  txt: (r) => `${r.text}\n`,
  srt: (r) => r.segments.map((s, i) => `${i + 1}\n${clock(s.start, ",")} --> ${clock(s.end, ",")}\n${s.text}\n\n`).join(""),
  vtt: (r) => "WEBVTT\n\n" + r.segments.map((s) => `${clock(s.start, ".")} --> ${clock(s.end, ".")}\n${s.text}\n\n`).join(""),
};

function download(format) {
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([FORMATS[format](result)], { type: "text/plain" }));
  link.download = `${fileName}.${format}`;
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
}

// ---- Microphone ---------------------------------------------------------------------------

const live = { audio: null, socket: null, running: false, retry: 1, healthy: null };

// What a close code means for the person at the microphone; the server's own message, when it sent one, comes first.
const CLOSED = {
  1000: "the stream ended",
  1001: "the server is shutting down",
  1003: "the server did not understand a message",
  1006: "the connection dropped",
  1007: "the server refused the audio settings",
  1008: "the server refused the API key",
  1009: "a message was too large for the server",
  1011: "recognition failed on the server",
  1012: "the server is restarting",
  1013: "the server is busy or still loading",
};
// Codes a retry cannot fix: the microphone stops and the page says what to do.
const FINAL = {
  1003: "Reload the page.",
  1007: "Reload the page.",
  1008: "Enter the server's key under \u201cAPI key\u201d above, then start the microphone again.",
};
const HEALTHY_SECONDS = 10;  // a connection that lasts this long resets the backoff

async function startMicrophone() {
  if (!window.isSecureContext) {
    liveStatus("Browsers give the microphone only to secure pages: open this one over HTTPS, or on localhost.", true);
    return;
  }
  let media;
  try {
    media = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1 } });
  } catch (error) {
    const denied = error.name === "NotAllowedError" || error.name === "SecurityError";
    liveStatus(
      denied
        ? "Microphone access was denied. Allow it for this site in the browser's settings, then try again."
        : `No microphone could be opened (${error.name}).`,
      true,
    );
    return;
  }
  const context = new AudioContext();
  context.resume();  // a context may start suspended; not awaited: with no audio output it never resumes
  await context.audioWorklet.addModule("/static/pcm-worklet.js");
  const capture = new AudioWorkletNode(context, "pcm-capture");
  context.createMediaStreamSource(media).connect(capture);
  capture.port.onmessage = ({ data }) => {
    const samples = new Float32Array(data);
    const rms = Math.sqrt(samples.reduce((sum, x) => sum + x * x, 0) / samples.length);
    $("level").value = Math.min(1, Math.max(0, (20 * Math.log10(rms + 1e-9) + 60) / 60));
    if (live.socket?.readyState === WebSocket.OPEN) live.socket.send(data);
  };
  live.audio = { media, context };
  live.running = true;
  $("mic").textContent = "Stop the microphone";
  $("mic").setAttribute("aria-pressed", "true");
  connect();
}

function connect() {
  const url = new URL("/v1/stream", location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  if (apiKey()) url.searchParams.set("api_key", apiKey());
  const socket = new WebSocket(url);
  socket.binaryType = "arraybuffer";
  live.socket = socket;
  let said = "";  // the server's error message, if it sent one before closing
  socket.onopen = () => {
    socket.send(JSON.stringify({ config: { sample_rate: live.audio.context.sampleRate, encoding: "pcm_f32le" } }));
    live.healthy = setTimeout(() => (live.retry = 1), HEALTHY_SECONDS * 1000);
    liveStatus("Listening.");
  };
  socket.onmessage = ({ data }) => {
    const reply = JSON.parse(data);
    if (reply.error) {
      said = reply.error;
      liveStatus(said, true);
    } else if (reply.partial !== undefined) {
      $("partial").textContent = reply.partial;
    } else if (reply.text) {
      const line = document.createElement("li");
      line.textContent = reply.text;
      $("finals").append(line);
      $("partial").textContent = "";
    }
  };
  socket.onclose = (event) => {
    clearTimeout(live.healthy);
    if (live.socket !== socket || !live.running) return;
    const meaning = CLOSED[event.code] ?? `close code ${event.code}`;
    const why = said ? `The server said: ${said.replace(/\.?$/, ".")}` : `The connection was lost: ${meaning}.`;
    if (FINAL[event.code]) {
      stopMicrophone(`${why} ${FINAL[event.code]}`);
      return;
    }
    const wait = live.retry;
    live.retry = Math.min(live.retry * 2, 16);
    liveStatus(`${why} Reconnecting in ${wait} s…`, true);
    setTimeout(() => live.running && connect(), wait * 1000);
  };
}

function stopMicrophone(reason = null) {
  live.running = false;
  live.retry = 1;
  const socket = live.socket;
  live.socket = null;
  if (socket?.readyState === WebSocket.OPEN) socket.send('{"eof" : 1}');  // the open utterance's result, then close
  live.audio?.media.getTracks().forEach((track) => track.stop());
  live.audio?.context.close();
  live.audio = null;
  $("level").value = 0;
  $("mic").textContent = "Start the microphone";
  $("mic").setAttribute("aria-pressed", "false");
  if (reason) liveStatus(reason, true);
  else liveStatus("Stopped.");
}

// ---- Wiring -------------------------------------------------------------------------------

$("api-key").value = localStorage.getItem("asr-api-key") ?? "";
$("api-key").addEventListener("change", () => localStorage.setItem("asr-api-key", apiKey()));
$("key-form").addEventListener("submit", (event) => event.preventDefault());
$("file").addEventListener("change", (event) => event.target.files[0] && transcribe(event.target.files[0]));
const drop = $("drop");
drop.addEventListener("dragover", (event) => {
  event.preventDefault();
  drop.classList.add("over");
});
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  if (event.dataTransfer.files[0]) transcribe(event.dataTransfer.files[0]);
});
$("player").addEventListener("timeupdate", highlight);
$("downloads").addEventListener("click", (event) => event.target.dataset.format && download(event.target.dataset.format));
$("mic").addEventListener("click", () => (live.running ? stopMicrophone() : startMicrophone()));
