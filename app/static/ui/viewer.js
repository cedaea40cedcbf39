// The gensessions viewer: sessions and their events, live. Read-only; no build step.
"use strict";

const API = "/v1/products/generation/sessions";
const LIFECYCLE = ["intake", "planning", "generating", "assembling", "completed"];
const TERMINAL = ["completed", "failed", "cancelled"];
const PAGE_SIZE = 20;
const LIST_REFRESH_MS = 3000;
const KEY_STORE = "gensessions.key";

const $ = (id) => document.getElementById(id);
const state = { key: null, cursors: [null], page: 0, listTimer: null, stream: null,
                sessionId: null, lastSequence: 0, refetch: null };

// ---- the key: from #key=..., kept in this tab's sessionStorage, never in the address bar

function takeKey() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  if (fragment.has("key")) {
    sessionStorage.setItem(KEY_STORE, fragment.get("key"));
    history.replaceState(null, "", location.pathname + location.search);
  }
  return sessionStorage.getItem(KEY_STORE);
}

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: {
    Authorization: "Bearer " + state.key, ...(options.headers || {}) } });
  if (response.status === 401) {
    signOut("That key was refused (401). Sign in with another.");
    throw new Error("unauthorized");
  }
  const body = response.status === 204 ? null : await response.json();
  if (!response.ok) {
    const error = new Error((body && body.error) || response.statusText);
    error.status = response.status;
    throw error;
  }
  return body;
}

// ---- small DOM helpers (text only: nothing from the API is ever parsed as HTML)

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "text") node.textContent = value;
    else if (name === "className") node.className = value;
    else node.setAttribute(name, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function show(sectionId) {
  for (const id of ["sign-in", "list", "session"]) $(id).hidden = id !== sectionId;
  $("error").hidden = true;
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = false;
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "";
}

function statusBadge(status) {
  return element("span", { className: "status status-" + status, text: status });
}

function title(session) {
  const prd = session.prd || {};
  return prd.title || prd.name || "(untitled)";
}

// ---- routing: /ui/ and /ui/sessions/<id>, both this one page

function route() {
  stopFollowing();
  clearTimeout(state.listTimer);
  if (!state.key) {
    show("sign-in");
    $("sign-out").hidden = true;
    return;
  }
  $("sign-out").hidden = false;
  const match = location.pathname.match(/^\/ui\/sessions\/([^/]+)$/);
  if (match) openSession(decodeURIComponent(match[1]));
  else openList();
}

function go(path) {
  history.pushState(null, "", path);
  route();
}

document.addEventListener("click", (event) => {
  const link = event.target.closest("a[data-route]");
  if (link && !event.metaKey && !event.ctrlKey && !event.shiftKey && event.button === 0) {
    event.preventDefault();
    go(link.getAttribute("href"));
  }
});
window.addEventListener("popstate", route);

// ---- the list

function openList() {
  state.sessionId = null;
  show("list");
  document.title = "Sessions · gensessions";
  loadList();
}

async function loadList() {
  clearTimeout(state.listTimer);
  const query = new URLSearchParams({ limit: PAGE_SIZE });
  const status = $("status-filter").value;
  if (status) query.set("status", status);
  const cursor = state.cursors[state.page];
  if (cursor) query.set("cursor", cursor);
  try {
    const page = await api(API + "?" + query);
    renderList(page);
  } catch (error) {
    if (error.message !== "unauthorized") showError("Could not load sessions: " + error.message);
  }
  if (!$("list").hidden) state.listTimer = setTimeout(loadList, LIST_REFRESH_MS);
}

function renderList(page) {
  const rows = page.data.map((session) => element("tr", {},
    element("td", { className: "session-id" },
      element("a", { href: "/ui/sessions/" + encodeURIComponent(session.id), "data-route": "",
                     text: session.id })),
    element("td", {}, statusBadge(session.status)),
    element("td", { text: title(session) }),
    element("td", { text: when(session.updatedAt) })));
  $("rows").replaceChildren(...rows);
  $("empty").hidden = page.data.length > 0;
  $("total").textContent = page.pagination.total + " in all";
  state.cursors[state.page + 1] = page.pagination.nextCursor;
  $("next").disabled = !page.pagination.hasMore;
  $("previous").disabled = state.page === 0;
}

$("status-filter").addEventListener("change", () => {
  state.cursors = [null];
  state.page = 0;
  loadList();
});
$("next").addEventListener("click", () => { state.page += 1; loadList(); });
$("previous").addEventListener("click", () => { state.page = Math.max(0, state.page - 1); loadList(); });

// ---- one session, live

async function openSession(sessionId) {
  show("session");
  state.sessionId = sessionId;
  state.lastSequence = 0;
  $("timeline").replaceChildren();
  $("gone").hidden = true;
  try {
    const session = await api(API + "/" + encodeURIComponent(sessionId));
    if (state.sessionId !== sessionId) return;  // the person moved on meanwhile
    renderSession(session);
    for (const event of session.events) addEvent(event);
    if (!TERMINAL.includes(session.status)) follow(sessionId);
  } catch (error) {
    if (error.status === 404) showError("No such session (it may have been deleted or expired).");
    else if (error.message !== "unauthorized") showError("Could not load the session: " + error.message);
  }
}

function renderSession(session) {
  document.title = title(session) + " · gensessions";
  $("title").textContent = title(session);
  $("session-id").textContent = session.id;
  const reached = LIFECYCLE.indexOf(session.status);
  $("lifecycle").replaceChildren(...LIFECYCLE.map((step, index) => {
    let mark = reached >= 0 && index < reached ? "done" : index === reached ? "current" : "todo";
    if (reached < 0 && index === LIFECYCLE.length - 1) mark = "todo";
    return element("li", { className: "step step-" + mark, text: step });
  }));
  if (reached < 0) $("lifecycle").append(element("li", { className: "step step-current step-" + session.status, text: session.status }));
  const progress = session.assemblyState ? session.assemblyState.progress : undefined;
  const shown = typeof progress === "number" && progress >= 0;
  $("progress").hidden = !shown;
  if (shown) {
    const percent = progress <= 1 && !Number.isInteger(progress) ? progress * 100 : progress;
    $("progress-bar").value = Math.min(100, percent);
    $("progress-text").textContent = Math.round(percent) + "%";
  }
  const facts = [["Status", statusBadge(session.status)], ["Created", when(session.createdAt)],
                 ["Updated", when(session.updatedAt)], ["Expires", when(session.expiresAt)],
                 ["Catalog version", session.catalogVersion || "–"],
                 ["Schema version", session.schemaVersion || "–"]];
  $("facts").replaceChildren(...facts.flatMap(([name, value]) =>
    [element("dt", { text: name }), element("dd", {}, value)]));
  const documents = [["PRD", session.prd], ["Plan", session.plan],
                     ["Product object", session.productObject, session.productObjectHash],
                     ["Assembly state", session.assemblyState]];
  $("documents").replaceChildren(...documents.map(([name, value, hash]) =>
    jsonBlock(name, value, hash, name === "PRD")));
}

function jsonBlock(name, value, hash, open) {
  const summary = element("summary", { text: name + (value == null ? " (none)" : "") });
  const block = element("details", { className: "json" }, summary);
  if (open && value != null) block.setAttribute("open", "");
  if (hash) block.append(element("p", { className: "hash" }, "SHA-256 ", element("code", { text: hash })));
  block.append(element("pre", { text: JSON.stringify(value, null, 2) }));
  return block;
}

function addEvent(event) {
  if (event.sequence <= state.lastSequence) return;  // never twice
  state.lastSequence = event.sequence;
  const head = element("div", { className: "event-head" },
    element("span", { className: "sequence", text: "#" + event.sequence }),
    element("span", { className: "type type-" + event.type.replace(/[^a-z.]/gi, ""), text: event.type }),
    element("span", { className: "stage", text: event.stage || "" }),
    element("time", { datetime: event.createdAt, text: when(event.createdAt) }));
  const item = element("li", { className: "event", "data-sequence": event.sequence }, head);
  if (event.message) item.append(element("p", { className: "message", text: event.message }));
  if (event.payload != null) {
    item.append(element("details", { className: "payload" }, element("summary", { text: "Payload" }),
                        element("pre", { text: JSON.stringify(event.payload, null, 2) })));
  }
  $("timeline").append(item);
}

function refetchSoon(sessionId) {
  // Events come one by one; the session's own fields are read again at most twice a second.
  if (state.refetch) return;
  state.refetch = setTimeout(async () => {
    state.refetch = null;
    if (state.sessionId !== sessionId) return;
    try {
      renderSession(await api(API + "/" + encodeURIComponent(sessionId)));
    } catch (error) {
      if (error.status === 404) markGone();
    }
  }, 500);
}

function markGone() {
  $("gone").hidden = false;
  $("live").hidden = true;
  stopFollowing();
}

async function follow(sessionId) {
  if (state.sessionId !== sessionId) return;
  let token;
  try {
    token = (await api(API + "/" + encodeURIComponent(sessionId) + "/stream-tokens",
                       { method: "POST" })).token;
  } catch (error) {
    if (error.status === 404) markGone();
    return;
  }
  if (state.sessionId !== sessionId) return;
  const query = new URLSearchParams({ access_token: token, after: String(state.lastSequence) });
  const stream = new EventSource(API + "/" + encodeURIComponent(sessionId) + "/events/stream?" + query);
  state.stream = stream;
  stream.onopen = () => { $("live").hidden = false; };
  stream.onmessage = (message) => {
    addEvent(JSON.parse(message.data));
    refetchSoon(sessionId);
  };
  stream.addEventListener("end", (message) => {
    renderSession(JSON.parse(message.data));
    stopFollowing();
  });
  stream.addEventListener("gone", markGone);
  stream.onerror = async () => {
    // A dropped connection reconnects by itself (EventSource sends Last-Event-ID); a closed
    // one (a refused, expired token; a 204) is looked at again before following anew.
    $("live").hidden = true;
    if (stream.readyState !== EventSource.CLOSED || state.stream !== stream) return;
    state.stream = null;
    try {
      const session = await api(API + "/" + encodeURIComponent(sessionId));
      if (state.sessionId !== sessionId) return;
      renderSession(session);
      for (const event of session.events) addEvent(event);
      if (TERMINAL.includes(session.status)) return;
    } catch (error) {
      if (error.status === 404) markGone();
      return;
    }
    setTimeout(() => follow(sessionId), 1000);
  };
}

function stopFollowing() {
  if (state.stream) state.stream.close();
  state.stream = null;
  $("live").hidden = true;
}

// ---- signing in and out

$("sign-in-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const key = $("key-input").value.trim();
  state.key = key;
  try {
    await api(API + "?limit=1");
  } catch (error) {
    $("sign-in-error").textContent = "That key was refused.";
    $("sign-in-error").hidden = false;
    state.key = null;
    return;
  }
  sessionStorage.setItem(KEY_STORE, key);
  $("key-input").value = "";
  $("sign-in-error").hidden = true;
  route();
});

function signOut(message) {
  sessionStorage.removeItem(KEY_STORE);
  state.key = null;
  route();
  if (message) {
    $("sign-in-error").textContent = message;
    $("sign-in-error").hidden = false;
  }
}

$("sign-out").addEventListener("click", () => signOut());

state.key = takeKey();
route();
