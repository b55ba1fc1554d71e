// The request log: filters, newest first, pages through the server's cursor, a detail panel.
import * as api from "../api.js";
import { h, clear, field, select, table, busy, ms, dollars, when } from "../dom.js";

const PAGE = 200;

export async function render(root) {
  const route = h("input", { id: "req-filter-route", placeholder: "/v1/chat/completions", autocomplete: "off" });
  const status = select("req-filter-status", [["", "any"], ["2xx", "2xx"], ["4xx", "4xx"], ["5xx", "5xx"]], "");
  const tenant = h("input", { id: "req-filter-tenant", placeholder: "tenant id", autocomplete: "off" });
  const text = h("input", { id: "req-filter-q", placeholder: "error text", autocomplete: "off" });
  const refresh = h("button", { type: "submit", id: "req-refresh", class: "primary" }, "Show");
  const more = h("button", { type: "button", id: "req-more", hidden: true }, "Older requests");
  const list = h("div", {});
  const detail = h("pre", { id: "req-detail", class: "detail", "aria-live": "polite" }, "Choose a request to see all it recorded.");
  const form = h("form", { class: "card inline", id: "req-filters" }, field("Route", route), field("Status", status), field("Tenant", tenant), field("Error text", text), refresh);
  let rows = [];
  let cursor = null;

  async function load(append) {
    const page = await api.get(
      "/api/admin/requests" + api.query({ route: route.value.trim(), status: status.value, tenant_id: tenant.value.trim(), q: text.value.trim(), limit: PAGE, cursor: append ? cursor : "" }),
    );
    rows = append ? rows.concat(page.requests) : page.requests;
    cursor = page.next_cursor;
    more.hidden = !cursor;
    clear(
      list,
      table(
        "req-table",
        [
          { title: "Time", cell: (r) => when(r.timestamp) },
          { title: "Route", cell: (r) => `${r.method} ${r.route}` },
          { title: "Status", cell: (r) => String(r.status) },
          { title: "Duration", cell: (r) => ms(r.duration_ms) },
          { title: "Model", cell: (r) => r.model || "–" },
          { title: "Tokens", cell: (r) => `${r.input_tokens} / ${r.output_tokens}` },
          { title: "Cost", cell: (r) => dollars(r.cost_usd) },
        ],
        rows,
        (r) => ({
          class: "clickable",
          tabindex: "0",
          dataset: { requestId: r.request_id },
          onclick: (e) => show(e.currentTarget, r),
          onkeydown: (e) => (e.key === "Enter" || e.key === " ") && (e.preventDefault(), show(e.currentTarget, r)),
        }),
      ),
    );
  }

  function show(row, r) {
    for (const el of list.querySelectorAll("tr.selected")) el.classList.remove("selected");
    row.classList.add("selected");
    const order = ["timestamp", "request_id", "method", "route", "status", "error_code", "error", "duration_ms", "ttft_ms", "principal", "tenant_id", "user_id", "api_key_prefix", "agent", "model", "provider", "attempts", "input_tokens", "output_tokens", "cached_input_tokens", "cost_usd"];
    const keys = [...order.filter((k) => k in r), ...Object.keys(r).filter((k) => !order.includes(k))];
    const lines = keys.map((k) => `${k}: ${r[k] === null || r[k] === undefined ? "–" : r[k]}`);
    detail.textContent = lines.join("\n");
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    busy(refresh, () => load(false));
  });
  more.addEventListener("click", () => busy(more, () => load(true)));
  root.append(form, list, more, h("h2", {}, "Detail"), detail);
  await load(false);
}
