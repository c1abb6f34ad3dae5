// gitmoxi's web page: live updates over server-sent events, and the buttons (each asks first).
// No framework, no build step; served from the binary.
"use strict";

(function () {
  const live = document.getElementById("live");
  const banner = document.getElementById("disconnected");
  const connection = document.getElementById("connection");
  const result = document.getElementById("result");
  const dialog = document.getElementById("confirm");
  window.gitmoxiPageLoadedAt = window.gitmoxiPageLoadedAt || Date.now();

  function setConnection(state, words) {
    if (!connection) return;
    connection.dataset.state = state;
    connection.textContent = words;
  }

  // --- live updates -------------------------------------------------------------------------
  let refreshing = false;
  let again = false;
  async function refresh() {
    if (!live || !live.dataset.live) return;
    if (refreshing) { again = true; return; }
    refreshing = true;
    try {
      const response = await fetch(window.location.href, {
        headers: { "X-Gitmoxi-Fragment": "live" },
        credentials: "same-origin",
        redirect: "manual",
      });
      if (response.type === "opaqueredirect" || response.status === 401) {
        window.location.href = "/ui/login?next=" + encodeURIComponent(window.location.pathname + window.location.search);
        return;
      }
      if (response.ok) {
        const html = await response.text();
        // keep open <details> open across the swap
        const open = Array.from(live.querySelectorAll("details[open] summary")).map((s) => s.textContent);
        // and keep the keyboard focus on the same button
        const focused = document.activeElement && live.contains(document.activeElement) && document.activeElement.dataset
          ? document.activeElement.dataset.command : null;
        live.innerHTML = html;
        if (focused) {
          const again = live.querySelector('button[data-command="' + focused + '"]');
          if (again) again.focus();
        }
        live.querySelectorAll("details summary").forEach((s) => {
          if (open.includes(s.textContent)) s.parentElement.open = true;
        });
        live.dataset.refreshedAt = String(Date.now());
      }
    } catch (e) {
      // the event stream reports the disconnection; the next change refreshes again
    } finally {
      refreshing = false;
      if (again) { again = false; refresh(); }
    }
  }

  let source = null;
  let lostTimer = null;
  function connect() {
    if (!live || !live.dataset.live || !window.EventSource) return;
    source = new EventSource("/ui/events");
    source.addEventListener("hello", () => {
      clearTimeout(lostTimer);
      lostTimer = null;
      if (banner) banner.hidden = true;
      setConnection("live", "live");
      refresh();
    });
    source.addEventListener("change", () => refresh());
    source.onerror = () => {
      // a stream ends every 90 s and reconnects at once: say "disconnected" only if it stays so
      if (lostTimer) return;
      lostTimer = setTimeout(() => {
        if (banner) banner.hidden = false;
        setConnection("lost", "disconnected, retrying…");
      }, 2500);
      if (source.readyState === EventSource.CLOSED) {
        source.close();
        setTimeout(connect, 2000);
      }
    };
  }

  // --- buttons ------------------------------------------------------------------------------
  function show(message, ok) {
    if (!result) return;
    result.hidden = false;
    result.className = "result " + (ok ? "ok" : "bad");
    result.textContent = message;
  }

  function ask(question) {
    return new Promise((resolve) => {
      if (!dialog || !dialog.showModal) { resolve(window.confirm(question)); return; }
      document.getElementById("confirm-text").textContent = question;
      dialog.returnValue = "cancel";
      dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
      dialog.showModal();
      document.getElementById("confirm-ok").focus();
    });
  }

  async function send(button) {
    const body = { command: button.dataset.command };
    for (const field of ["app", "repo", "branch"]) {
      if (button.dataset[field]) body[field] = button.dataset[field];
    }
    button.disabled = true;
    try {
      const response = await fetch("/ui/command", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        credentials: "same-origin",
        body: JSON.stringify(body),
      });
      let answer = {};
      try { answer = await response.json(); } catch (e) { answer = {}; }
      if (response.ok) {
        const what = body.app ? body.command + " " + body.app : body.command;
        show(what + ": accepted" + (answer.message ? " — " + answer.message : ""), true);
      } else {
        show(body.command + " refused (" + response.status + "): " + (answer.error || response.statusText), false);
      }
    } catch (e) {
      show(body.command + " was not sent: gitmoxi did not answer (" + e.message + ")", false);
    } finally {
      button.disabled = false;
      refresh();
    }
  }

  document.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-command]");
    if (!button) return;
    event.preventDefault();
    if (await ask(button.dataset.confirm || "Send " + button.dataset.command + "?")) send(button);
  });

  connect();
})();
