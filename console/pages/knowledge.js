// Knowledge: collections, ingest pasted text or an uploaded file (with a progress bar while a
// large document is embedded), and search with a strategy picker showing scores and sources.
// A user works on their own collections (/api/rag/*); an operator works on a tenant's, through
// the tenant's key and ARES's MCP tools (POST /mcp), the API tenants use for them.
import * as api from "../api.js";
import * as session from "../session.js";
import { h, clear, field, select, table, toast, busy, number } from "../dom.js";

/** Above this many bytes an upload becomes an ingest job with progress. */
const JOB_ABOVE = 64 * 1024;
const STRATEGIES = ["hybrid", "bm25", "semantic", "fuzzy"];

let polling = null;

export function leave() {
  clearTimeout(polling);
}

export async function render(root, { session: s }) {
  const admin = s.mode === "admin";
  const backend = admin ? await tenantBackend(root) : userBackend();
  if (!backend) return;
  const collections = h("div", {});
  const collection = h("input", { id: "kb-collection", required: true, autocomplete: "off", placeholder: "product-docs", list: "kb-collections" });
  const known = h("datalist", { id: "kb-collections" });
  const title = h("input", { id: "kb-title", autocomplete: "off" });
  const content = h("textarea", { id: "kb-content", rows: 6, placeholder: "Paste text here, or choose a file below." });
  const file = h("input", { id: "kb-file", type: "file", accept: ".txt,.md,.markdown,.html,.csv,.json,text/*" });
  const ingest = h("button", { type: "submit", id: "kb-ingest", class: "primary" }, "Add to collection");
  const progress = h("progress", { id: "kb-progress", max: 1, value: 0, hidden: true });
  const progressText = h("span", { id: "kb-progress-text", "aria-live": "polite" });
  const ingestForm = h(
    "form",
    { id: "kb-ingest-form", class: "card" },
    h("h2", {}, "Add a document"),
    field("Collection", collection, "Created on first use."),
    known,
    field("Title", title),
    field("Text", content),
    field("Or a file", file),
    h("div", { class: "row" }, ingest, progress, progressText),
  );
  const query = h("input", { id: "kb-query", required: true, autocomplete: "off" });
  const strategy = select("kb-strategy", STRATEGIES, "hybrid");
  const limit = h("input", { id: "kb-limit", type: "number", min: 1, max: 100, value: 5 });
  const search = h("button", { type: "submit", id: "kb-search", class: "primary" }, "Search");
  const results = h("div", { id: "kb-results" });
  const searchForm = h("form", { id: "kb-search-form", class: "card inline" }, h("h2", {}, "Search"), field("Query", query), field("Strategy", strategy), field("Results", limit), search);

  async function load() {
    const list = await backend.list();
    clear(known, (list || []).map((c) => h("option", { value: c.name })));
    if (!list) {
      clear(collections, h("p", { class: "muted" }, "A tenant's collections are listed by name as you use them: type one below."));
      return;
    }
    clear(
      collections,
      table(
        "kb-table",
        [
          { title: "Collection", cell: (c) => h("button", { type: "button", class: "link", onclick: () => (collection.value = c.name) }, c.name) },
          { title: "Documents", cell: (c) => number(c.document_count) },
          { title: "Dimensions", cell: (c) => number(c.dimensions) },
          { title: "", cell: (c) => h("button", { type: "button", class: "danger", onclick: (e) => remove(e.currentTarget, c.name) }, "Delete") },
        ],
        list,
        (c) => ({ dataset: { collection: c.name } }),
      ),
    );
  }

  function remove(button, name) {
    if (!confirm(`Delete the collection ${name} and every document in it?`)) return;
    busy(button, async () => {
      await backend.remove(name);
      toast(`Collection ${name} deleted.`, "ok");
      await load();
    });
  }

  ingestForm.addEventListener("submit", (event) => {
    event.preventDefault();
    busy(ingest, async () => {
      const chosen = file.files && file.files[0];
      const text = chosen ? await chosen.text() : content.value;
      if (!text.trim()) throw new Error("Paste some text or choose a file first.");
      const doc = { collection: collection.value.trim(), content: text, title: title.value.trim() || (chosen ? chosen.name : ""), source: chosen ? chosen.name : "console" };
      progress.hidden = false;
      progress.removeAttribute("value");
      progressText.textContent = "Sending…";
      try {
        const done = await backend.ingest(doc, new Blob([text]).size > JOB_ABOVE, (embedded, total) => {
          progress.max = Math.max(total, 1);
          progress.value = embedded;
          progressText.textContent = total ? `${number(embedded)} of ${number(total)} chunks embedded` : "Queued…";
        });
        progressText.textContent = `Added: ${number(done.chunks_created)} ${done.chunks_created === 1 ? "chunk" : "chunks"}.`;
        content.value = "";
        file.value = "";
        await load();
      } catch (e) {
        progressText.textContent = "";
        throw e;
      } finally {
        progress.hidden = true;
      }
    });
  });

  // What is on screen belongs to one owner: a change of tenant, or a search that fails, must
  // not leave another answer standing.
  const forget = () => {
    clear(results);
    progressText.textContent = "";
  };
  if (backend.onChange) backend.onChange(forget);

  searchForm.addEventListener("submit", (event) => {
    event.preventDefault();
    clear(results);
    busy(search, async () => {
      if (!collection.value.trim()) throw new Error("Choose a collection first.");
      const hits = await backend.search({ collection: collection.value.trim(), query: query.value, strategy: strategy.value, limit: Number(limit.value) || 5 });
      clear(
        results,
        hits.length
          ? hits.map((hit, i) =>
              h(
                "div",
                { class: "card hit", dataset: { hitId: hit.id } },
                h("p", {}, h("strong", {}, `${i + 1}. score ${Number(hit.score).toFixed(4)}`), " · ", (hit.metadata && (hit.metadata.title || hit.metadata.source)) || hit.id),
                h("p", { class: "content" }, hit.content),
              ),
            )
          : h("p", { class: "muted" }, "Nothing matched."),
      );
    });
  });

  root.append(backend.header || "", collections, h("div", { class: "grid2" }, ingestForm, searchForm), results);
  await load();
}

function userBackend() {
  return {
    list: () => api.get("/api/rag/collections"),
    remove: (name) => api.del("/api/rag/collection", { body: { collection: name } }),
    search: (body) => api.post("/api/rag/search", body),
    async ingest(doc, asJob, onProgress) {
      if (!asJob) return api.post("/api/rag/ingest", doc);
      const job = await api.post("/api/rag/ingest", { ...doc, async: true });
      for (;;) {
        const state = await api.get(`/api/rag/jobs/${encodeURIComponent(job.job_id)}`);
        onProgress(state.chunks_embedded || 0, state.chunks_total || 0);
        if (state.state === "completed") return state;
        if (state.state === "failed" || state.state === "cancelled") throw new Error(state.error || `The ingest job was ${state.state}.`);
        await new Promise((resolve) => (polling = setTimeout(resolve, 500)));
      }
    },
  };
}

/** An operator works on a tenant's collections with the tenant's playground key. */
async function tenantBackend(root) {
  const { tenants } = await api.get("/api/admin/tenants");
  const tenant = h("select", { id: "kb-tenant" }, tenants.map((t) => h("option", { value: t.id }, t.name)));
  const state = h("p", { class: "muted", id: "kb-key-state" });
  const make = h("button", { type: "button", id: "kb-key-make" }, "Make a console key for this tenant");
  const keyOf = () => session.recall("pgkey." + tenant.value);
  const describe = () => {
    state.textContent = keyOf() ? "Working on this tenant's collections with its console key." : "This tenant needs a key first.";
    make.hidden = Boolean(keyOf());
  };
  make.addEventListener("click", () =>
    busy(make, async () => {
      const created = await api.post(`/api/admin/tenants/${encodeURIComponent(tenant.value)}/api-keys`, { name: "console-playground" });
      session.remember("pgkey." + tenant.value, created.raw_key);
      describe();
    }),
  );
  const changed = [];
  tenant.addEventListener("change", () => {
    describe();
    for (const listener of changed) listener();
  });
  describe();
  if (!tenants.length) {
    root.append(h("p", {}, "No tenants yet. ", h("a", { href: "#/tenants" }, "Create one first.")));
    return null;
  }
  const tool = async (name, args) => {
    const key = keyOf();
    if (!key) throw new Error("Make a console key for this tenant first.");
    const answer = await api.post(
      "/mcp",
      { jsonrpc: "2.0", id: 1, method: "tools/call", params: { name, arguments: args } },
      { auth: { key }, headers: { Accept: "application/json, text/event-stream", "MCP-Protocol-Version": "2025-06-18" } },
    );
    if (answer.error) throw new Error(answer.error.message);
    const text = (answer.result.content || []).map((c) => c.text || "").join("");
    if (answer.result.isError) throw new Error(text || "The tool failed.");
    try {
      return JSON.parse(text);
    } catch {
      return text;
    }
  };
  return {
    header: h("div", { class: "card inline" }, field("Tenant", tenant), state, make),
    onChange: (listener) => changed.push(listener),
    list: async () => null,
    remove: async () => {
      throw new Error("Deleting a tenant's collection is done by the tenant.");
    },
    search: async (body) => {
      const found = await tool("rag_search", body);
      return Array.isArray(found) ? found : found.results || [];
    },
    ingest: async (doc, _asJob, onProgress) => {
      const done = await tool("rag_ingest", doc);
      onProgress(done.chunks_created || 0, done.chunks_created || 0);
      return done;
    },
  };
}
