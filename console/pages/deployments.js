// Deployments: targets, trigger, live output over SSE, cancel, history; services with their
// status and recent log lines.
import * as api from "../api.js";
import { events } from "../sse.js";
import { h, clear, field, table, toast, busy, when } from "../dom.js";

let controller = null;

export function leave() {
  if (controller) controller.abort();
}

export async function render(root) {
  const history = h("div", {});
  const live = h("div", { id: "deploy-live", class: "card", hidden: true });
  const services = h("div", {});
  const serviceLog = h("pre", { id: "service-log", class: "detail", hidden: true });
  const target = h("select", { id: "deploy-target" });
  const start = h("button", { type: "submit", id: "deploy-start", class: "primary" }, "Deploy");
  const form = h("form", { id: "deploy-form", class: "card inline" }, field("Target", target), start);

  async function load() {
    const { deploys, targets } = await api.get("/api/admin/deploys");
    const wanted = target.value;
    clear(target, (targets || []).map((t) => h("option", { value: t.name, selected: t.name === wanted }, t.description ? `${t.name} — ${t.description}` : t.name)));
    start.disabled = !(targets || []).length;
    if (!(targets || []).length) form.append(h("p", { class: "muted" }, "No deploy targets are configured ([[deploy.targets]] in ares.toml)."));
    clear(
      history,
      table(
        "deploy-table",
        [
          { title: "Started", cell: (d) => when(d.started_at) },
          { title: "Target", cell: (d) => d.target },
          { title: "Status", cell: (d) => d.status },
          { title: "Exit", cell: (d) => (d.exit_code === null || d.exit_code === undefined ? "–" : String(d.exit_code)) },
          { title: "", cell: (d) => h("button", { type: "button", class: "link", onclick: () => follow(d.id) }, d.status === "running" ? "Follow" : "Output") },
        ],
        deploys,
        (d) => ({ dataset: { deployId: d.id } }),
      ),
    );
  }

  async function follow(id) {
    if (controller) controller.abort();
    controller = new AbortController();
    const output = h("pre", { id: "deploy-output", class: "detail", "aria-live": "polite" });
    const status = h("p", { id: "deploy-status" }, "running");
    const cancel = h("button", { type: "button", id: "deploy-cancel", class: "danger" }, "Cancel");
    cancel.addEventListener("click", () =>
      busy(cancel, async () => {
        await api.post(`/api/admin/deploy/${encodeURIComponent(id)}/cancel`, {});
        toast("Cancel requested.", "ok");
      }),
    );
    live.hidden = false;
    clear(live, h("h2", {}, "Deploy ", h("code", {}, id)), status, cancel, output);
    const append = (line) => {
      output.textContent += line + "\n";
      output.scrollTop = output.scrollHeight;
    };
    try {
      const response = await api.get(`/api/admin/deploy/${encodeURIComponent(id)}/events`, { raw: true, signal: controller.signal });
      for await (const event of events(response)) {
        if (event.event === "state") {
          const state = JSON.parse(event.data);
          output.textContent = state.output ? state.output.replace(/\n?$/, "\n") : "";
          status.textContent = state.status;
        } else if (event.event === "output") {
          append(event.data);
        } else if (event.event === "status") {
          const record = JSON.parse(event.data);
          status.textContent = `${record.status}${record.exit_code === null || record.exit_code === undefined ? "" : " (exit " + record.exit_code + ")"}${record.note ? " — " + record.note : ""}`;
          cancel.hidden = true;
        }
      }
    } catch (e) {
      if (e.name !== "AbortError") toast(e.message);
    } finally {
      cancel.hidden = true;
      live.dataset.done = "1";
      await load().catch(() => {});
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    busy(start, async () => {
      const started = await api.post("/api/admin/deploy", { target: target.value });
      await load();
      follow(started.id);
    });
  });

  async function loadServices() {
    const all = await api.get("/api/admin/services");
    const rows = Object.entries(all).map(([name, s]) => ({ name, ...s }));
    clear(
      services,
      table(
        "service-table",
        [
          { title: "Service", cell: (s) => s.name },
          { title: "Status", cell: (s) => s.status },
          { title: "Detail", cell: (s) => [s.unit && `unit ${s.unit}`, s.pid && `pid ${s.pid}`, s.port && `port ${s.port}`, s.version && `v${s.version}`].filter(Boolean).join(", ") || "–" },
          { title: "", cell: (s) => h("button", { type: "button", class: "link", onclick: () => showLogs(s.name) }, "Logs") },
        ],
        rows,
        (s) => ({ dataset: { service: s.name } }),
      ),
    );
  }

  async function showLogs(name) {
    serviceLog.hidden = false;
    serviceLog.textContent = "Loading…";
    try {
      const { lines } = await api.get(`/api/admin/services/${encodeURIComponent(name)}/logs` + api.query({ lines: 200 }));
      serviceLog.textContent = lines.length ? lines.join("\n") : "No log lines.";
    } catch (e) {
      serviceLog.textContent = e.message;
    }
  }

  root.append(form, live, h("h2", {}, "History"), history, h("h2", {}, "Services"), services, serviceLog);
  await Promise.all([load(), loadServices()]);
}
