// Overview: today's totals, the recent request log drawn over time (requests, tokens, cost,
// error rate), latency percentiles, upstream health and open alerts.
import * as api from "../api.js";
import { h, number, dollars, ms, when, table } from "../dom.js";
import { lineChart } from "../chart.js";

const RECENT = 500;

export async function render(root) {
  const [stats, log, providers, alerts] = await Promise.all([
    api.get("/api/admin/stats"),
    api.get("/api/admin/requests" + api.query({ limit: RECENT })),
    api.get("/api/admin/providers"),
    api.get("/api/admin/alerts" + api.query({ resolved: "false" })).catch(() => ({ alerts: [] })),
  ]);
  const requests = log.requests || [];
  const durations = requests.map((r) => r.duration_ms).sort((a, b) => a - b);
  const pct = (p) => (durations.length ? durations[Math.min(durations.length - 1, Math.floor((p / 100) * durations.length))] : null);
  const errors = requests.filter((r) => r.status >= 500).length;
  const tiles = [
    ["Tenants", number(stats.total_tenants)],
    ["Requests today", number(stats.total_requests_today)],
    ["Tokens today", number(stats.total_tokens_today)],
    ["Agent runs today", number(stats.total_runs_today)],
    [`p50 latency (last ${number(requests.length)})`, ms(pct(50))],
    ["p99 latency", ms(pct(99))],
    ["Server errors (5xx)", requests.length ? ((100 * errors) / requests.length).toFixed(1) + " %" : "–"],
    ["Open alerts", number(stats.active_alerts)],
  ];
  const series = bucket(requests);
  root.append(
    h("div", { class: "grid4" }, tiles.map(([label, value]) => h("div", { class: "stat" }, h("div", { class: "value" }, value), h("div", { class: "label" }, label)))),
    h(
      "div",
      { class: "grid2" },
      card("Requests per minute", lineChart("Requests per minute", series.map((b) => ({ t: b.t, v: b.requests })), (v) => number(Math.round(v)))),
      card("Tokens per minute", lineChart("Tokens per minute", series.map((b) => ({ t: b.t, v: b.tokens })), (v) => number(Math.round(v)))),
      card("Cost per minute", lineChart("Cost per minute in dollars", series.map((b) => ({ t: b.t, v: b.cost })), (v) => dollars(v))),
      card("Error rate", lineChart("Share of requests that failed (4xx and 5xx)", series.map((b) => ({ t: b.t, v: b.requests ? (100 * b.errors) / b.requests : 0 })), (v) => v.toFixed(0) + " %")),
    ),
    h("h2", {}, "Upstreams"),
    table(
      "overview-upstreams",
      [
        { title: "Provider", cell: (d) => d.provider },
        { title: "Model", cell: (d) => d.model },
        { title: "Circuit", cell: (d) => d.circuit },
        { title: "In flight", cell: (d) => number(d.in_flight) },
        { title: "Last error", cell: (d) => d.last_error || (d.available ? "–" : d.disabled_reason) },
      ],
      (providers.providers || []).flatMap((p) =>
        p.deployments.length ? p.deployments.map((d) => ({ ...d, provider: p.name, available: p.available, disabled_reason: p.disabled_reason })) : [{ provider: p.name, model: "–", circuit: p.available ? "–" : "unavailable", available: p.available, disabled_reason: p.disabled_reason }],
      ),
    ),
    h("h2", {}, "Open alerts"),
    table(
      "overview-alerts",
      [
        { title: "When", cell: (a) => when(a.created_at) },
        { title: "Severity", cell: (a) => a.severity },
        { title: "Title", cell: (a) => a.title || a.alert_type },
        { title: "Message", cell: (a) => a.message },
      ],
      (alerts.alerts || alerts || []).filter((a) => !a.resolved),
    ),
  );
}

function card(title, body) {
  return h("div", { class: "card" }, h("h3", {}, title), body);
}

/** The log's requests per minute, oldest first. */
function bucket(requests) {
  const minutes = new Map();
  for (const r of requests) {
    const t = Math.floor(Date.parse(r.timestamp) / 60000) * 60000;
    const b = minutes.get(t) || { t, requests: 0, tokens: 0, cost: 0, errors: 0 };
    b.requests += 1;
    b.tokens += (r.input_tokens || 0) + (r.output_tokens || 0);
    b.cost += Number(r.cost_usd) || 0;
    if (r.status >= 400) b.errors += 1;
    minutes.set(t, b);
  }
  // Minutes without a request are drawn as zeros, not bridged by a line.
  const times = [...minutes.keys()];
  if (!times.length) return [];
  const [first, last] = [Math.min(...times), Math.max(...times)];
  const step = Math.max(60000, Math.ceil((last - first) / 60000 / 240) * 60000);
  const series = [];
  for (let t = first; t <= last; t += step) {
    const b = { t, requests: 0, tokens: 0, cost: 0, errors: 0 };
    for (let m = t; m < t + step; m += 60000) {
      const x = minutes.get(m);
      if (x) for (const k of ["requests", "tokens", "cost", "errors"]) b[k] += x[k];
    }
    series.push(b);
  }
  return series;
}
