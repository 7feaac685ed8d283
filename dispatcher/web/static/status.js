// The channel status page: asks /api/v1/monitor every few seconds and draws what it says.
//
// No framework and no build step: the page is served as it is, works offline on a wall screen, and
// inserts every piece of data with textContent (never innerHTML), so nothing the ledger holds (a title,
// an error from a peer) can become markup. The one piece of HTML it shows, a web article, goes into a
// sandboxed iframe's srcdoc, where it can run nothing and reach nothing.
"use strict";

const TOKEN_KEY = "dispatch.status.token";
const STATES = ["healthy", "degraded", "down", "unknown"];

let timer = null;
let zone = "UTC";
let operator = false;
let shownItem = null;

// -- small DOM words ---------------------------------------------------------------------------

function el(tag, attributes, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function $(selector) {
  return document.querySelector(selector);
}

function fill(tbody, rows, empty, columns) {
  tbody.replaceChildren(...rows);
  if (!rows.length) tbody.append(el("tr", { class: "empty" }, el("td", { colspan: columns }, empty)));
}

// -- words for numbers and times ---------------------------------------------------------------

function when(iso) {
  if (!iso) return "";
  const parts = new Intl.DateTimeFormat("en-CA", {
    timeZone: zone,
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
    hourCycle: "h23",
  }).formatToParts(new Date(iso));
  const part = Object.fromEntries(parts.map((p) => [p.type, p.value]));
  return `${part.year}-${part.month}-${part.day} ${part.hour}:${part.minute}:${part.second}`;
}

function percent(share) {
  return share === null || share === undefined ? "–" : `${(share * 100).toFixed(share === 1 ? 0 : 1)} %`;
}

function seconds(value) {
  if (value === null || value === undefined) return "–";
  if (value < 60) return `${value.toFixed(1)} s`;
  if (value < 3600) return `${(value / 60).toFixed(1)} min`;
  return `${(value / 3600).toFixed(1)} h`;
}

function timing(t) {
  return t && t.count ? `${seconds(t.median)} / ${seconds(t.p95)}` : "–";
}

function sent(view, period) {
  const outcomes = (view.outcomes && view.outcomes[period]) || {};
  const total = (outcomes.sent || 0) + (outcomes.failing || 0);
  return total ? `${percent(view.success_rate[period])} of ${total}` : "–";
}

// -- the token -----------------------------------------------------------------------------------

function token() {
  return localStorage.getItem(TOKEN_KEY);
}

function signOut(message) {
  localStorage.removeItem(TOKEN_KEY);
  clearTimeout(timer);
  $("#board").hidden = true;
  $("#sign-out").hidden = true;
  $("#user").textContent = "";
  $("#updated").textContent = "";
  $("#login").hidden = false;
  $("#login-error").textContent = message || "";
  $("#token").value = "";
  $("#token").focus();
}

async function api(path, options) {
  const response = await fetch(path, {
    ...options,
    headers: { Authorization: `Bearer ${token()}`, Accept: "application/json", ...(options || {}).headers },
    cache: "no-store",
  });
  if (response.status === 401) {
    const body = await response.json().catch(() => ({}));
    signOut(body.detail || "The token was not accepted.");
    throw new Error("signed out");
  }
  return response;
}

// -- the board -----------------------------------------------------------------------------------

function stateCell(state) {
  const known = STATES.includes(state) ? state : "unknown";
  return el("td", { class: `state state-${known}` }, el("span", { class: "dot", "aria-hidden": "true" }), state);
}

function channelRow(view, isTarget) {
  const name = isTarget ? view.target : view.channel;
  const error = view.last_error
    ? el("span", {}, el("time", { datetime: view.last_error_at }, when(view.last_error_at)), " ", view.last_error)
    : "";
  return el(
    "tr",
    {
      class: isTarget ? "target" : "channel",
      dataset: { channel: view.channel, target: isTarget ? view.target : "*" },
      title: view.detail || "",
    },
    el("th", { scope: "row" }, name),
    stateCell(view.state),
    el("td", {}, when(view.since)),
    el("td", { class: `circuit circuit-${view.circuit || "none"}` }, view.circuit || "–"),
    el("td", { class: "number waiting" }, view.waiting),
    el("td", { class: "number" }, sent(view, "hour")),
    el("td", { class: "number" }, sent(view, "day")),
    el("td", { class: "number" }, timing(view.approval_to_sent.hour)),
    el("td", { class: "number" }, timing(view.approval_to_sent.day)),
    el("td", { class: "error" }, error),
  );
}

function drawChannels(channels) {
  const rows = [];
  for (const channel of channels) {
    rows.push(channelRow(channel, false));
    for (const target of channel.targets || []) {
      // A channel that is down as a whole says nothing of its outlets: they are not shown healthy.
      const shown = channel.state === "down" ? { ...target, state: "unknown", detail: "its channel is down" } : target;
      rows.push(channelRow(shown, true));
    }
  }
  fill($("#channels tbody"), rows, "No channel is configured.", 10);
}

function redriveButton(delivery) {
  const button = el(
    "button",
    {
      type: "button",
      class: "redrive",
      dataset: { delivery: delivery.delivery },
      disabled: !operator,
      title: operator ? "Give it a fresh retry budget and send it again" : "Re-driving needs the operator role",
    },
    "Re-drive",
  );
  button.addEventListener("click", () => redrive(delivery.delivery, button));
  return button;
}

async function redrive(id, button) {
  button.disabled = true;
  button.textContent = "Re-driving…";
  try {
    const response = await api(`/api/v1/deliveries/${encodeURIComponent(id)}/redrive`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: "{}",
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      $("#problem").textContent = `Delivery ${id} was not re-driven: ${body.detail || response.statusText}`;
    }
  } finally {
    refresh();
  }
}

function drawDead(dead) {
  $("#dead-count").textContent = dead.length ? `(${dead.length})` : "";
  const rows = dead.map((d) =>
    el(
      "tr",
      { dataset: { delivery: d.delivery } },
      el("td", { class: "number" }, d.delivery),
      el("td", { class: "number" }, d.item),
      el("td", {}, `${d.channel} / ${d.target}`),
      el("td", { class: "number" }, d.attempts),
      el("td", { class: "error" }, d.last_error || ""),
      el("td", {}, when(d.at)),
      el("td", {}, redriveButton(d)),
    ),
  );
  fill($("#dead tbody"), rows, "None.", 7);
}

function drawOverdue(overdue) {
  $("#overdue-count").textContent = overdue.length ? `(${overdue.length})` : "";
  const rows = overdue.map((d) =>
    el(
      "tr",
      { class: "overdue", dataset: { delivery: d.delivery } },
      el("td", { class: "number" }, d.delivery),
      el("td", {}, `${d.item} ${d.kind}: ${d.title}`),
      el("td", {}, `${d.channel} / ${d.target}`),
      el("td", {}, d.state),
      el("td", {}, when(d.due_at)),
      el("td", { class: "number" }, seconds(d.late_seconds)),
    ),
  );
  fill($("#overdue tbody"), rows, "None.", 6);
}

function perChannel(channels) {
  const list = el("ul", { class: "per-channel" });
  for (const [channel, states] of Object.entries(channels)) {
    const counted = Object.entries(states).map(([state, count]) => `${state} ${count}`);
    list.append(el("li", { dataset: { channel } }, el("strong", {}, channel), " ", counted.join(", ")));
  }
  return list;
}

function drawItems(items) {
  const rows = items.map((item) => {
    const button = el("button", { type: "button", class: "show", dataset: { item: item.id } }, "Preview");
    button.addEventListener("click", () => showViews(item.id, item.title));
    return el(
      "tr",
      { class: item.overdue ? "overdue" : "", dataset: { item: item.id } },
      el("td", { class: "number" }, item.id),
      el("td", {}, item.kind),
      el("td", {}, item.title),
      el("td", {}, item.state + (item.overdue ? " · overdue" : "")),
      el("td", {}, perChannel(item.channels || {})),
      el("td", {}, button),
    );
  });
  fill($("#items tbody"), rows, "No item yet.", 6);
}

function draw(data) {
  zone = data.time_zone || "UTC";
  operator = (data.user.roles || []).includes("operator");
  $("#user").textContent = `${data.user.name} (${data.user.roles.join(", ")})`;
  $("#updated").textContent = `as of ${when(data.at)} ${zone}`;
  drawChannels(data.channels);
  drawDead(data.dead);
  drawOverdue(data.overdue);
  drawItems(data.items);
  $("#digest").textContent = data.digest ? data.digest.text : "No digest yet.";
}

async function refresh() {
  clearTimeout(timer);
  let wait = 5;
  try {
    const response = await api("/api/v1/monitor");
    const data = await response.json();
    if (!response.ok) throw new Error(data.detail || response.statusText);
    $("#problem").textContent = "";
    draw(data);
    wait = data.refresh_seconds || wait;
  } catch (error) {
    if (error.message === "signed out") return;
    // The server may be restarting: say so, keep the last picture, and ask again.
    $("#problem").textContent = `Not updated: ${error.message}`;
  }
  timer = setTimeout(refresh, wait * 1000);
}

// -- the preview: what each channel shows for one item -----------------------------------------

function signView(view) {
  const box = el("figure", { class: "view sign", dataset: { channel: view.channel, target: view.target } });
  box.append(
    el(
      "figcaption",
      {},
      `Sign ${view.sign}: ${view.lines} lines × ${view.chars_per_line} characters, `,
      el("span", { class: "page-count" }, `${view.pages.length} page(s)`),
      ` of at most ${view.max_pages}`,
    ),
  );
  const pages = el("div", { class: "sign-pages" });
  view.pages.forEach((page, index) => {
    const face = el("div", {
      class: "sign-page",
      title: `page ${index + 1}`,
      dataset: { page: index + 1 },
    });
    face.style.setProperty("--chars", view.chars_per_line);
    for (let line = 0; line < view.lines; line += 1) {
      face.append(el("div", { class: "sign-line" }, page[line] || "\u00a0"));
    }
    pages.append(face);
  });
  box.append(pages);
  return box;
}

function smsView(view) {
  return el(
    "figure",
    { class: "view sms", dataset: { channel: view.channel, target: view.target } },
    el("figcaption", {}, `SMS to ${view.recipients} recipient(s) (${view.target})`),
    el(
      "div",
      { class: "phone" },
      el("div", { class: "bubble" }, view.text),
      el(
        "p",
        { class: "measure" },
        el("span", { class: "segments" }, view.segments),
        ` segment(s) · ${view.encoding} · ${view.characters} characters`,
      ),
    ),
  );
}

function microblogView(view) {
  const over = view.limit !== null && view.length > view.limit;
  return el(
    "figure",
    { class: "view microblog", dataset: { channel: view.channel, target: view.target } },
    el("figcaption", {}, `Microblog post as @${view.account}`),
    el(
      "div",
      { class: "card" },
      el("p", { class: "account" }, `@${view.account}`),
      el("p", { class: "post" }, view.text),
      el("p", { class: over ? "measure over" : "measure" }, `${view.length} / ${view.limit ?? "–"} characters`),
    ),
  );
}

function websiteView(view) {
  // The article is HTML: shown in a sandboxed frame (no scripts, no forms, an origin of its own), never
  // put into this page's DOM.
  const frame = el("iframe", { sandbox: "", title: "The web article", class: "article" });
  frame.srcdoc = `<!doctype html><meta charset="utf-8"><h1>${view.title}</h1>${view.content}`;
  return el(
    "figure",
    { class: "view website", dataset: { channel: view.channel, target: view.target } },
    el("figcaption", {}, `Web article (${view.target}), slug ${view.slug}`),
    frame,
  );
}

const DRAW = { display: signView, sms: smsView, microblog: microblogView, website: websiteView };

function genericView(view) {
  return el(
    "figure",
    { class: "view", dataset: { channel: view.channel, target: view.target } },
    el("figcaption", {}, `${view.channel} / ${view.target}`),
    el("pre", {}, (view.lines || []).join("\n")),
  );
}

async function showViews(itemId, title) {
  shownItem = itemId;
  $("#preview").hidden = false;
  $("#preview-title").textContent = `item ${itemId}, ${title}`;
  $("#views").replaceChildren(el("p", {}, "Rendering…"));
  const response = await api(`/api/v1/items/${encodeURIComponent(itemId)}/views`);
  const data = await response.json();
  if (shownItem !== itemId) return; // another item was picked meanwhile
  if (!response.ok) {
    $("#views").replaceChildren(el("p", { class: "error" }, data.detail || response.statusText));
    return;
  }
  $("#preview-problems").textContent = (data.problems || []).join("; ");
  $("#views").replaceChildren(...data.views.map((view) => (DRAW[view.channel] || genericView)(view)));
}

// -- start ----------------------------------------------------------------------------------------

function open() {
  $("#login").hidden = true;
  $("#board").hidden = false;
  $("#sign-out").hidden = false;
  refresh();
}

document.addEventListener("DOMContentLoaded", () => {
  $("#login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = $("#token").value.trim();
    if (!value) return;
    localStorage.setItem(TOKEN_KEY, value);
    $("#login-error").textContent = "";
    open();
  });
  $("#sign-out").addEventListener("click", (event) => {
    event.preventDefault();
    signOut("");
  });
  if (token()) open();
  else signOut("");
});
