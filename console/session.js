// The signed-in session, kept in sessionStorage only: it ends with the tab, is never put in a
// URL, and sign-out removes it.
const KEY = "ares.session";

export function load() {
  try {
    const raw = sessionStorage.getItem(KEY);
    return raw ? JSON.parse(raw) : null;
  } catch {
    return null;
  }
}

export function save(session) {
  sessionStorage.setItem(KEY, JSON.stringify(session));
}

/** Forget everything this console stored: the session, playground keys and conversations. */
export function clear() {
  sessionStorage.clear();
}

/** A small per-session value (a playground key, a conversation), JSON-encoded. */
export function remember(name, value) {
  if (value === null || value === undefined) sessionStorage.removeItem("ares." + name);
  else sessionStorage.setItem("ares." + name, JSON.stringify(value));
}

export function recall(name) {
  try {
    const raw = sessionStorage.getItem("ares." + name);
    return raw ? JSON.parse(raw) : null;
  } catch {
    return null;
  }
}
