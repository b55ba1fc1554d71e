// The console's shell: sign-in, navigation and the hash router. Each page is a module with
// `render(root, ctx)`; pages use the documented API only (api.js).
import * as api from "./api.js";
import * as session from "./session.js";
import { h, clear, field, toast, hideToast } from "./dom.js";

const PAGES = [
  { path: "overview", title: "Overview", admin: true, load: () => import("./pages/overview.js") },
  { path: "tenants", title: "Tenants", admin: true, load: () => import("./pages/tenants.js") },
  { path: "keys", title: "API keys", admin: true, load: () => import("./pages/keys.js") },
  { path: "playground", title: "Playground", admin: true, user: true, load: () => import("./pages/playground.js") },
  { path: "agents", title: "Agents", admin: true, user: true, load: () => import("./pages/agents.js") },
  { path: "requests", title: "Requests", admin: true, load: () => import("./pages/requests.js") },
  { path: "knowledge", title: "Knowledge", admin: true, user: true, load: () => import("./pages/knowledge.js") },
  { path: "deployments", title: "Deployments", admin: true, load: () => import("./pages/deployments.js") },
  { path: "providers", title: "Providers", admin: true, load: () => import("./pages/providers.js") },
];

const app = document.getElementById("app");
let refreshTimer;
let current = null;

function pagesFor(s) {
  return PAGES.filter((p) => (s.mode === "admin" ? p.admin : p.user));
}

function signIn() {
  clearInterval(refreshTimer);
  const error = h("p", { id: "signin-error", role: "alert", class: "error" });
  const adminMode = h("input", { type: "radio", id: "signin-mode-admin", name: "mode", value: "admin", checked: true });
  const userMode = h("input", { type: "radio", id: "signin-mode-user", name: "mode", value: "user" });
  const secret = h("input", { type: "password", id: "admin-secret", autocomplete: "current-password", required: true });
  const email = h("input", { type: "email", id: "email", autocomplete: "username" });
  const password = h("input", { type: "password", id: "password", autocomplete: "current-password" });
  const adminFields = h("div", {}, field("Admin secret", secret, "From ADMIN_API_KEY, or data/secrets/admin_secret."));
  const userFields = h("div", { hidden: true }, field("Email", email), field("Password", password));
  const switchMode = () => {
    const admin = adminMode.checked;
    adminFields.hidden = !admin;
    userFields.hidden = admin;
    secret.required = admin;
    email.required = !admin;
    password.required = !admin;
    error.textContent = "";
  };
  adminMode.addEventListener("change", switchMode);
  userMode.addEventListener("change", switchMode);
  const submit = h("button", { type: "submit", id: "signin-submit", class: "primary" }, "Sign in");
  const form = h(
    "form",
    { id: "signin", class: "card signin" },
    h("h1", {}, "ARES console"),
    h(
      "fieldset",
      { class: "modes" },
      h("legend", {}, "Sign in as"),
      h("label", {}, adminMode, " Operator (admin secret)"),
      h("label", {}, userMode, " User (email and password)"),
    ),
    adminFields,
    userFields,
    error,
    submit,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    submit.disabled = true;
    try {
      if (adminMode.checked) {
        const candidate = { mode: "admin", secret: secret.value };
        // Any admin call tells whether the secret is right; this one reads nothing large.
        await api.get("/api/admin/stats", { headers: { "X-Admin-Secret": candidate.secret }, auth: "none" }).catch((e) => {
          throw e.status === 401 ? new api.ApiError("Invalid admin secret.", 401) : e;
        });
        session.save(candidate);
      } else {
        const tokens = await api.post("/api/auth/login", { email: email.value, password: password.value }, { auth: "none" });
        session.save({ mode: "user", email: email.value, ...tokens, expires_at: Date.now() + tokens.expires_in * 1000 });
      }
      secret.value = "";
      password.value = "";
      start();
    } catch (e) {
      error.textContent = e.message;
    } finally {
      submit.disabled = false;
    }
  });
  clear(app, h("main", { class: "signin-page" }, form));
  secret.focus();
}

async function signOut() {
  const s = session.load();
  if (s && s.mode === "user" && s.refresh_token) {
    // Ends the session server-side too; the page forgets it whatever the answer.
    await api.post("/api/auth/logout", { refresh_token: s.refresh_token }, { auth: "none" }).catch(() => {});
  }
  session.clear();
  hideToast();
  location.hash = "";
  signIn();
}

function start() {
  const s = session.load();
  if (!s) return signIn();
  if (s.mode === "user") refreshTimer = api.scheduleRefresh(() => { toast("Your session has ended; please sign in again."); signOut(); });
  const pages = pagesFor(s);
  const links = pages.map((p) => h("a", { href: "#/" + p.path, dataset: { page: p.path } }, p.title));
  const nav = h("nav", { id: "nav", "aria-label": "Console pages" }, links);
  const menu = h("button", { type: "button", class: "menu", "aria-controls": "nav", "aria-expanded": "false" }, "Menu");
  menu.addEventListener("click", () => {
    const open = nav.classList.toggle("open");
    menu.setAttribute("aria-expanded", String(open));
  });
  const main = h("main", { id: "page", tabindex: "-1" });
  clear(
    app,
    h(
      "header",
      { class: "top" },
      h("span", { class: "brand" }, "ARES"),
      menu,
      nav,
      h("span", { id: "whoami" }, s.mode === "admin" ? "Admin" : s.email),
      h("button", { type: "button", id: "signout", onclick: signOut }, "Sign out"),
    ),
    main,
  );
  route();
}

async function route() {
  const s = session.load();
  if (!s) return signIn();
  const main = document.getElementById("page");
  if (!main) return start();
  const pages = pagesFor(s);
  const name = location.hash.replace(/^#\/?/, "").split("?")[0];
  const page = pages.find((p) => p.path === name) || pages[0];
  if (page.path !== name) {
    history.replaceState(null, "", "#/" + page.path);
  }
  for (const link of document.querySelectorAll("#nav a")) {
    if (link.dataset.page === page.path) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  document.getElementById("nav").classList.remove("open");
  if (current && current.leave) current.leave();
  const root = h("section", { dataset: { page: page.path }, "aria-labelledby": "page-title" }, h("h1", { id: "page-title" }, page.title));
  clear(main, root);
  document.title = page.title + " · ARES console";
  try {
    const module = await page.load();
    current = module;
    await module.render(root, { session: s });
  } catch (e) {
    toast(e.message);
    root.append(h("p", { class: "error" }, e.message));
  } finally {
    root.dataset.ready = "1";
  }
}

window.addEventListener("hashchange", route);
start();
