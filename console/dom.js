// Building the page from data without innerHTML: text is always text, so nothing a tenant or
// a model writes can become markup.

/** An element: h("button", {class: "x", onclick: f}, "Save"). Attributes named on* are listeners. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "class") el.className = value;
    else if (name === "dataset") Object.assign(el.dataset, value);
    else if (name === "value") el.value = value;
    else if (value === true) el.setAttribute(name, "");
    else el.setAttribute(name, String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A labelled form control: the label's `for` ties it to the control for screen readers. */
export function field(label, control, hint) {
  return h("div", { class: "field" }, h("label", { for: control.id }, label), control, hint ? h("small", {}, hint) : null);
}

export function select(id, options, value) {
  return h(
    "select",
    { id, name: id },
    options.map((o) => {
      const [v, text] = Array.isArray(o) ? o : [o, o];
      return h("option", { value: v, selected: v === value }, text);
    }),
  );
}

let toastTimer;

/** Say something to the user (an error in words, or a confirmation). */
export function toast(message, kind = "error") {
  const el = document.getElementById("toast");
  el.textContent = message;
  el.className = kind;
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (el.hidden = true), kind === "error" ? 8000 : 3000);
}

export function hideToast() {
  const el = document.getElementById("toast");
  if (el) el.hidden = true;
}

export const number = (n) => (n === undefined || n === null ? "–" : Number(n).toLocaleString("en-US"));
export const dollars = (d) => (d === undefined || d === null ? "–" : "$" + Number(d).toFixed(Number(d) < 1 ? 4 : 2));
export const ms = (v) => (v === undefined || v === null ? "–" : Number(v) < 10 ? Number(v).toFixed(2) + " ms" : Math.round(v) + " ms");
export function when(text) {
  if (!text) return "–";
  const d = typeof text === "number" ? new Date(text * 1000) : new Date(text);
  return isNaN(d) ? String(text) : d.toLocaleString();
}

const PAGE_ROWS = 100;

/**
 * A table that pages its rows (100 at a time), so a list of any length stays fast.
 * columns: [{title, cell: (row) => text|Node}], rowAttrs: (row) => attributes of its <tr>.
 */
export function table(id, columns, rows, rowAttrs = () => ({})) {
  const wrap = h("div", { class: "table-wrap" });
  let page = 0;
  const pages = Math.max(1, Math.ceil(rows.length / PAGE_ROWS));
  const draw = () => {
    const shown = rows.slice(page * PAGE_ROWS, (page + 1) * PAGE_ROWS);
    const body = shown.length
      ? shown.map((row) => h("tr", rowAttrs(row), columns.map((c) => h("td", { "data-label": c.title }, c.cell(row)))))
      : h("tr", {}, h("td", { colspan: columns.length, class: "empty" }, "Nothing yet."));
    const pager =
      pages > 1
        ? h(
            "div",
            { class: "pager" },
            h("button", { type: "button", disabled: page === 0, onclick: () => ((page -= 1), draw()) }, "Previous"),
            ` Page ${page + 1} of ${pages} (${number(rows.length)} rows) `,
            h("button", { type: "button", disabled: page >= pages - 1, onclick: () => ((page += 1), draw()) }, "Next"),
          )
        : null;
    clear(
      wrap,
      h("table", { id }, h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c.title)))), h("tbody", {}, body)),
      pager,
    );
  };
  draw();
  return wrap;
}

/** Run `work` with the button disabled and a busy label, showing any error in words. */
export async function busy(button, work) {
  const label = button.textContent;
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  try {
    return await work();
  } catch (error) {
    if (error.name !== "AbortError") toast(error.message);
    return undefined;
  } finally {
    button.disabled = false;
    button.removeAttribute("aria-busy");
    button.textContent = label;
  }
}
