// Playground: chat with any model, tier or agent, streamed token by token, with what each
// answer cost and who served it. An operator chats as a tenant (through a key of that tenant,
// on the OpenAI-compatible API, so the chat is governed and metered like any client's); a user
// chats with agents through /api/chat/stream. Conversations are kept for the session and can
// be resumed.
import * as api from "../api.js";
import * as session from "../session.js";
import { events } from "../sse.js";
import { h, clear, field, toast, busy, number, dollars, ms, when } from "../dom.js";

let controller = null;

export function leave() {
  if (controller) controller.abort();
}

export async function render(root, { session: s }) {
  const admin = s.mode === "admin";
  const transcript = h("div", { id: "pg-transcript", class: "transcript", "aria-live": "polite" });
  const stats = h("p", { id: "pg-stats" });
  const input = h("textarea", { id: "pg-input", placeholder: "Say something…", rows: 3 });
  const send = h("button", { type: "submit", id: "pg-send", class: "primary" }, "Send");
  const stop = h("button", { type: "button", id: "pg-stop", disabled: true }, "Stop");
  const target = h("select", { id: "pg-target" });
  // A user names an agent and, optionally, the model (or tier) it should use this time.
  const model = h("select", { id: "pg-model" });
  const conversations = h("select", { id: "pg-conversation" });
  const setup = h("div", { class: "card inline" });
  let conversation = null;

  // Where the chat goes: a tenant key (operator) or the user's session.
  let key = null;
  if (admin) {
    const { tenants } = await api.get("/api/admin/tenants");
    const tenant = h("select", { id: "pg-tenant" }, tenants.map((t) => h("option", { value: t.id }, t.name)));
    const pasted = h("input", { id: "pg-api-key", type: "password", autocomplete: "off", placeholder: "ares_…" });
    const make = h("button", { type: "button", id: "pg-key-make" }, "Make a playground key");
    const use = h("button", { type: "button", id: "pg-key-use" }, "Use this key");
    const keyState = h("p", { id: "pg-key-state", class: "muted" });
    const pick = async () => {
      key = session.recall("pgkey." + tenant.value);
      keyState.textContent = key ? "Chatting as this tenant with its playground key." : "This tenant needs a key: make one, or paste one of its keys.";
      await loadTargets();
    };
    make.addEventListener("click", () =>
      busy(make, async () => {
        const created = await api.post(`/api/admin/tenants/${encodeURIComponent(tenant.value)}/api-keys`, { name: "console-playground" });
        session.remember("pgkey." + tenant.value, created.raw_key);
        toast("A key named console-playground was made for this tenant; revoke it on API keys when done.", "ok");
        await pick();
      }),
    );
    use.addEventListener("click", () =>
      busy(use, async () => {
        if (!pasted.value.trim()) throw new Error("Paste one of the tenant's API keys first.");
        session.remember("pgkey." + tenant.value, pasted.value.trim());
        pasted.value = "";
        await pick();
      }),
    );
    tenant.addEventListener("change", pick);
    setup.append(field("Tenant", tenant), field("Or paste a key of it", pasted), h("div", { class: "row" }, make, use), keyState);
    await pick();
  } else {
    await loadTargets();
  }
  setup.append(field(admin ? "Model, tier or agent" : "Agent", target));
  if (!admin) setup.append(field("Model", model));
  setup.append(field("Conversation", conversations));

  async function loadTargets() {
    let options = [];
    if (admin) {
      if (key) {
        const models = await api.get("/v1/models", { auth: { key } }).catch((e) => (toast(e.message), { data: [] }));
        options = (models.data || []).map((m) => m.id);
      }
    } else {
      const [platform, own] = await Promise.all([api.get("/api/agents").catch(() => []), api.get("/api/user/agents").catch(() => [])]);
      const names = (list) => (Array.isArray(list) ? list : list.agents || []).map((a) => a.name || a.agent_type || a.id).filter(Boolean);
      options = ["", ...new Set([...names(own), ...names(platform)])];
      const info = await api.get("/config/info").catch(() => ({ models: [] }));
      clear(model, h("option", { value: "" }, "(the agent's own)"), (info.models || []).map((m) => h("option", { value: m }, m)));
    }
    clear(target, options.map((o) => h("option", { value: o }, o || "(the default agent)")));
    await listConversations();
  }

  // An operator's conversations are kept in the tab; a user's by the server (/api/conversations).
  function saved() {
    return session.recall("pg.conversations") || [];
  }

  async function listConversations() {
    const list = admin
      ? saved()
      : (await api.get("/api/conversations").catch(() => [])).map((c) => ({ id: c.id, title: c.title || `${when(c.updated_at)} (${c.message_count} messages)` }));
    clear(conversations, h("option", { value: "" }, "New conversation"), list.map((c) => h("option", { value: c.id, selected: conversation && c.id === conversation.id }, c.title)));
  }

  conversations.addEventListener("change", async () => {
    if (!conversations.value) {
      conversation = null;
    } else if (admin) {
      conversation = saved().find((c) => c.id === conversations.value) || null;
    } else {
      const stored = await api.get(`/api/conversations/${encodeURIComponent(conversations.value)}`).catch((e) => (toast(e.message), null));
      conversation = stored && { id: stored.id, title: stored.title, target: target.value, messages: stored.messages.filter((m) => m.role !== "system").map((m) => ({ role: m.role, content: m.content })) };
    }
    if (conversation && conversation.target) target.value = conversation.target;
    draw();
  });

  function draw() {
    clear(transcript, (conversation ? conversation.messages : []).map((m) => h("div", { class: "msg " + m.role, dataset: { done: "1" } }, m.content)));
    transcript.scrollTop = transcript.scrollHeight;
  }

  function keep() {
    if (admin) {
      const list = saved().filter((c) => c.id !== conversation.id);
      list.unshift(conversation);
      session.remember("pg.conversations", list.slice(0, 50));
    }
    listConversations();
  }

  const form = h("form", { id: "pg-form" }, field("Message", input), h("div", { class: "row" }, send, stop));
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) form.requestSubmit();
  });
  stop.addEventListener("click", () => controller && controller.abort());
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    if (admin && !key) return toast("Choose a tenant and make or paste a key first.");
    if (!conversation) conversation = { id: crypto.randomUUID(), title: text.slice(0, 40), target: target.value, messages: [] };
    conversation.target = target.value;
    conversation.messages.push({ role: "user", content: text });
    input.value = "";
    draw();
    const bubble = h("div", { class: "msg assistant" });
    transcript.append(bubble);
    send.disabled = true;
    stop.disabled = false;
    controller = new AbortController();
    const started = performance.now();
    let first = null;
    let reply = "";
    const grow = (piece) => {
      if (first === null) first = performance.now() - started;
      reply += piece;
      bubble.textContent = reply;
      transcript.scrollTop = transcript.scrollHeight;
    };
    try {
      const facts = admin
        ? await chatAsTenant(conversation, key, controller.signal, grow)
        : await chatAsUser(conversation, text, model.value, controller.signal, grow);
      conversation.messages.push({ role: "assistant", content: reply });
      keep();
      stats.textContent = [
        `tokens ${number(facts.input)} in / ${number(facts.output)} out`,
        `cost ${facts.cost === undefined ? "–" : dollars(facts.cost)}`,
        `first token ${ms(first)}`,
        `total ${ms(performance.now() - started)}`,
        `served by ${facts.servedBy || "–"}`,
        `attempts ${facts.attempts || "–"}`,
      ].join(" · ");
    } catch (e) {
      bubble.classList.add("failed");
      if (e.name === "AbortError") {
        bubble.textContent = reply + " [stopped]";
      } else {
        bubble.textContent = reply ? reply + "\n[" + e.message + "]" : e.message;
        toast(e.message);
      }
      conversation.messages.pop();
    } finally {
      bubble.dataset.done = "1";
      send.disabled = false;
      stop.disabled = true;
      controller = null;
    }
  });

  root.append(setup, transcript, stats, form);
  draw();
}

/** One streamed turn through POST /v1/chat/completions with the tenant's key. */
async function chatAsTenant(conversation, key, signal, grow) {
  const response = await api.post(
    "/v1/chat/completions",
    { model: conversation.target, messages: conversation.messages, stream: true, stream_options: { include_usage: true } },
    { auth: { key }, raw: true, signal },
  );
  const facts = { servedBy: response.headers.get("X-Ares-Served-By"), attempts: response.headers.get("X-Ares-Attempts") };
  const requestId = response.headers.get("X-Request-Id");
  for await (const event of events(response)) {
    if (event.data === "[DONE]") break;
    const chunk = JSON.parse(event.data);
    if (chunk.error) throw new Error(chunk.error.message || "The stream failed.");
    const piece = chunk.choices && chunk.choices[0] && chunk.choices[0].delta && chunk.choices[0].delta.content;
    if (piece) grow(piece);
    if (chunk.usage) {
      facts.input = chunk.usage.prompt_tokens;
      facts.output = chunk.usage.completion_tokens;
    }
  }
  // A stream's cost is known once it ends: the request log has it.
  const log = await api.get("/v1/requests" + api.query({ limit: 20 }), { auth: { key } }).catch(() => null);
  const logged = log && log.requests.find((r) => r.request_id === requestId);
  if (logged) {
    facts.cost = logged.cost_usd;
    facts.servedBy = facts.servedBy || (logged.provider && logged.model ? `${logged.provider}/${logged.model}` : null);
    facts.attempts = facts.attempts || logged.attempts;
  }
  return facts;
}

/** One streamed turn through POST /api/chat/stream; the server keeps the conversation. */
async function chatAsUser(conversation, text, model, signal, grow) {
  const body = { message: text, context_id: conversation.id };
  if (conversation.target) body.agent_type = conversation.target;
  if (model) body.model = model;
  const response = await api.post("/api/chat/stream", body, { raw: true, signal });
  const facts = { servedBy: response.headers.get("X-Ares-Served-By"), attempts: response.headers.get("X-Ares-Attempts") };
  // Each event's data is a piece of the reply (API.md §6.1); a failure is an `error` event.
  for await (const event of events(response)) {
    if (event.event === "error") throw new Error(JSON.parse(event.data).error);
    if (event.data) grow(event.data);
  }
  facts.input = Number(response.headers.get("X-Input-Tokens")) || undefined;
  return facts;
}
