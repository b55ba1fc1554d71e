// Tenants: list, create, provision from a template, tier and quota, budget, usage and cost.
import * as api from "../api.js";
import { h, clear, field, select, table, toast, busy, number, dollars, when } from "../dom.js";

const TIERS = ["free", "dev", "pro", "enterprise"];

export async function render(root) {
  const list = h("div", {}, h("p", { class: "muted" }, "Loading tenants…"));
  const detail = h("div", { id: "tenant-detail", class: "card", hidden: true });
  const name = h("input", { id: "tenant-name", required: true, maxlength: 200, autocomplete: "off", pattern: "[a-z0-9\\-]+", placeholder: "acme-corp" });
  const tier = select("tenant-tier", TIERS, "free");
  const create = h("button", { type: "submit", id: "tenant-create-submit", class: "primary" }, "Create tenant");
  const form = h("form", { id: "tenant-create", class: "card inline" }, h("h2", {}, "New tenant"), field("Name", name, "Lower-case letters, digits and hyphens."), field("Tier", tier), create);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    busy(create, async () => {
      const tenant = await api.post("/api/admin/tenants", { name: name.value.trim(), tier: tier.value });
      toast(`Tenant ${tenant.name} created.`, "ok");
      name.value = "";
      await load();
    });
  });

  const templates = await api.get("/api/admin/agent-templates").catch(() => null);
  const provision = provisionForm(templates, () => load());

  async function load() {
    const { tenants } = await api.get("/api/admin/tenants");
    clear(
      list,
      table(
        "tenant-table",
        [
          { title: "Name", cell: (t) => h("button", { type: "button", class: "link", onclick: () => show(t.id) }, t.name) },
          { title: "Tier", cell: (t) => t.tier },
          { title: "Agents", cell: (t) => number(t.agent_count) },
          { title: "Created", cell: (t) => when(t.created_at) },
        ],
        tenants,
        (t) => ({ dataset: { tenantId: t.id } }),
      ),
    );
  }

  async function show(id) {
    detail.hidden = false;
    clear(detail, h("p", { class: "muted" }, "Loading…"));
    try {
      const [tenant, usage] = await Promise.all([
        api.get(`/api/admin/tenants/${encodeURIComponent(id)}`),
        api.get(`/api/admin/tenants/${encodeURIComponent(id)}/usage`).catch(() => null),
      ]);
      clear(detail, tenantDetail(tenant, usage, () => show(id)));
      detail.scrollIntoView({ block: "nearest" });
    } catch (e) {
      clear(detail, h("p", { class: "error" }, e.message));
    }
  }

  root.append(h("div", { class: "grid2" }, form, provision), list, detail);
  await load();
}

function provisionForm(templates, done) {
  const list = (templates && templates.templates) || [];
  const products = [...new Set(list.map((t) => t.product_type))].sort();
  const tenantName = h("input", { id: "provision-name", required: true, autocomplete: "off", pattern: "[a-z0-9\\-]+" });
  const tier = select("provision-tier", TIERS, "dev");
  const product = select("provision-product", products.length ? products : ["generic"]);
  const keyName = h("input", { id: "provision-key-name", required: true, autocomplete: "off", value: "default" });
  const go = h("button", { type: "submit", class: "primary" }, "Provision");
  const out = h("div", {});
  const form = h(
    "form",
    { id: "tenant-provision", class: "card inline" },
    h("h2", {}, "Provision from a template"),
    h("p", { class: "muted" }, "A tenant, the agents of a product's templates and its first API key, in one step."),
    field("Name", tenantName),
    field("Tier", tier),
    field("Product templates", product),
    field("First key's name", keyName),
    go,
    out,
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    busy(go, async () => {
      const result = await api.post("/api/admin/provision-client", {
        name: tenantName.value.trim(),
        tier: tier.value,
        product_type: product.value,
        api_key_name: keyName.value.trim(),
      });
      clear(out, h("p", {}, `Agents: ${(result.agents_created || []).join(", ") || "none"}.`), oneTimeKey(result.raw_api_key, () => clear(out)));
      tenantName.value = "";
      await done();
    });
  });
  return form;
}

/** A raw key, shown once; the page keeps no copy after it is dismissed. */
export function oneTimeKey(raw, onDismiss) {
  const code = h("code", { id: "key-raw" }, raw);
  const box = h(
    "div",
    { id: "key-once", class: "card once", role: "status" },
    h("p", {}, h("strong", {}, "Copy this key now: it is shown only once.")),
    code,
    h("div", { class: "row" },
      h("button", { type: "button", id: "key-copy", onclick: () => copy(code.textContent) }, "Copy"),
      h("button", { type: "button", id: "key-once-dismiss", onclick: () => { box.remove(); if (onDismiss) onDismiss(); } }, "I have copied it"),
    ),
  );
  return box;
}

async function copy(text) {
  try {
    await navigator.clipboard.writeText(text);
    toast("Copied.", "ok");
  } catch {
    toast("The browser refused the clipboard; select the key and copy it by hand.");
  }
}

function tenantDetail(tenant, usage, reload) {
  const tier = select("quota-tier", TIERS, tenant.tier);
  const saveTier = h("button", { type: "submit" }, "Save tier");
  const tierForm = h("form", { class: "inline" }, h("h3", {}, "Tier (sets the quota)"), field("Tier", tier), saveTier);
  tierForm.addEventListener("submit", (event) => {
    event.preventDefault();
    busy(saveTier, async () => {
      await api.put(`/api/admin/tenants/${encodeURIComponent(tenant.id)}/quota`, { tier: tier.value });
      toast("Tier saved.", "ok");
      await reload();
    });
  });
  const budget = tenant.budget || {};
  const monthly = h("input", { id: "budget-monthly", type: "number", min: 0, step: "0.01", value: budget.monthly_usd ?? "" });
  const daily = h("input", { id: "budget-daily", type: "number", min: 0, step: "0.01", value: budget.daily_usd ?? "" });
  const saveBudget = h("button", { type: "submit" }, "Save budget");
  const budgetForm = h("form", { class: "inline" }, h("h3", {}, "Budget in dollars (empty: none)"), field("Per month", monthly), field("Per day", daily), saveBudget);
  budgetForm.addEventListener("submit", (event) => {
    event.preventDefault();
    busy(saveBudget, async () => {
      const value = (input) => (input.value === "" ? null : Number(input.value));
      await api.put(`/api/admin/tenants/${encodeURIComponent(tenant.id)}/budget`, { monthly_usd: value(monthly), daily_usd: value(daily) });
      toast("Budget saved.", "ok");
      await reload();
    });
  });
  const u = usage || {};
  const facts = [
    ["Id", h("code", {}, tenant.id)],
    ["Tier", tenant.tier],
    ["Active API keys", number(tenant.api_key_count)],
    ["Agents", number(tenant.agent_count)],
    ["Spent this month", dollars(budget.spent_this_month_usd ?? u.total_cost_usd)],
    ["Spent today", dollars(budget.spent_today_usd)],
    ["Requests this month", `${number(u.monthly_requests ?? u.total_api_calls)} of ${number(u.quota_requests_per_day)} a day`],
    ["Tokens this month", `${number(u.monthly_tokens ?? u.total_tokens)} of ${number(u.quota_tokens)}`],
    ["All-time runs and tokens", `${number(tenant.total_runs)} runs, ${number(tenant.total_tokens)} tokens`],
  ];
  return [
    h("h2", {}, tenant.name),
    h("dl", { class: "facts" }, facts.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
    h("p", {}, h("a", { href: "#/keys?tenant=" + encodeURIComponent(tenant.id) }, "API keys of this tenant")),
    h("div", { class: "grid2" }, tierForm, budgetForm),
  ];
}
