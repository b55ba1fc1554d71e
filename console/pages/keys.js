// API keys of a tenant: create (the raw key shown once), list by prefix, revoke.
import * as api from "../api.js";
import { h, clear, field, table, toast, busy, when } from "../dom.js";
import { oneTimeKey } from "./tenants.js";

export async function render(root) {
  const { tenants } = await api.get("/api/admin/tenants");
  if (!tenants.length) {
    root.append(h("p", {}, "No tenants yet. ", h("a", { href: "#/tenants" }, "Create one first.")));
    return;
  }
  const wanted = new URLSearchParams(location.hash.split("?")[1] || "").get("tenant");
  const tenant = h(
    "select",
    { id: "keys-tenant" },
    tenants.map((t) => h("option", { value: t.id, selected: t.id === wanted }, t.name)),
  );
  const name = h("input", { id: "key-name", required: true, autocomplete: "off", placeholder: "production" });
  const create = h("button", { type: "submit", id: "key-create-submit", class: "primary" }, "Create key");
  const once = h("div", {});
  const list = h("div", {});
  const form = h("form", { id: "key-create", class: "card inline" }, field("Tenant", tenant), field("Key name", name), create);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    busy(create, async () => {
      const created = await api.post(`/api/admin/tenants/${encodeURIComponent(tenant.value)}/api-keys`, { name: name.value.trim() });
      name.value = "";
      clear(once, oneTimeKey(created.raw_key, () => clear(once)));
      await load();
    });
  });
  tenant.addEventListener("change", () => {
    clear(once);
    load();
  });

  async function load() {
    const { keys } = await api.get(`/api/admin/tenants/${encodeURIComponent(tenant.value)}/api-keys`);
    clear(
      list,
      table(
        "key-table",
        [
          { title: "Name", cell: (k) => k.name },
          { title: "Prefix", cell: (k) => h("code", {}, k.key_prefix || k.prefix) },
          { title: "State", cell: (k) => (k.is_active ? "active" : "revoked") },
          { title: "Created", cell: (k) => when(k.created_at) },
          { title: "Last used", cell: (k) => when(k.last_used) },
          { title: "", cell: (k) => (k.is_active ? h("button", { type: "button", class: "revoke danger", onclick: (e) => revoke(e.currentTarget, k) }, "Revoke") : "") },
        ],
        keys,
        (k) => ({ dataset: { keyId: k.id } }),
      ),
    );
  }

  function revoke(button, key) {
    if (!confirm(`Revoke the key ${key.name} (${key.key_prefix || key.prefix})? Clients using it stop working at once.`)) return;
    busy(button, async () => {
      await api.del(`/api/admin/tenants/${encodeURIComponent(tenant.value)}/api-keys/${encodeURIComponent(key.id)}`);
      toast("Key revoked.", "ok");
      await load();
    });
  }

  root.append(form, once, list);
  await load();
}
