// The service's page: a file's transcript with word timings, and live text from the microphone.
// Plain JavaScript modules, no build step; it talks to the same API as every other client.

const $ = (id) => document.getElementById(id);
const apiKey = () => $("api-key").value.trim();

function setStatus(message, isError = false) {
  $("status").textContent = message;
  $("status").classList.toggle("error", isError);
}

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
  setStatus(`Transcribing ${file.name}…`);
  const body = new FormData();
  body.append("file", file);
  const headers = apiKey() ? { Authorization: `Bearer ${apiKey()}` } : {};
  let response;
  try {
    response = await fetch("/v1/transcribe", { method: "POST", body, headers });
  } catch (error) {
    setStatus(`The server could not be reached (${error.message}).`, true);
    return;
  }
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) {
    setStatus(answer.error?.message ?? `The server answered ${response.status}.`, true);
    return;
  }
  result = answer;
  showWords(answer.words);
  setStatus(`${file.name}: ${answer.duration.toFixed(1)} s of audio, transcribed in ${answer.processing_seconds.toFixed(2)} s.`);
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

const live = { audio: null, socket: null, running: false, retry: 1 };

async function startMicrophone() {
  if (!window.isSecureContext) {
    setStatus("Browsers give the microphone only to secure pages: open this one over HTTPS, or on localhost.", true);
    return;
  }
  let media;
  try {
    media = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1 } });
  } catch (error) {
    const denied = error.name === "NotAllowedError" || error.name === "SecurityError";
    setStatus(
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
  socket.onopen = () => {
    live.retry = 1;
    socket.send(JSON.stringify({ config: { sample_rate: live.audio.context.sampleRate, encoding: "pcm_f32le" } }));
    setStatus("Listening.");
  };
  socket.onmessage = ({ data }) => {
    const reply = JSON.parse(data);
    if (reply.error) {
      setStatus(reply.error, true);
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
    if (live.socket !== socket || !live.running) return;
    const wait = live.retry;
    live.retry = Math.min(live.retry * 2, 16);
    setStatus(`The connection was lost (${event.code || "no code"}); reconnecting in ${wait} s…`, true);
    setTimeout(() => live.running && connect(), wait * 1000);
  };
}

function stopMicrophone() {
  live.running = false;
  const socket = live.socket;
  live.socket = null;
  if (socket?.readyState === WebSocket.OPEN) socket.send('{"eof" : 1}');  // the open utterance's result, then close
  live.audio?.media.getTracks().forEach((track) => track.stop());
  live.audio?.context.close();
  live.audio = null;
  $("level").value = 0;
  $("mic").textContent = "Start the microphone";
  $("mic").setAttribute("aria-pressed", "false");
  setStatus("Stopped.");
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
