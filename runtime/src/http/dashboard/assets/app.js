// durable dashboard: the theme toggle, confirmed actions, and live refresh of the parts of a
// page marked `data-live`. Plain JavaScript, served by the host; no other script is loaded.
"use strict";

(function () {
  const root = document.documentElement;
  const THEME = "durable-theme";

  function applyTheme(theme) {
    if (theme === "light" || theme === "dark") root.dataset.theme = theme;
    else delete root.dataset.theme;
  }
  try { applyTheme(localStorage.getItem(THEME)); } catch (e) { /* storage refused */ }

  function currentTheme() {
    if (root.dataset.theme) return root.dataset.theme;
    return window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
  }

  // What happened, in the corner of the page (#toast, a live region).
  let toastTimer = null;
  function toast(message, ok) {
    const el = document.getElementById("toast");
    if (!el) return;
    el.textContent = message;
    el.className = "show " + (ok ? "ok" : "err");
    el.dataset.ok = ok ? "true" : "false";
    clearTimeout(toastTimer);
    toastTimer = setTimeout(function () { el.className = ""; }, ok ? 6000 : 12000);
  }

  // A confirmation in the page's <dialog>; resolves to true when confirmed.
  function confirmAction(text) {
    const dialog = document.getElementById("confirm");
    if (!dialog || typeof dialog.showModal !== "function") {
      return Promise.resolve(window.confirm(text));
    }
    document.getElementById("confirm-text").textContent = text;
    return new Promise(function (resolve) {
      dialog.addEventListener("close", function once() {
        dialog.removeEventListener("close", once);
        resolve(dialog.returnValue === "ok");
      });
      dialog.returnValue = "";
      dialog.showModal();
      document.getElementById("confirm-ok").focus();
    });
  }

  // Sends an action; the header is what the host requires of every action (a page of another
  // site cannot add it), and the key travels in the sign-in cookie when the host has one.
  async function send(url, data, control) {
    if (control) control.disabled = true;
    try {
      const response = await fetch(url, {
        method: "POST",
        credentials: "same-origin",
        headers: { "content-type": "application/json", "x-durable-dashboard": "1" },
        body: JSON.stringify(data),
      });
      let body = null;
      try { body = await response.json(); } catch (e) { body = null; }
      const message = body && body.message ? body.message : "The host answered " + response.status + ".";
      toast(message, response.ok && body && body.ok);
      if (response.ok && body && body.location) {
        setTimeout(function () { window.location.assign(body.location); }, 900);
        return;
      }
      if (response.ok) await refresh(true);
    } catch (e) {
      toast("The host could not be reached: " + e, false);
    } finally {
      if (control) control.disabled = false;
    }
  }

  // Replaces the live parts of the page with the same parts of a fresh copy; keeps open
  // timeline rows open and leaves alone a part in which the user is typing.
  let refreshing = false;
  async function refresh(afterAction) {
    if (refreshing) return;
    refreshing = true;
    try {
      const response = await fetch(window.location.href, { credentials: "same-origin", headers: { accept: "text/html" } });
      if (!response.ok) return;
      const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
      const selector = afterAction ? "[data-live], [data-after-action]" : "[data-live]";
      document.querySelectorAll(selector).forEach(function (part) {
        if (!part.id) return;
        if (!afterAction && part.contains(document.activeElement) && document.activeElement !== document.body) return;
        const next = fresh.getElementById(part.id);
        if (!next) return;
        const open = new Set();
        part.querySelectorAll("details[open][id]").forEach(function (d) { open.add(d.id); });
        open.forEach(function (id) {
          const d = next.querySelector("#" + CSS.escape(id));
          if (d) d.open = true;
        });
        part.replaceWith(document.importNode(next, true));
      });
      bind(document);
    } catch (e) {
      /* the next tick tries again */
    } finally {
      refreshing = false;
    }
  }

  function formData(form) {
    const data = {};
    new FormData(form).forEach(function (value, key) { data[key] = String(value); });
    return data;
  }

  function bind(scope) {
    scope.querySelectorAll("button.act[data-action]:not([data-bound])").forEach(function (button) {
      button.dataset.bound = "1";
      button.addEventListener("click", async function () {
        if (await confirmAction(button.dataset.confirm || "Are you sure?")) {
          await send(button.dataset.action, {}, button);
        }
      });
    });
    scope.querySelectorAll("form.action[data-action]:not([data-bound])").forEach(function (form) {
      form.dataset.bound = "1";
      form.addEventListener("submit", async function (event) {
        event.preventDefault();
        if (await confirmAction(form.dataset.confirm || "Are you sure?")) {
          await send(form.dataset.action, formData(form), form.querySelector("button"));
        }
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    const themeButton = document.getElementById("theme");
    if (themeButton) {
      themeButton.addEventListener("click", function () {
        const next = currentTheme() === "dark" ? "light" : "dark";
        applyTheme(next);
        try { localStorage.setItem(THEME, next); } catch (e) { /* storage refused */ }
      });
    }
    bind(document);
    // Live refresh: every few seconds while the page is visible and "live" is ticked.
    setInterval(function () {
      const live = document.getElementById("live");
      if (live && live.checked && document.visibilityState === "visible") refresh(false);
    }, 4000);
  });
})();
