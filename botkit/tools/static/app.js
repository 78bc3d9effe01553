// botkit dev: renders the state the server sends; every change arrives over server-sent events.
"use strict";

let current = localStorage.getItem("botkit-dev-user") || "";
let snapshot = null;

const $ = (id) => document.getElementById(id);

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  Object.assign(node, props || {});
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

function clockText(at) {
  return new Date(at * 1000).toLocaleString([], { weekday: "short", day: "numeric", month: "short",
                                                 hour: "2-digit", minute: "2-digit" });
}

// a bubble's time, as WhatsApp shows it ("21:44"); the day goes in a separator above the
// first bubble of each day
function bubbleTime(at) {
  return new Date(at * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
}

function dayText(at) {
  return new Date(at * 1000).toLocaleDateString([], { weekday: "long", day: "numeric", month: "long", year: "numeric" });
}

async function api(path, body) {
  const user = encodeURIComponent(current);
  const url = `${path}?user=${user}`;
  const options = body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  };
  const response = await fetch(url, options);
  const answer = await response.json();
  if (!response.ok) {
    showError(answer.error || `HTTP ${response.status}`);
    return null;
  }
  showError("");
  render(answer);
  return answer;
}

function userPath(action) {
  return `/api/users/${encodeURIComponent(current)}/${action}`;
}

function showError(text) {
  $("error").textContent = text;
  $("error").classList.toggle("hidden", !text);
}

// --- the chat ---

function interactiveBubble(item, part) {
  const bubble = el("div", { className: "bubble from-bot" });
  if (part.header && part.header.text) bubble.append(el("div", { className: "header", textContent: part.header.text }));
  bubble.append(el("div", { className: "body", textContent: (part.body || {}).text || "" }));
  if (part.footer && part.footer.text) bubble.append(el("div", { className: "footer", textContent: part.footer.text }));
  bubble.append(el("div", { className: "time", textContent: bubbleTime(item.at) }));
  const actions = el("div", { className: "actions" });
  const action = part.action || {};
  if (part.type === "button") {
    for (const button of action.buttons || []) {
      const reply = button.reply || {};
      const tap = el("button", { type: "button", className: "reply-button", textContent: reply.title });
      tap.dataset.id = reply.id;
      tap.onclick = () => api(userPath("tap"), { message_id: item.message_id, id: reply.id });
      actions.append(tap);
    }
  } else if (part.type === "list") {
    const open = el("button", { type: "button", className: "list-button", textContent: `☰ ${action.button || "Ver"}` });
    open.onclick = () => openSheet(item, part);
    actions.append(open);
  }
  return [bubble, actions.childElementCount ? actions : null];
}

function openSheet(item, part) {
  const action = part.action || {};
  $("sheet-title").textContent = action.button || "";
  const body = $("sheet-body");
  body.replaceChildren();
  for (const section of action.sections || []) {
    if (section.title) body.append(el("h3", { textContent: section.title }));
    for (const row of section.rows || []) {
      const pick = el("button", { type: "button", className: "sheet-row" },
        el("span", { className: "row-title", textContent: row.title }),
        row.description ? el("span", { className: "desc", textContent: row.description }) : null);
      pick.dataset.id = row.id;
      pick.onclick = () => {
        closeSheet();
        api(userPath("pick"), { message_id: item.message_id, id: row.id });
      };
      body.append(pick);
    }
  }
  $("sheet").classList.remove("hidden");
}

function closeSheet() {
  $("sheet").classList.add("hidden");
}

// a template as the user reads it: the wording the bot declares (TemplateSpec), else its
// parameters; its quick-reply buttons by their texts
function templateBubble(item, part) {
  const shown = item.template || { header: null, text: "", buttons: [], declared: false };
  const bubble = el("div", { className: "bubble from-bot template" });
  bubble.append(el("div", { className: "kind", textContent: `template · ${part.name} · ${(part.language || {}).code || ""}` }));
  if (shown.header) bubble.append(el("div", { className: "header", textContent: shown.header }));
  if (shown.declared) {
    bubble.append(el("div", { className: "body", textContent: shown.text }));
  } else {
    for (const component of part.components || []) {
      if (component.type !== "body" && component.type !== "header") continue;
      const list = el("ol", { className: "params" });
      for (const param of component.parameters || []) list.append(el("li", { textContent: paramText(param) }));
      bubble.append(el("div", { className: "tag", textContent: component.type }), list);
    }
  }
  bubble.append(el("div", { className: "time", textContent: bubbleTime(item.at) }));
  const actions = el("div", { className: "actions" });
  for (const button of shown.buttons) {
    const tap = el("button", { type: "button", className: "quick-reply", textContent: button.text });
    tap.dataset.payload = button.payload;
    tap.title = `payload: ${button.payload}`;
    tap.onclick = () => api(userPath("payload"), { payload: button.payload, message_id: item.message_id });
    actions.append(tap);
  }
  return [bubble, actions.childElementCount ? actions : null];
}

function paramText(param) {
  if (param.type === "text") return param.text;
  if (param.type === "currency") return (param.currency || {}).fallback_value;
  if (param.type === "date_time") return (param.date_time || {}).fallback_value;
  const media = param[param.type] || {};
  return `${param.type}: ${media.link || media.id || ""}`;
}

function cardBubble(item, kind, lines) {
  const bubble = el("div", { className: `bubble from-bot card ${kind}` });
  bubble.append(el("div", { className: "kind", textContent: kind }));
  for (const line of lines) if (line) bubble.append(el("div", { textContent: line }));
  bubble.append(el("div", { className: "time", textContent: bubbleTime(item.at) }));
  return [bubble, null];
}

// an image or sticker as a picture: an uploaded one from the fake provider, else its link
function pictureBubble(item, part) {
  const bubble = el("div", { className: `bubble from-bot picture ${item.type}` });
  const source = part.id ? `/api/media/${encodeURIComponent(part.id)}` : part.link;
  const image = el("img", { src: source, alt: part.caption || item.type, loading: "lazy" });
  image.onerror = () => image.replaceWith(el("div", { className: "missing", textContent: `${item.type}: ${part.link || `media id ${part.id}`} (not available)` }));
  bubble.append(image);
  if (part.caption) bubble.append(el("div", { className: "body", textContent: part.caption }));
  bubble.append(el("div", { className: "time", textContent: bubbleTime(item.at) }));
  return [bubble, null];
}

function botMessage(item) {
  const part = item.body[item.type] || {};
  switch (item.type) {
    case "text": {
      const bubble = el("div", { className: "bubble from-bot" },
        el("div", { className: "body", textContent: part.body }),
        el("div", { className: "time", textContent: bubbleTime(item.at) }));
      return [bubble, null];
    }
    case "interactive": return interactiveBubble(item, part);
    case "template": return templateBubble(item, part);
    case "location": return cardBubble(item, "location", [
      part.name, part.address, `${part.latitude}, ${part.longitude}`]);
    case "contacts": return cardBubble(item, "contacts", (item.body.contacts || []).map(
      (c) => `${(c.name || {}).formatted_name} ${((c.phones || [])[0] || {}).phone || ""}`));
    case "image":
    case "sticker": return pictureBubble(item, part);
    default: return cardBubble(item, item.type, [
      part.caption, part.filename, part.link ? part.link : `media id ${part.id}`]);
  }
}

// a person's message (a handoff): the bot's bubble, marked as theirs
function personMessage(bubble) {
  bubble.classList.replace("from-bot", "from-person");
  bubble.prepend(el("div", { className: "who", textContent: "👤 person" }));
}

function renderMessages(user) {
  const box = $("messages");
  box.replaceChildren();
  let day = null;
  for (const item of user ? user.timeline : []) {
    if (item.at !== undefined && item.at !== null && dayText(item.at) !== day) {
      day = dayText(item.at);
      box.append(el("div", { className: "day", textContent: day }));
    }
    if (item.from === "system") {
      box.append(el("div", { className: "system", textContent: item.text }));
    } else if (item.from === "user") {
      box.append(el("div", { className: `bubble from-user ${item.kind}` },
        el("div", { className: "body", textContent: item.text }),
        el("div", { className: "time", textContent: bubbleTime(item.at) })));
    } else {
      const nodes = botMessage(item);
      if (item.from === "person") personMessage(nodes[0]);
      for (const node of nodes) if (node) box.append(node);
    }
  }
  box.scrollTop = box.scrollHeight;
}

// --- the side panel ---

function renderUsers(state) {
  const select = $("user-select");
  select.replaceChildren(...state.users.map((u) => el("option", { value: u.wa_id, textContent: `${u.name} · +${u.wa_id}` })));
  select.value = current;
}

function renderTriggers(state) {
  const select = $("trigger-name");
  const names = Object.keys(state.triggers);
  if (select.dataset.names === names.join(",")) return;
  select.dataset.names = names.join(",");
  select.replaceChildren(...names.map((name) => el("option", { value: name, textContent: name })));
  fillTriggerData();
}

function fillTriggerData() {
  const keys = (snapshot && snapshot.triggers[$("trigger-name").value]) || [];
  const data = Object.fromEntries(keys.map((key) => [key, ""]));
  const box = $("trigger-data");
  box.value = JSON.stringify(data, null, 2);
  box.rows = Math.max(4, box.value.split("\n").length);  // the whole pre-filled JSON shows
}

function renderUserPanel(user) {
  $("state").textContent = user ? user.state : "";
  $("data").textContent = user ? JSON.stringify(user.data, null, 2) : "";
  const w = user ? user.window : { open: false, closes_at: null, closed_at: null };
  const detail = w.open ? `, closes at ${clockText(w.closes_at)}`
    : w.closed_at ? ` since ${clockText(w.closed_at)}${w.refused ? " (the provider refused a send)" : ""}`
    : " (the user never wrote)";
  $("window").replaceChildren(
    el("span", { className: w.open ? "open" : "closed", textContent: w.open ? "open" : "closed" }),
    document.createTextNode(detail));
  const timers = user && user.timers ? user.timers : [];
  $("timers").textContent = timers.length
    ? timers.map((t) => `${t.name} at ${clockText(t.due_at)}`).join(", ")
    : "none";
}

// the people's side: the handoff's mark, the person's answer box and the resume picker
function renderDesk(state) {
  const mark = state.user ? state.user.handoff : null;
  $("handoff-fact").textContent = mark
    ? `since ${clockText(mark.since)}: ${mark.reason || "no reason given"} (from ${mark.state})`
    : "none: the bot answers";
  $("desk-on").classList.toggle("hidden", !mark);
  $("handoff-form").classList.toggle("hidden", !!mark);
  document.body.dataset.handoff = mark ? "on" : "off";
  if (!mark) return;
  $("handoff-mark").textContent = mark.resumes_at
    ? `The bot resumes by itself in ${mark.resume_to || mark.state} at ${clockText(mark.resumes_at)} if no message passes either way.`
    : "The bot resumes when you say so.";
  const select = $("resume-state");
  if (select.dataset.states !== state.states.join(",") || select.dataset.user !== state.user.wa_id) {
    select.dataset.states = state.states.join(",");
    select.dataset.user = state.user.wa_id;
    select.replaceChildren(...state.states.map((name) => el("option", { value: name, textContent: name })));
    select.value = mark.state;
  }
}

function renderWire(user) {
  const wire = $("wire");
  wire.replaceChildren();
  for (const [index, x] of [...(user ? user.exchanges : [])].reverse().entries()) {
    const status = x.answer ? x.answer.status : "";
    const summary = el("summary", {},
      el("span", { className: `dir-${x.direction}`, textContent: x.direction === "in" ? "→ bot " : "← provider " }),
      document.createTextNode(`${x.title} `),
      el("span", { className: status >= 400 ? "status-bad" : "", textContent: status ? `${status}` : "" }));
    wire.append(el("details", { open: index === 0 }, summary,
      el("div", { className: "tag", textContent: x.direction === "in" ? "inbound" : "outbound request" }),
      el("pre", { textContent: JSON.stringify(x.payload, null, 2) }),
      x.answer ? el("div", { className: "tag", textContent: x.direction === "in" ? "webhook answer" : "provider answer" }) : null,
      x.answer ? el("pre", { textContent: JSON.stringify(x.answer.body, null, 2) }) : null));
  }
}

function render(state) {
  snapshot = state;
  if (state.user) current = state.user.wa_id;
  localStorage.setItem("botkit-dev-user", current);
  $("bot-name").textContent = state.bot;
  $("avatar").textContent = state.bot.slice(0, 1);
  $("chat-user").textContent = state.user ? `${state.user.name} · +${state.user.wa_id}` : "";
  $("clock").textContent = clockText(state.now);
  renderUsers(state);
  renderTriggers(state);
  renderMessages(state.user);
  renderUserPanel(state.user);
  renderDesk(state);
  renderWire(state.user);
  $("reload-note").textContent = state.reload_error ? `reload failed: ${state.reload_error}`
    : state.reloads ? `reloaded ${state.reloads}×` : "";
  document.body.dataset.version = state.version;
}

// --- wiring ---

$("composer").onsubmit = (event) => {
  event.preventDefault();
  const text = $("text").value.trim();
  if (!text) return;
  $("text").value = "";
  api(userPath("say"), { text });
};
$("sheet-close").onclick = closeSheet;
$("user-select").onchange = () => { current = $("user-select").value; api("/api/state"); };
$("new-user").onsubmit = async (event) => {
  event.preventDefault();
  const answer = await api("/api/users", { wa_id: $("new-wa-id").value, name: $("new-name").value });
  if (answer) {
    current = $("new-wa-id").value.replace(/^\+/, "").trim();
    $("new-wa-id").value = "";
    $("new-name").value = "";
    api("/api/state");
  }
};
$("reset").onclick = () => api(userPath("reset"), {});
$("redeliver").onclick = () => api(userPath("redeliver"), {});
for (const button of document.querySelectorAll("[data-advance]")) {
  button.onclick = () => api("/api/clock/advance", { hours: Number(button.dataset.advance) });
}
for (const button of document.querySelectorAll("[data-fail]")) {
  button.onclick = () => api("/api/provider/fail", { status: Number(button.dataset.fail) });
}
$("location-form").onsubmit = (event) => {
  event.preventDefault();
  api(userPath("location"), { latitude: Number($("latitude").value), longitude: Number($("longitude").value) });
};
$("handoff-form").onsubmit = (event) => {
  event.preventDefault();
  const minutes = Number($("handoff-timeout").value);
  const body = { reason: $("handoff-reason").value };
  if (minutes > 0) body.timeout = minutes * 60;
  api(userPath("handoff"), body);
};
$("person-form").onsubmit = (event) => {
  event.preventDefault();
  const text = $("person-text").value.trim();
  if (!text) return;
  $("person-text").value = "";
  api(userPath("person"), { text });
};
$("resume-form").onsubmit = (event) => {
  event.preventDefault();
  api(userPath("resume"), { state: $("resume-state").value });
};
$("trigger-name").onchange = fillTriggerData;
$("trigger-form").onsubmit = (event) => {
  event.preventDefault();
  let data;
  try {
    data = JSON.parse($("trigger-data").value || "{}");
  } catch (error) {
    showError(`trigger data is not JSON: ${error.message}`);
    return;
  }
  api(userPath("trigger"), { name: $("trigger-name").value, data });
};

const events = new EventSource("/api/events");
events.addEventListener("changed", () => api("/api/state"));
events.addEventListener("hello", () => api("/api/state"));
