// Agents: the platform's, a tenant's (operator) or a user's own; create and edit through a form
// (or, for a user's agents, as TOON), and run one.
import * as api from "../api.js";
import * as session from "../session.js";
import { h, clear, field, table, toast, busy, number, when } from "../dom.js";

export async function render(root, { session: s }) {
  const platform = await api.get("/api/agents").catch(() => []);
  const platformTable = table(
    "platform-agent-table",
    [
      { title: "Name", cell: (a) => a.name },
      { title: "Model", cell: (a) => a.model || "–" },
      { title: "Tools", cell: (a) => (a.tools || []).join(", ") || "–" },
      { title: "Description", cell: (a) => a.description || "–" },
    ],
    platform,
    (a) => ({ dataset: { agent: a.name } }),
  );
  if (s.mode === "admin") await tenantAgents(root);
  else await userAgents(root);
  root.append(h("h2", {}, "Platform agents"), platformTable);
}

/** The form both kinds of agent share: name, model, prompt, tools. */
function agentForm(id, agent, onSave) {
  const a = agent || {};
  const config = a.config || {};
  const name = h("input", { id: id + "-name", required: true, value: a.name || a.agent_name || "", readonly: Boolean(agent), autocomplete: "off" });
  const model = h("input", { id: id + "-model", required: true, value: a.model || config.model || "", placeholder: "balanced", autocomplete: "off" });
  const prompt = h("textarea", { id: id + "-prompt", rows: 4 }, a.system_prompt || config.system_prompt || "");
  const tools = h("input", { id: id + "-tools", value: (a.tools || config.tools || []).join(", "), placeholder: "calculator, web_search, mcp:files", autocomplete: "off" });
  const description = h("input", { id: id + "-description", value: a.description || "", autocomplete: "off" });
  const save = h("button", { type: "submit", class: "primary", id: id + "-save" }, agent ? "Save changes" : "Create agent");
  const form = h("form", { id, class: "card" }, h("h3", {}, agent ? `Edit ${name.value}` : "New agent"), field("Name", name), field("Model, tier or agent", model), field("System prompt", prompt), field("Tools (comma-separated)", tools), field("Description", description), save);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    busy(save, () =>
      onSave({
        name: name.value.trim(),
        model: model.value.trim(),
        system_prompt: prompt.value,
        tools: tools.value.split(",").map((t) => t.trim()).filter(Boolean),
        description: description.value.trim() || null,
      }),
    );
  });
  return form;
}

/** A row's Edit and Delete buttons (tenant and user agents alike). */
function actions(agent, edit, remove) {
  return h(
    "div",
    { class: "row" },
    h("button", { type: "button", onclick: () => edit(agent) }, "Edit"),
    h("button", { type: "button", class: "danger", onclick: (e) => remove(e.currentTarget, agent) }, "Delete"),
  );
}

function runBox(run) {
  const input = h("textarea", { id: "agent-run-input", rows: 3, placeholder: "A message for the agent" });
  const go = h("button", { type: "submit", id: "agent-run-submit", class: "primary" }, "Run");
  const out = h("pre", { id: "agent-run-output", class: "detail", "aria-live": "polite" });
  const form = h("form", { class: "card" }, h("h3", {}, "Run"), field("Message", input), go, out);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    busy(go, async () => {
      out.textContent = "Running…";
      try {
        out.textContent = await run(input.value);
      } catch (e) {
        out.textContent = e.message;
        throw e;
      }
    });
  });
  return form;
}

async function tenantAgents(root) {
  const { tenants } = await api.get("/api/admin/tenants");
  if (!tenants.length) {
    root.append(h("p", {}, "No tenants yet. ", h("a", { href: "#/tenants" }, "Create one first.")));
    return;
  }
  const tenant = h("select", { id: "agents-tenant" }, tenants.map((t) => h("option", { value: t.id }, t.name)));
  const list = h("div", {});
  const editor = h("div", {});
  const path = () => `/api/admin/tenants/${encodeURIComponent(tenant.value)}/agents`;
  const body = (f) => ({ name: f.name, agent_name: f.name, display_name: f.name, description: f.description, config: { model: f.model, system_prompt: f.system_prompt, tools: f.tools } });

  async function load() {
    const { agents } = await api.get(path());
    clear(
      list,
      table(
        "tenant-agent-table",
        [
          { title: "Name", cell: (a) => a.name },
          { title: "Model", cell: (a) => a.model || "–" },
          { title: "Status", cell: (a) => a.status },
          { title: "Runs", cell: (a) => number(a.total_runs) },
          { title: "Last run", cell: (a) => when(a.last_run) },
          { title: "", cell: (a) => actions(a, edit, remove) },
        ],
        agents,
        (a) => ({ dataset: { agent: a.name } }),
      ),
    );
    clear(
      editor,
      agentForm("tenant-agent-create", null, async (f) => {
        await api.post(path(), body(f));
        toast(`Agent ${f.name} created.`, "ok");
        await load();
      }),
    );
  }

  function edit(agent) {
    const key = () => session.recall("pgkey." + tenant.value);
    clear(
      editor,
      agentForm("tenant-agent-edit", agent, async (f) => {
        const b = body(f);
        await api.put(`${path()}/${encodeURIComponent(agent.name)}`, { display_name: b.display_name, description: b.description, config: { ...(agent.config || {}), ...b.config } });
        toast("Saved.", "ok");
        await load();
      }),
      runBox(async (message) => {
        if (!key()) throw new Error("Running needs a key of this tenant: make one on the Playground page.");
        const run = await api.post(`/v1/agents/${encodeURIComponent(agent.name)}/run`, { input: { message } }, { auth: { key: key() } });
        return run.error ? `${run.status}: ${run.error}` : JSON.stringify(run.output, null, 2);
      }),
    );
  }

  function remove(button, agent) {
    if (!confirm(`Delete the agent ${agent.name}?`)) return;
    busy(button, async () => {
      await api.del(`${path()}/${encodeURIComponent(agent.name)}`);
      await load();
    });
  }

  tenant.addEventListener("change", load);
  root.append(h("div", { class: "card inline" }, field("Tenant", tenant)), list, editor);
  await load();
}

async function userAgents(root) {
  const list = h("div", {});
  const editor = h("div", {});
  const toon = h("textarea", { id: "agent-toon", rows: 6, placeholder: "name: my-agent\nmodel: balanced\nsystem_prompt: You are helpful." });
  const importButton = h("button", { type: "submit", id: "agent-toon-import" }, "Import TOON");
  const importForm = h("form", { class: "card" }, h("h3", {}, "Or import as TOON"), field("TOON", toon), importButton);
  importForm.addEventListener("submit", (event) => {
    event.preventDefault();
    busy(importButton, async () => {
      await api.post("/api/user/agents/import", toon.value, { headers: { "Content-Type": "text/x-toon" } });
      toon.value = "";
      toast("Agent imported.", "ok");
      await load();
    });
  });

  async function load() {
    const agents = await api.get("/api/user/agents");
    const items = Array.isArray(agents) ? agents : agents.agents || [];
    clear(
      list,
      table(
        "user-agent-table",
        [
          { title: "Name", cell: (a) => a.name },
          { title: "Model", cell: (a) => a.model || "–" },
          { title: "Source", cell: (a) => a.source || "user" },
          { title: "", cell: (a) => actions(a, edit, remove) },
        ],
        items,
        (a) => ({ dataset: { agent: a.name } }),
      ),
    );
    clear(
      editor,
      agentForm("user-agent-create", null, async (f) => {
        await api.post("/api/user/agents", f);
        toast(`Agent ${f.name} created.`, "ok");
        await load();
      }),
      importForm,
    );
  }

  async function edit(agent) {
    const exported = await api.get(`/api/user/agents/${encodeURIComponent(agent.name)}` + api.query({ format: "toon" })).catch(() => "");
    clear(
      editor,
      agentForm("user-agent-edit", agent, async (f) => {
        await api.put(`/api/user/agents/${encodeURIComponent(agent.name)}`, f);
        toast("Saved.", "ok");
        await load();
      }),
      h("div", { class: "card" }, h("h3", {}, "As TOON"), h("pre", { class: "detail", id: "agent-toon-export" }, exported)),
      runBox(async (message) => {
        const answer = await api.post("/api/chat", { message, agent_type: agent.name });
        return answer.response;
      }),
    );
  }

  function remove(button, agent) {
    if (!confirm(`Delete your agent ${agent.name}?`)) return;
    busy(button, async () => {
      await api.del(`/api/user/agents/${encodeURIComponent(agent.name)}`);
      await load();
    });
  }

  root.append(list, editor);
  await load();
}
