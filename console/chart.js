// Charts drawn as SVG elements (no canvas, no library): a line over time with its axis labels.
const NS = "http://www.w3.org/2000/svg";

function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [name, value] of Object.entries(attrs)) el.setAttribute(name, String(value));
  el.append(...children);
  return el;
}

/** points: [{t: ms since epoch, v: number}], ascending. */
export function lineChart(title, points, format = (v) => String(v)) {
  const width = 320;
  const height = 120;
  const pad = { l: 44, r: 8, t: 8, b: 20 };
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": title, class: "chart" });
  root.append(svg("title", {}, title));
  if (!points.length) {
    root.append(svg("text", { x: width / 2, y: height / 2, "text-anchor": "middle", class: "muted" }, "No data yet"));
    return root;
  }
  const t0 = points[0].t;
  const t1 = Math.max(points[points.length - 1].t, t0 + 1);
  const vmax = Math.max(...points.map((p) => p.v), 0) || 1;
  const x = (t) => pad.l + ((t - t0) / (t1 - t0)) * (width - pad.l - pad.r);
  const y = (v) => height - pad.b - (v / vmax) * (height - pad.t - pad.b);
  const path = points.map((p, i) => `${i ? "L" : "M"}${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`).join(" ");
  root.append(
    svg("line", { x1: pad.l, y1: height - pad.b, x2: width - pad.r, y2: height - pad.b, class: "axis" }),
    svg("line", { x1: pad.l, y1: pad.t, x2: pad.l, y2: height - pad.b, class: "axis" }),
    svg("text", { x: pad.l - 4, y: pad.t + 8, "text-anchor": "end", class: "tick" }, format(vmax)),
    svg("text", { x: pad.l - 4, y: height - pad.b, "text-anchor": "end", class: "tick" }, format(0)),
    svg("text", { x: pad.l, y: height - 4, class: "tick" }, new Date(t0).toLocaleTimeString()),
    svg("text", { x: width - pad.r, y: height - 4, "text-anchor": "end", class: "tick" }, new Date(t1).toLocaleTimeString()),
    svg("path", { d: path, class: "line" }),
  );
  for (const p of points) root.append(svg("circle", { cx: x(p.t).toFixed(1), cy: y(p.v).toFixed(1), r: 2, class: "dot" }));
  return root;
}
