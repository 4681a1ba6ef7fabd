/// The chat page `kosmos serve` answers `GET /` with: one self-contained HTML file (CSS and script
/// inline, nothing fetched from elsewhere) that talks to this server's own OpenAI API. Type a
/// message, attach or drop images, read the answer as it streams, stop it, see a Kosmos-2 model's
/// grounding boxes drawn over the image, and each request's timings. docs/server.md.
///
/// Hooks for tests and scripts: `window.kosmosChat.ready` (the model list has loaded), each
/// assistant message's `data-state` ("streaming", "done", "stopped", "error") and `data-deltas`
/// (the number of streamed chunks that carried text), one `.box` element per drawn box.
enum ChatPage {
    static let html = #"""
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Kosmos chat</title>
<style>
  :root { --bg: #f6f7f9; --fg: #1d2330; --muted: #6b7280; --accent: #2f5fd0; --bubble: #ffffff; --mine: #e4ecff; --border: #d9dde5; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; background: var(--bg); color: var(--fg);
         display: flex; flex-direction: column; height: 100vh; }
  header { padding: 10px 16px; border-bottom: 1px solid var(--border); display: flex; gap: 12px; align-items: center; flex-wrap: wrap; background: #fff; }
  header h1 { font-size: 16px; margin: 0 8px 0 0; }
  header label { color: var(--muted); font-size: 13px; display: flex; gap: 4px; align-items: center; }
  header input[type=number] { width: 64px; }
  header input[type=password] { width: 120px; }
  #model { font-weight: 600; color: var(--fg); }
  main { flex: 1; overflow-y: auto; padding: 16px; }
  .msg { max-width: 820px; margin: 0 auto 14px; padding: 10px 14px; border-radius: 10px; background: var(--bubble); border: 1px solid var(--border); }
  .msg.user { background: var(--mine); }
  .msg .role { font-size: 12px; color: var(--muted); margin-bottom: 4px; }
  .msg .text { white-space: pre-wrap; word-wrap: break-word; }
  .msg .timing { font-size: 12px; color: var(--muted); margin-top: 6px; }
  .msg.error .text { color: #b42318; }
  .images { display: flex; gap: 8px; flex-wrap: wrap; margin-bottom: 6px; }
  .figure { position: relative; display: inline-block; }
  .figure img { max-width: 320px; max-height: 240px; display: block; border-radius: 6px; }
  .box { position: absolute; border: 2px solid #e8590c; border-radius: 2px; pointer-events: none; }
  .box span { position: absolute; left: -2px; top: -20px; background: #e8590c; color: #fff; font-size: 11px; padding: 1px 4px; border-radius: 3px; white-space: nowrap; }
  footer { border-top: 1px solid var(--border); background: #fff; padding: 10px 16px; }
  #composer { max-width: 820px; margin: 0 auto; display: flex; gap: 8px; align-items: flex-end; }
  #prompt { flex: 1; min-height: 44px; max-height: 160px; resize: vertical; padding: 8px; font: inherit; border: 1px solid var(--border); border-radius: 8px; }
  button { font: inherit; padding: 8px 14px; border-radius: 8px; border: 1px solid var(--border); background: #fff; cursor: pointer; }
  button.primary { background: var(--accent); color: #fff; border-color: var(--accent); }
  button:disabled { opacity: .5; cursor: default; }
  #pending { max-width: 820px; margin: 0 auto 6px; display: flex; gap: 6px; flex-wrap: wrap; }
  #pending .thumb { position: relative; }
  #pending img { height: 56px; border-radius: 4px; display: block; }
  #pending button { position: absolute; top: -6px; right: -6px; padding: 0 5px; font-size: 12px; border-radius: 10px; }
  body.dragging main { outline: 3px dashed var(--accent); outline-offset: -8px; }
  #status { max-width: 820px; margin: 4px auto 0; font-size: 12px; color: var(--muted); min-height: 16px; }
</style>
</head>
<body>
<header>
  <h1>Kosmos</h1>
  <span id="model">…</span>
  <label>max tokens <input id="maxTokens" type="number" min="1" value="64"></label>
  <label>temperature <input id="temperature" type="number" min="0" max="2" step="0.1" value="0"></label>
  <label id="groundingLabel" hidden><input id="grounding" type="checkbox" checked> grounding</label>
  <label>API key <input id="apiKey" type="password" placeholder="(none)"></label>
  <button id="clear" type="button">New chat</button>
</header>
<main id="log"></main>
<footer>
  <div id="pending"></div>
  <div id="composer">
    <button id="attach" type="button" title="Attach images">+ image</button>
    <input id="file" type="file" accept="image/*" multiple hidden>
    <textarea id="prompt" placeholder="Message (Enter sends, Shift+Enter for a new line); drop images anywhere"></textarea>
    <button id="send" class="primary" type="button">Send</button>
    <button id="stop" type="button" disabled>Stop</button>
  </div>
  <div id="status"></div>
</footer>
<script>
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const state = { model: null, grounding: false, history: [], pending: [], controller: null };
  const chat = { ready: false, state };
  window.kosmosChat = chat;
  $("apiKey").value = localStorage.getItem("kosmos.apiKey") || "";
  $("apiKey").addEventListener("change", () => localStorage.setItem("kosmos.apiKey", $("apiKey").value));

  function headers() {
    const h = { "Content-Type": "application/json" };
    const key = $("apiKey").value.trim();
    if (key) h["Authorization"] = "Bearer " + key;
    return h;
  }
  function status(text) { $("status").textContent = text || ""; }

  async function loadModel() {
    try {
      const response = await fetch("/v1/models", { headers: headers() });
      const body = await response.json();
      if (!response.ok) throw new Error(body.error ? body.error.message : response.statusText);
      const entry = body.data[0];
      state.model = entry.id;
      state.grounding = !!(entry.kosmos && entry.kosmos.grounding);
      $("model").textContent = entry.id;
      $("groundingLabel").hidden = !state.grounding;
      chat.ready = true;
      status("");
    } catch (error) {
      status("could not list the model: " + error.message + " (an API key may be needed)");
    }
  }

  function addImages(files) {
    for (const file of files) {
      if (!file.type.startsWith("image/")) { status(file.name + " is not an image"); continue; }
      const reader = new FileReader();
      reader.onload = () => { state.pending.push({ name: file.name, url: reader.result }); drawPending(); };
      reader.readAsDataURL(file);
    }
  }
  function drawPending() {
    const box = $("pending");
    box.textContent = "";
    state.pending.forEach((image, i) => {
      const thumb = document.createElement("div");
      thumb.className = "thumb";
      const img = document.createElement("img");
      img.src = image.url; img.alt = image.name; img.title = image.name;
      const remove = document.createElement("button");
      remove.textContent = "×"; remove.title = "Remove";
      remove.onclick = () => { state.pending.splice(i, 1); drawPending(); };
      thumb.append(img, remove);
      box.append(thumb);
    });
    chat.pendingImages = state.pending.length;
  }
  $("attach").onclick = () => $("file").click();
  $("file").addEventListener("change", () => { addImages($("file").files); $("file").value = ""; });
  document.addEventListener("dragover", (e) => { e.preventDefault(); document.body.classList.add("dragging"); });
  document.addEventListener("dragleave", (e) => { if (e.target === document.documentElement || e.clientX <= 0) document.body.classList.remove("dragging"); });
  document.addEventListener("drop", (e) => { e.preventDefault(); document.body.classList.remove("dragging"); addImages(e.dataTransfer.files); });

  function bubble(role, text, images) {
    const div = document.createElement("div");
    div.className = "msg " + role;
    const who = document.createElement("div");
    who.className = "role"; who.textContent = role === "user" ? "you" : state.model || "model";
    div.append(who);
    if (images && images.length) {
      const strip = document.createElement("div");
      strip.className = "images";
      for (const image of images) {
        const figure = document.createElement("div");
        figure.className = "figure";
        const img = document.createElement("img");
        img.src = image.url; img.alt = image.name;
        figure.append(img);
        strip.append(figure);
      }
      div.append(strip);
    }
    const body = document.createElement("div");
    body.className = "text"; body.textContent = text;
    div.append(body);
    $("log").append(div);
    div.scrollIntoView({ block: "end" });
    return div;
  }

  // Boxes are normalised [x0, y0, x1, y1] over the image, drawn on the last image of the turn.
  function drawBoxes(message, entities, images) {
    if (!images.length || !entities || !entities.length) return;
    const figure = document.createElement("div");
    figure.className = "figure";
    const img = document.createElement("img");
    img.src = images[images.length - 1].url;
    figure.append(img);
    for (const entity of entities) {
      for (const [x0, y0, x1, y1] of entity.boxes) {
        const box = document.createElement("div");
        box.className = "box";
        box.style.left = (100 * x0) + "%"; box.style.top = (100 * y0) + "%";
        box.style.width = (100 * (x1 - x0)) + "%"; box.style.height = (100 * (y1 - y0)) + "%";
        const label = document.createElement("span");
        label.textContent = entity.phrase || "object";
        box.append(label);
        figure.append(box);
      }
    }
    const strip = document.createElement("div");
    strip.className = "images";
    strip.append(figure);
    message.insertBefore(strip, message.querySelector(".text"));
  }

  async function send() {
    const text = $("prompt").value.trim();
    if (state.controller || (!text && !state.pending.length) || !state.model) return;
    const images = state.pending.splice(0);
    drawPending();
    $("prompt").value = "";
    bubble("user", text, images);
    const content = images.map((image) => ({ type: "image_url", image_url: { url: image.url } }));
    if (text) content.push({ type: "text", text });
    state.history.push({ role: "user", content });
    const message = bubble("assistant", "", []);
    const out = message.querySelector(".text");
    message.dataset.state = "streaming";
    message.dataset.deltas = "0";
    const timing = document.createElement("div");
    timing.className = "timing";
    message.append(timing);

    const request = {
      model: state.model, messages: state.history, stream: true, stream_options: { include_usage: true },
      max_tokens: Math.max(1, parseInt($("maxTokens").value, 10) || 64),
      temperature: Math.max(0, parseFloat($("temperature").value) || 0),
    };
    const grounded = state.grounding && $("grounding").checked;
    if (grounded) request.grounding = true;
    const controller = new AbortController();
    state.controller = controller;
    $("send").disabled = true; $("stop").disabled = false;
    const started = performance.now();
    let first = null, answer = "", usage = null, entities = null, deltas = 0;
    try {
      const response = await fetch("/v1/chat/completions", { method: "POST", headers: headers(), body: JSON.stringify(request), signal: controller.signal });
      if (!response.ok) {
        const body = await response.json().catch(() => ({}));
        throw new Error(body.error ? body.error.message : response.status + " " + response.statusText);
      }
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const event = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          for (const line of event.split("\n")) {
            if (!line.startsWith("data: ")) continue;
            const data = line.slice(6);
            if (data === "[DONE]") continue;
            const chunk = JSON.parse(data);
            if (chunk.error) throw new Error(chunk.error.message);
            if (chunk.usage) usage = chunk.usage;
            for (const choice of chunk.choices || []) {
              const delta = choice.delta || {};
              if (delta.content) {
                if (first === null) first = performance.now();
                answer += delta.content;
                out.textContent = answer;
                deltas += 1;
                message.dataset.deltas = String(deltas);
                message.scrollIntoView({ block: "end" });
              }
              if (delta.entities) entities = delta.entities;
            }
          }
        }
      }
      message.dataset.state = "done";
    } catch (error) {
      if (error.name === "AbortError") {
        message.dataset.state = "stopped";
        timing.textContent = "stopped";
      } else {
        message.dataset.state = "error";
        message.classList.add("error");
        out.textContent = (answer ? answer + "\n" : "") + "error: " + error.message;
      }
    } finally {
      state.controller = null;
      $("send").disabled = false; $("stop").disabled = true;
    }
    if (answer) state.history.push({ role: "assistant", content: answer });
    if (grounded) drawBoxes(message, entities, images);
    const total = (performance.now() - started) / 1000;
    const parts = [];
    if (first !== null) parts.push("first token " + ((first - started) / 1000).toFixed(2) + " s");
    parts.push("total " + total.toFixed(2) + " s");
    if (usage) {
      parts.push(usage.prompt_tokens + " prompt + " + usage.completion_tokens + " new tokens");
      if (first !== null && usage.completion_tokens > 1) {
        const decode = (performance.now() - first) / 1000;
        if (decode > 0) parts.push(((usage.completion_tokens - 1) / decode).toFixed(1) + " tokens/s");
      }
    }
    if (message.dataset.state !== "stopped") timing.textContent = parts.join(" · ");
  }

  $("send").onclick = send;
  $("stop").onclick = () => { if (state.controller) state.controller.abort(); };
  $("prompt").addEventListener("keydown", (e) => { if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); send(); } });
  $("clear").onclick = () => { if (state.controller) state.controller.abort(); state.history = []; $("log").textContent = ""; };
  chat.send = send;
  loadModel();
})();
</script>
</body>
</html>
"""#
}
