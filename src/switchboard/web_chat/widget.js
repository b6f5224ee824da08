/* Switchboard web chat widget: hand-written, no dependencies, no build step (docs/chat-widget.md). In an open
 * shadow root, styled only through CSS custom properties and ::part. Every text anyone wrote becomes a text node.
 * A message keeps its client_message_id from first try to last (the outbox is in sessionStorage, like the
 * session), so retries and reloads neither lose nor double it. */
(() => {
  "use strict";
  // currentScript is set only while this file first runs (async too): read it now.
  const script =
    document.currentScript ||
    Array.from(document.scripts).reverse().find((s) => /\/chat\/[^/]+\/widget\.js(?:[?#]|$)/.test(s.src));
  const src = script && script.src ? new URL(script.src, location.href) : null;
  const found = src && /^(.*)\/chat\/([^/]+)\/widget\.js$/.exec(src.pathname);
  if (!found) return;
  const WIDGET = decodeURIComponent(found[2]);
  const API = `${src.origin}${found[1]}/chat/${encodeURIComponent(WIDGET)}`;
  const loaded = (window.__switchboardWidgets = window.__switchboardWidgets || {});
  if (loaded[API]) return; // embedded twice: one widget
  loaded[API] = true;

  const KEY = `switchboard:${API}`;
  const TOKEN_TIMEOUT_MS = 10000; // the token function's time
  const WAIT_S = 20;
  const MAX_KEPT = 300; // rows kept for a reload
  const T = {
    launcher: "Chat with us", title: "Chat", minimise: "Minimise", end: "End chat", send: "Send", input: "Your message",
    name: "Name (optional)", email: "E-mail (optional)", start: "Start chat", restart: "New chat",
    connecting: "Connecting…", reconnecting: "Reconnecting…", sending: "Sending…", notSent: "Not sent",
    ended: "The chat has ended.", signedIn: "You are signed in.", unread: "new",
  };
  const ERRORS = {
    token_timeout: "Signing you in took too long.",
    missing_token: "Please sign in to chat.",
    session_expired: "This chat session has expired.",
    invalid_session: "This chat session is no longer valid.",
    conversation_closed: "This chat has ended.",
    origin_not_allowed: "This page may not open this chat.",
    not_found: "This chat is not available.",
    network_error: "The chat cannot be reached right now.",
    unavailable: "The chat is busy. Please try again.",
    payload_too_large: "That message is too long.",
    bad_request: "That message could not be sent.",
  };
  const SIGN_IN = "Your sign-in could not be verified.";

  // -- helpers
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  const backoff = (n) => Math.min(30000, 1000 * 2 ** Math.min(n, 5)) * (0.8 + Math.random() * 0.4);
  const retryable = (status) => status === 0 || status === 429 || status >= 502;
  const emit = (name, detail) =>
    window.dispatchEvent(new CustomEvent(`switchboard:${name}`, { detail: { widget_id: WIDGET, ...detail } }));
  const newId = () =>
    crypto.randomUUID
      ? crypto.randomUUID()
      : Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");

  // append() makes a string a text node, never markup. A hook is also the element's ::part name.
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === true) node.setAttribute(name, "");
      else if (value !== false && value != null) node.setAttribute(name, String(value));
    }
    if (attrs && attrs["data-switchboard"] && !attrs.part) node.setAttribute("part", attrs["data-switchboard"]);
    node.append(...children);
    return node;
  }

  // {status, data}; status 0: a network error or a timeout.
  async function call(method, path, { token, body, timeout = 15000 } = {}) {
    const headers = {};
    if (token) headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), timeout);
    try {
      const response = await fetch(API + path, {
        method, headers, body: body === undefined ? undefined : JSON.stringify(body),
        signal: abort.signal, credentials: "omit", cache: "no-store",
      });
      const data = await response.json().catch(() => null);
      return { status: response.status, data: data && typeof data === "object" ? data : {} };
    } catch (network) {
      return { status: 0, data: {} };
    } finally {
      clearTimeout(timer);
    }
  }

  const codeOf = (res, fallback) =>
    (typeof res.data.error === "string" && res.data.error) || (res.status ? fallback || `http_${res.status}` : "network_error");

  // sessionStorage may be missing or full: then a reload starts over.
  const store = {
    load: () => { try { return JSON.parse(sessionStorage.getItem(KEY) || "null"); } catch (e) { return null; } },
    put: (value) => { try { sessionStorage.setItem(KEY, JSON.stringify(value)); return true; } catch (e) { return false; } },
    clear: () => { try { sessionStorage.removeItem(KEY); } catch (e) { /* nothing kept */ } },
  };

  // -- the DOM
  const CSS = `
:host{all:initial;position:fixed;z-index:var(--switchboard-z-index,2147483000);right:var(--switchboard-offset,20px);bottom:var(--switchboard-offset,20px);
 --a:var(--switchboard-accent,#1f5fbf);--at:var(--switchboard-accent-text,#fff);--bg:var(--switchboard-background,#fff);--fg:var(--switchboard-text,#1b1b1f);
 --mu:var(--switchboard-muted,#5f6368);--r:var(--switchboard-radius,12px);--sh:var(--switchboard-shadow,0 4px 16px rgba(0,0,0,.2));
 font:14px/1.4 var(--switchboard-font,system-ui,sans-serif);color:var(--fg)}
[hidden]{display:none!important}
button{font:inherit;cursor:pointer;border-radius:calc(var(--r)/2);border:1px solid transparent;padding:6px 12px}
button:disabled{opacity:.6;cursor:default}
:focus-visible{outline:2px solid var(--switchboard-focus,var(--a));outline-offset:2px}
[data-switchboard=launcher]{display:block;margin-left:auto;background:var(--a);color:var(--at);padding:12px 18px;border-radius:999px;box-shadow:var(--sh)}
[data-unread]::after{content:attr(data-unread);margin-left:8px;background:var(--at);color:var(--a);border-radius:999px;padding:0 7px;font-weight:600}
[data-switchboard=panel]{display:flex;flex-direction:column;box-sizing:border-box;width:var(--switchboard-width,360px);max-width:calc(100vw - 40px);
 height:var(--switchboard-height,520px);max-height:calc(100vh - 100px);margin-bottom:12px;background:var(--bg);border-radius:var(--r);box-shadow:var(--sh);overflow:hidden}
header{display:flex;align-items:center;gap:6px;padding:10px 12px;background:var(--a);color:var(--at)}
h2{flex:1;margin:0;font-size:16px}
header button{background:transparent;color:inherit;border-color:currentColor;padding:3px 9px}
[data-switchboard=log]{flex:1;overflow-y:auto;padding:12px;display:flex;flex-direction:column;gap:8px}
[data-switchboard=message]{max-width:80%;padding:8px 11px;border-radius:var(--r);white-space:pre-wrap;overflow-wrap:anywhere}
[data-direction=in]{align-self:flex-end;background:var(--switchboard-in-background,var(--a));color:var(--switchboard-in-text,var(--at))}
[data-direction=out]{align-self:flex-start;background:var(--switchboard-out-background,#eef0f3);color:var(--switchboard-out-text,var(--fg))}
[data-switchboard=author]{display:block;font-size:12px;font-weight:600;opacity:.8}
[data-state]{opacity:.7}[data-state=failed]{opacity:1;outline:1px solid var(--switchboard-error,#b3261e)}
[data-switchboard=note]{display:block;font-size:11px}
[data-switchboard=notice],[data-switchboard=status]{align-self:center;margin:0 12px;color:var(--mu);font-size:12px}
[data-switchboard=error]{margin:0;padding:8px 12px;color:var(--switchboard-error,#b3261e);background:var(--switchboard-error-background,#fdecea)}
form{display:flex;gap:8px;padding:10px 12px;border-top:1px solid rgba(0,0,0,.1)}
[data-switchboard=start-form]{flex-direction:column}
input,textarea{font:inherit;color:var(--fg);background:var(--bg);border:1px solid rgba(0,0,0,.25);border-radius:calc(var(--r)/2);padding:7px 9px}
textarea{flex:1;resize:none}
form button,[data-switchboard=restart]{background:var(--a);color:var(--at)}
[data-switchboard=restart]{margin:10px auto}
label{display:flex;flex-direction:column;gap:3px;font-size:12px;color:var(--mu)}`;

  const host = el("div", { "data-switchboard": "root", "data-widget": WIDGET });
  const root = host.attachShadow({ mode: "open" });
  const button = (hook, label, attrs) => el("button", { type: "button", "data-switchboard": hook, ...attrs }, label);
  const launcher = button("launcher", T.launcher, { "aria-expanded": "false", "aria-controls": "sb-panel" });
  const endButton = button("end", T.end, { hidden: true });
  const minimiseButton = button("minimise", T.minimise);
  const log = el("div", { "data-switchboard": "log", role: "log", "aria-live": "polite", "aria-label": T.title, tabindex: "0" });
  const status = el("p", { "data-switchboard": "status", role: "status" });
  const error = el("p", { "data-switchboard": "error", role: "alert", hidden: true });
  const restartButton = button("restart", T.restart, { hidden: true });
  const nameInput = el("input", { "data-switchboard": "name", part: "field", autocomplete: "name", maxlength: "200" });
  const emailInput = el("input", { "data-switchboard": "email", part: "field", type: "email", autocomplete: "email", maxlength: "320" });
  const startForm = el(
    "form", { "data-switchboard": "start-form", hidden: true },
    el("label", {}, T.name, nameInput), el("label", {}, T.email, emailInput),
    el("button", { type: "submit", "data-switchboard": "start" }, T.start),
  );
  const input = el("textarea", { "data-switchboard": "input", rows: "2", maxlength: "10000", "aria-label": T.input });
  const form = el(
    "form", { "data-switchboard": "form", hidden: true },
    input, el("button", { type: "submit", "data-switchboard": "send" }, T.send),
  );
  const panel = el(
    "section",
    { id: "sb-panel", "data-switchboard": "panel", role: "dialog", "aria-label": T.title, tabindex: "-1", hidden: true },
    el("header", { part: "header" }, el("h2", { part: "title" }, T.title), endButton, minimiseButton),
    log, status, error, restartButton, startForm, form,
  );
  // A constructed sheet is no inline style: a page's CSP need not allow 'unsafe-inline'.
  if (root.adoptedStyleSheets && "replaceSync" in CSSStyleSheet.prototype) {
    const sheet = new CSSStyleSheet();
    sheet.replaceSync(CSS);
    root.adoptedStyleSheets = [sheet];
  } else root.append(el("style", {}, CSS));
  root.append(panel, launcher);

  // -- state
  let config = null;
  let configCode = "network_error";
  let session = null;
  let generation = 0; // a new session stops the old loops
  let sendingIn = -1;
  let starting = false;
  let unread = 0;
  const shown = new Set(); // row ids on screen
  const pending = new Map(); // client_message_id -> element

  function persist() {
    if (!session) return;
    const kept = { ...session, open: !panel.hidden };
    if (!store.put(kept)) store.put({ ...kept, messages: null, cursor: null });
  }

  const setStatus = (text) => (status.textContent = text || "");

  function showError(code) {
    error.textContent = `${ERRORS[code] || (/^(token_|invalid_|unknown_key)/.test(code) ? SIGN_IN : "Something went wrong.")} (${code})`;
    error.hidden = false;
    emit("error", { code });
  }

  function clearError() {
    error.hidden = true;
    error.textContent = "";
  }

  function focusInPanel() {
    if (panel.hidden) return;
    (!form.hidden ? input : !startForm.hidden ? nameInput : !restartButton.hidden ? restartButton : panel).focus();
  }

  function open(focus = true) {
    panel.hidden = false;
    launcher.setAttribute("aria-expanded", "true");
    unread = 0;
    launcher.removeAttribute("data-unread");
    launcher.setAttribute("aria-label", T.launcher);
    persist();
    if (!session && restartButton.hidden && error.hidden) begin();
    if (focus) focusInPanel();
  }

  function minimise() {
    panel.hidden = true;
    launcher.setAttribute("aria-expanded", "false");
    persist();
    launcher.focus();
  }

  // -- messages
  function place(node) {
    log.insertBefore(node, log.querySelector("[data-client-id]")); // pending ones last
    log.scrollTop = log.scrollHeight;
    return node;
  }

  function bubble(direction, text, author) {
    const node = el("div", { "data-switchboard": "message", "data-direction": direction, part: `message message-${direction}` });
    if (author && direction === "out") node.append(el("span", { "data-switchboard": "author" }, author));
    node.append(el("span", { "data-switchboard": "text" }, text));
    return node;
  }

  const notice = (text) => place(el("p", { "data-switchboard": "notice" }, text));

  function mark(node, state) {
    node.querySelector("[data-switchboard=note]")?.remove();
    if (!state) return node.removeAttribute("data-state");
    node.setAttribute("data-state", state);
    if (state !== "sent") node.append(el("span", { "data-switchboard": "note" }, state === "failed" ? T.notSent : T.sending));
  }

  // `fresh`: from the server now, not from the copy kept for a reload.
  function render(row, fresh) {
    if (!row || typeof row.id !== "string" || shown.has(row.id)) return;
    shown.add(row.id);
    const direction = row.direction === "out" ? "out" : "in";
    let text = typeof row.text === "string" && row.text !== "" ? row.text : null;
    if (text === null) {
      if (row.event === "signed_in") notice(T.signedIn);
      if (!row.kind || row.kind === "event") return;
      text = `[${row.kind}]`;
    }
    let node = direction === "in" && row.client_message_id ? pending.get(row.client_message_id) : null;
    if (node) {
      // The server's copy of a message being sent: its element moves into place.
      pending.delete(row.client_message_id);
      node.removeAttribute("data-client-id");
      mark(node, null);
      if (session) session.outbox = session.outbox.filter((m) => m.id !== row.client_message_id);
    } else node = bubble(direction, text, row.author);
    node.setAttribute("data-id", row.id);
    const when = new Date(row.sent_at);
    if (!Number.isNaN(when.getTime())) node.title = when.toLocaleString();
    place(node);
    if (!fresh) return;
    if (direction === "out" && panel.hidden) {
      unread += 1;
      launcher.setAttribute("data-unread", String(unread));
      launcher.setAttribute("aria-label", `${T.launcher} (${unread} ${T.unread})`);
    }
    emit("message", { id: row.id, direction, text, author: row.author ?? null, sent_at: row.sent_at ?? null, kind: row.kind || "text" });
  }

  function showPending(item) {
    const node = bubble("in", item.text);
    node.setAttribute("data-client-id", item.id);
    mark(node, item.failed ? "failed" : item.sent ? "sent" : "sending");
    pending.set(item.id, node);
    log.append(node);
    log.scrollTop = log.scrollHeight;
  }

  // -- the chat
  async function loadConfig() {
    for (let n = 0; n < 3 && !config; n++) {
      if (n) await sleep(backoff(n - 1));
      const res = await call("GET", "/config");
      if (res.status === 200 && (res.data.auth === "jwt" || res.data.auth === "anonymous")) config = res.data;
      else {
        configCode = codeOf(res, res.status === 404 ? "not_found" : "bad_configuration");
        if (!retryable(res.status)) break;
      }
    }
    return config;
  }

  // The page's function (a dotted path) gets a callback; a returned promise or string counts too. No token:
  // the start goes without one and the server decides (anonymous or missing_token).
  function askToken(path) {
    return new Promise((resolve, reject) => {
      let done = false;
      const timer = setTimeout(() => { done = true; reject(new Error("token_timeout")); }, TOKEN_TIMEOUT_MS);
      const answer = (token) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        resolve(typeof token === "string" && token.trim() ? token.trim() : null);
      };
      let owner = window;
      let fn = window;
      for (const part of String(path || "").split(".")) {
        owner = fn;
        fn = fn == null ? undefined : fn[part];
      }
      if (typeof fn !== "function") return answer(null);
      try {
        const result = fn.call(owner, answer);
        if (result && typeof result.then === "function") result.then(answer, () => answer(null));
        else if (typeof result === "string") answer(result);
      } catch (thrown) {
        answer(null);
      }
    });
  }

  async function begin(customer) {
    if (starting || session) return;
    starting = true;
    clearError();
    restartButton.hidden = startForm.hidden = true;
    setStatus(T.connecting);
    try {
      if (!(await loadConfig())) return fail(configCode);
      if (config.auth === "anonymous" && config.ask_contact && customer === undefined) {
        setStatus("");
        startForm.hidden = false;
        return focusInPanel();
      }
      let token = null;
      if (config.auth === "jwt") {
        try {
          token = await askToken(config.client_function);
        } catch (timeout) {
          return fail("token_timeout");
        }
      }
      const body = customer && (customer.name || customer.email) ? { customer } : {};
      let res;
      // 429 and 503 started nothing: retried. A lost answer is not (a retry could start a second chat).
      for (let n = 0; ; n++) {
        res = await call("POST", "/conversations", { token, body });
        if (!(res.status === 429 || res.status === 503) || n >= 3) break;
        await sleep(backoff(n));
      }
      if (res.status !== 201 || !res.data.session_token || !res.data.conversation_id) return fail(codeOf(res));
      session = {
        conversation_id: res.data.conversation_id, token: res.data.session_token, expires_at: res.data.session_expires_at,
        cursor: null, status: "open", authenticated: !!res.data.authenticated, messages: [], outbox: [],
      };
      persist();
      run();
      focusInPanel();
    } finally {
      starting = false;
    }
  }

  function fail(code) {
    setStatus("");
    showError(code);
    restartButton.hidden = false;
    focusInPanel();
  }

  function run() {
    const gen = ++generation;
    setStatus("");
    clearError();
    panel.setAttribute("data-authenticated", String(!!session.authenticated));
    if (session.status === "closed") return ended();
    form.hidden = endButton.hidden = false;
    poll(gen);
    flush(gen);
  }

  function ended() {
    session.status = "closed";
    form.hidden = endButton.hidden = true;
    restartButton.hidden = false;
    if (!log.querySelector("[data-ended]")) notice(T.ended).setAttribute("data-ended", "");
    persist();
  }

  // The session is gone: say why, keep the transcript on screen.
  function lose(code) {
    generation++;
    session = null;
    store.clear();
    form.hidden = endButton.hidden = true;
    fail(code);
  }

  function restart() {
    generation++;
    session = null;
    store.clear();
    shown.clear();
    pending.clear();
    log.replaceChildren();
    restartButton.hidden = true;
    begin();
  }

  const path = (tail) => `/conversations/${encodeURIComponent(session.conversation_id)}/${tail}`;

  async function poll(gen) {
    for (let n = 0; gen === generation && session.status !== "closed"; ) {
      const after = session.cursor ? `&after=${encodeURIComponent(session.cursor)}` : "";
      const res = await call("GET", path(`messages?wait=${WAIT_S}${after}`), { token: session.token, timeout: (WAIT_S + 15) * 1000 });
      if (gen !== generation) return;
      if (res.status === 200) {
        n = 0;
        setStatus("");
        for (const row of Array.isArray(res.data.messages) ? res.data.messages : []) {
          if (shown.has(row.id)) continue;
          render(row, true);
          if (session.messages && session.messages.length < MAX_KEPT) session.messages.push(row);
          else session.messages = null;
        }
        if (typeof res.data.cursor === "string") session.cursor = res.data.cursor;
        session.authenticated = !!res.data.authenticated;
        panel.setAttribute("data-authenticated", String(session.authenticated));
        if (res.data.status === "closed") ended();
        persist();
      } else if (res.status === 400 && session.cursor) {
        session.cursor = null; // read all again; shown rows are skipped
      } else if (retryable(res.status)) {
        setStatus(T.reconnecting);
        await sleep(backoff(n++));
      } else return lose(codeOf(res));
    }
  }

  // The outbox in order, one at a time, each under its own id until accepted.
  async function flush(gen) {
    if (sendingIn === gen) return;
    sendingIn = gen;
    try {
      for (let n = 0; gen === generation; ) {
        const item = session.outbox.find((m) => !m.sent && !m.failed);
        if (!item) return;
        const res = await call("POST", path("messages"), { token: session.token, body: { client_message_id: item.id, text: item.text } });
        if (gen !== generation) return;
        const node = pending.get(item.id);
        if (retryable(res.status)) {
          setStatus(T.reconnecting);
          await sleep(backoff(n++));
          continue;
        }
        n = 0;
        setStatus("");
        if (res.status === 202) item.sent = true;
        else item.failed = true;
        if (node) mark(node, item.sent ? "sent" : "failed");
        persist();
        if (res.status === 202) continue;
        const code = codeOf(res);
        if (res.status === 401 || res.status === 404) return lose(code);
        if (res.status === 409) ended();
        showError(code);
      }
    } finally {
      if (sendingIn === gen) sendingIn = -1;
    }
  }

  function send() {
    const text = input.value;
    if (!session || session.status === "closed" || !text.trim()) return;
    clearError();
    const item = { id: newId(), text, sent: false };
    session.outbox.push(item);
    persist(); // before the first try: a reload resends it
    input.value = "";
    showPending(item);
    flush(generation);
  }

  async function end() {
    if (!session) return;
    const gen = generation;
    endButton.disabled = true;
    try {
      for (let n = 0; ; n++) {
        const res = await call("POST", path("end"), { token: session.token });
        if (gen !== generation) return;
        if (res.status === 200) return ended(), restartButton.focus();
        if (res.status === 401 || res.status === 404) return lose(codeOf(res));
        if (!retryable(res.status) || n >= 4) return showError(codeOf(res));
        await sleep(backoff(n));
      }
    } finally {
      endButton.disabled = false;
    }
  }

  // -- wiring
  launcher.addEventListener("click", () => (panel.hidden ? open(true) : minimise()));
  minimiseButton.addEventListener("click", minimise);
  endButton.addEventListener("click", end);
  restartButton.addEventListener("click", restart);
  panel.addEventListener("keydown", (event) => event.key === "Escape" && minimise());
  startForm.addEventListener("submit", (event) => {
    event.preventDefault();
    begin({ name: nameInput.value.trim(), email: emailInput.value.trim() });
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    send();
    input.focus();
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      send();
    }
  });

  function restore() {
    const saved = store.load();
    const usable = saved && typeof saved.conversation_id === "string" && typeof saved.token === "string";
    if (!usable || !(saved.expires_at * 1000 > Date.now())) return store.clear(), false;
    const messages = Array.isArray(saved.messages) ? saved.messages : null;
    const have = new Set((messages || []).map((row) => row.client_message_id));
    const outbox = (Array.isArray(saved.outbox) ? saved.outbox : []).filter((m) => !have.has(m.id));
    session = { ...saved, messages, outbox, cursor: messages ? saved.cursor : null };
    for (const row of messages || []) render(row, false);
    for (const item of outbox) showPending(item);
    run();
    if (saved.open) open(false); // open as it was, without taking the page's focus
    return true;
  }

  async function mount() {
    document.body.append(host);
    const restored = restore();
    await loadConfig();
    emit("ready", { auth: config ? config.auth : null, restored });
  }

  if (document.body) mount();
  else document.addEventListener("DOMContentLoaded", mount, { once: true });
})();
