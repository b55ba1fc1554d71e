// Providers and their deployments: circuit state, calls in flight, the last error; reload the
// configuration.
import * as api from "../api.js";
import { h, clear, table, toast, busy, number, when } from "../dom.js";

export async function render(root) {
  const list = h("div", {});
  const reload = h("button", { type: "button", id: "config-reload", class: "primary" }, "Reload the configuration");
  const report = h("pre", { id: "reload-report", class: "detail", hidden: true });
  reload.addEventListener("click", () =>
    busy(reload, async () => {
      const result = await api.post("/api/admin/config/reload", {});
      report.hidden = false;
      report.textContent = JSON.stringify({ changes: result.changes, restart_required: result.restart_required }, null, 2);
      toast("Configuration reloaded.", "ok");
      await load();
    }),
  );

  async function load() {
    const [{ providers }, models] = await Promise.all([api.get("/api/admin/providers"), api.get("/api/admin/models").catch(() => null)]);
    const rows = providers.flatMap((p) =>
      (p.deployments.length ? p.deployments : [null]).map((d) => ({ provider: p, deployment: d })),
    );
    clear(
      list,
      table(
        "provider-table",
        [
          { title: "Provider", cell: (r) => `${r.provider.name} (${r.provider.type})` },
          { title: "Base URL", cell: (r) => h("code", {}, r.provider.base_url || "–") },
          { title: "Available", cell: (r) => (r.provider.available ? "yes" : `no: ${r.provider.disabled_reason}`) },
          { title: "Model", cell: (r) => (r.deployment ? `${r.deployment.model} → ${r.deployment.model_id}` : "–") },
          { title: "Circuit", cell: (r) => (r.deployment ? r.deployment.circuit : "–") },
          { title: "In flight", cell: (r) => (r.deployment ? number(r.deployment.in_flight) : "–") },
          { title: "Failures", cell: (r) => (r.deployment ? number(r.deployment.consecutive_failures) : "–") },
          { title: "Last error", cell: (r) => (r.deployment && r.deployment.last_error ? `${r.deployment.last_error} (${when(r.deployment.last_failure_at)})` : "–") },
        ],
        rows,
        (r) => ({ dataset: { provider: r.provider.name } }),
      ),
    );
    if (models) {
      const items = Array.isArray(models) ? models : models.models || [];
      list.append(
        h("h2", {}, "Models"),
        table(
          "model-table",
          [
            { title: "Name", cell: (m) => m.name || m.id },
            { title: "Provider", cell: (m) => m.provider || "–" },
            { title: "Model id", cell: (m) => m.model_id || m.model || "–" },
            { title: "Tier", cell: (m) => m.tier || "–" },
          ],
          items,
        ),
      );
    }
  }

  root.append(h("div", { class: "row" }, reload), report, list);
  await load();
}
