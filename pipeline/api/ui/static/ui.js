// The ops page: refreshes the server-rendered tables, and calls the REST API for every action.
// The token (sessionStorage, this tab only) goes as `Authorization: Bearer`, the name as `X-Pipeline-Actor`,
// on every request the page makes (reads too, so that the page keeps working once reads need a token).
"use strict";

(function () {
  const REFRESH_MS = 4000;
  const $ = (id) => document.getElementById(id);
  const store = window.sessionStorage;
  let logController = null;

  // --- who acts -----------------------------------------------------------------------------
  // With tokens on, the service records the token's name: the "Acting as" field shows it, read-only.
  const tokensOn = () => $("actor").readOnly;
  for (const id of ["actor", "token"]) {
    const input = $(id);
    if (id === "actor" && tokensOn()) continue;
    input.value = store.getItem("pipeline." + id) || "";
    input.addEventListener("input", () => store.setItem("pipeline." + id, input.value.trim()));
  }

  let whoTimer = null;
  async function showWho() {
    if (!tokensOn()) return;
    const actor = $("actor");
    const token = $("token").value.trim();
    actor.value = "";
    actor.placeholder = token ? "checking the token…" : "the token's name";
    if (!token) return;
    try {
      const response = await fetch("/ui/whoami", { headers: headers(false), cache: "no-store" });
      if (!response.ok) {
        actor.placeholder = "unknown or revoked token";
        return;
      }
      const who = await response.json();
      actor.value = who.name;
      actor.title = "token " + who.name + " (role " + who.role + "): the service records actions as " + who.name;
    } catch (e) {
      actor.placeholder = "the service did not answer";
    }
  }
  $("token").addEventListener("input", () => {
    clearTimeout(whoTimer);
    whoTimer = setTimeout(() => { showWho(); refresh(); }, 300);
  });

  function headers(json, accept) {
    const out = { Accept: accept || "application/json, application/problem+json" };
    if (json) out["Content-Type"] = "application/json";
    const token = $("token").value.trim();
    const actor = $("actor").value.trim();
    if (token) out.Authorization = "Bearer " + token;
    if (actor && !tokensOn()) out["X-Pipeline-Actor"] = actor;
    return out;
  }

  // --- messages -----------------------------------------------------------------------------
  function say(text, kind) {
    const box = $("messages");
    const div = document.createElement("div");
    div.className = "message " + (kind || "info");
    div.setAttribute("role", kind === "error" ? "alert" : "status");
    div.textContent = text;
    const close = document.createElement("button");
    close.type = "button";
    close.textContent = "Dismiss";
    close.addEventListener("click", () => div.remove());
    div.appendChild(close);
    box.prepend(div);
    while (box.children.length > 5) box.lastChild.remove();
    return div;
  }

  async function problemText(response) {
    try {
      const body = await response.json();
      if (body && body.detail) return typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
      if (body && body.title) return body.title;
    } catch (e) { /* not JSON */ }
    return response.status + " " + response.statusText;
  }

  async function call(method, url, body) {
    let response;
    try {
      response = await fetch(url, { method, headers: headers(body !== undefined),
                                    body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (e) {
      throw new Error("the service did not answer: " + e.message);
    }
    if (!response.ok) throw new Error(await problemText(response));
    return response.json();
  }

  // --- refresh without reloading ------------------------------------------------------------
  async function fragment(url, boxId) {
    const response = await fetch(url, { headers: headers(false, "text/html"), cache: "no-store" });
    if (!response.ok) throw new Error(url + ": " + (await problemText(response)));
    const html = await response.text();
    const box = $(boxId);
    if (box.innerHTML !== html) box.innerHTML = html;
  }

  let refreshing = null;
  let refreshFailed = false;
  const LIVE = new Set(["queued", "running", "pending", "awaiting_merge"]);

  function detailIsLive(box) {
    const article = box.querySelector("article[data-status]");
    return !article || LIVE.has(article.dataset.status);
  }

  function fragments() {
    const detail = $("detail-box");
    if (detail) return detailIsLive(detail) ? [fragment(detail.dataset.fragment, "detail-box")] : [];
    if (!$("matrix-box")) return [];
    const project = $("timeline-project").value;
    return [
      fragment("/ui/fragments/matrix", "matrix-box"),
      fragment("/ui/fragments/builds", "builds-box"),
      fragment("/ui/fragments/trends", "charts-box"),
      project ? fragment("/ui/fragments/timeline?project=" + encodeURIComponent(project), "timeline-box")
              : Promise.resolve(),
    ];
  }

  async function refresh() {
    if (refreshing) return refreshing;
    refreshing = Promise.all(fragments()).then(() => {
      refreshFailed = false;
      if ($("refreshed")) $("refreshed").textContent = "updated " + new Date().toLocaleTimeString();
      markSelectedBuild();
    }).catch((e) => {
      if (!refreshFailed) say("Refresh failed: " + e.message, "error");
      refreshFailed = true;
    }).finally(() => { refreshing = null; });
    return refreshing;
  }
  setInterval(() => { if (!document.hidden) refresh(); }, REFRESH_MS);

  // --- actions ------------------------------------------------------------------------------
  const TERMINAL = new Set(["succeeded", "failed", "rejected"]);

  async function watch(row, what) {
    // Follow the queued promotion until it ends, refreshing the tables as it goes.
    let current = row;
    for (let i = 0; i < 600 && !TERMINAL.has(current.status); i++) {
      await new Promise((r) => setTimeout(r, 1000));
      try { current = await call("GET", "/api/v1/promotions/" + row.id); } catch (e) { break; }
      if (i % 2 === 1) refresh();
    }
    await refresh();
    if (current.status === "succeeded") say(what + " succeeded: " + current.digest, "ok");
    else if (TERMINAL.has(current.status)) say(what + " " + current.status + ": " + (current.error || ""), "error");
  }

  function reason() { return $("reason").value.trim(); }

  async function act(button) {
    const project = button.dataset.project;
    const environment = button.dataset.environment;
    const where = project + "/" + environment;
    const base = "/api/v1/environments/" + encodeURIComponent(project) + "/" + encodeURIComponent(environment);
    button.disabled = true;
    try {
      if (button.dataset.action === "rollback") {
        if (!window.confirm("Roll back " + where + " to what ran before, and hold it?")) return;
        const row = await call("POST", base + "/rollback", { reason: reason() });
        say("Rollback of " + where + " queued as promotion #" + row.id + " (" + row.digest + ")", "info");
        await refresh();
        watch(row, "Rollback of " + where);
      } else if (button.dataset.action === "release") {
        await call("POST", base + "/release");
        say(where + " released: promotions into it are allowed again", "ok");
        await refresh();
      }
    } catch (e) {
      say(where + ": " + e.message, "error");
    } finally {
      button.disabled = false;
    }
  }

  document.addEventListener("click", (event) => {
    if (event.target.closest("a")) return;  // a link to a detail page: just follow it
    const button = event.target.closest("button[data-action]");
    if (button && (button.dataset.action === "rollback" || button.dataset.action === "release")) {
      act(button);
      return;
    }
    const row = event.target.closest("tr.build-row, button[data-action=logs]");
    if (row) followLog(row.dataset.build);
  });

  // --- promote ------------------------------------------------------------------------------
  function showEnvironmentsOf(project) {
    const select = $("promote-environment");
    let first = null;
    for (const option of select.options) {
      option.hidden = option.dataset.project !== project;
      if (!option.hidden && first === null) first = option;
    }
    if (select.selectedOptions[0] && select.selectedOptions[0].hidden && first) first.selected = true;
  }
  if ($("promote-form")) {
    $("promote-project").addEventListener("change", (e) => showEnvironmentsOf(e.target.value));
    showEnvironmentsOf($("promote-project").value);
    $("promote-form").addEventListener("submit", promoteSubmitted);
    $("timeline-project").addEventListener("change", () => refresh());
  }

  async function promoteSubmitted(event) {
    event.preventDefault();
    const project = $("promote-project").value;
    const environment = $("promote-environment").value;
    const target = $("promote-target").value.trim();
    const body = { project, environment, reason: reason() };
    if (/^[0-9]+$/.test(target)) body.build_id = Number(target);
    else body.digest = target;
    const submit = event.target.querySelector("button[type=submit]");
    submit.disabled = true;
    try {
      const row = await call("POST", "/api/v1/promotions", body);
      say("Promotion #" + row.id + " of " + row.digest + " to " + project + "/" + environment + " queued", "info");
      await refresh();
      watch(row, "Promotion to " + project + "/" + environment);
    } catch (e) {
      say("Promote to " + project + "/" + environment + ": " + e.message, "error");
    } finally {
      submit.disabled = false;
    }
  }

  // --- live log -----------------------------------------------------------------------------
  function markSelectedBuild() {
    if (!$("log-view")) return;
    const shown = $("log-view").hidden ? null : $("log-view").dataset.build;
    for (const row of document.querySelectorAll("tr.build-row")) {
      row.classList.toggle("selected", row.dataset.build === shown);
    }
  }

  async function followLog(buildId) {
    if (logController) logController.abort();
    const controller = new AbortController();
    logController = controller;
    const view = $("log-view");
    const pre = $("log");
    view.hidden = false;
    view.dataset.build = buildId;
    pre.textContent = "";
    $("log-title").textContent = "Log of build #" + buildId + " (following)";
    markSelectedBuild();
    const append = (text) => {
      const stick = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
      pre.appendChild(document.createTextNode(text + "\n"));
      if (stick) pre.scrollTop = pre.scrollHeight;
    };
    try {
      const response = await fetch("/api/v1/builds/" + encodeURIComponent(buildId) + "/logs?follow=true",
                                   { signal: controller.signal, headers: headers(false, "application/x-ndjson") });
      if (!response.ok) throw new Error(await problemText(response));
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let pending = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        pending += decoder.decode(value, { stream: true });
        let newline;
        while ((newline = pending.indexOf("\n")) >= 0) {
          const text = pending.slice(0, newline);
          pending = pending.slice(newline + 1);
          if (!text.trim()) continue;
          const item = JSON.parse(text);
          if (item.end) {
            $("log-title").textContent = "Log of build #" + buildId + " (" + item.status + ")";
            append("— build " + item.status + " —");
          } else {
            append(item.line);
          }
        }
      }
    } catch (e) {
      if (e.name === "AbortError") return;
      $("log-title").textContent = "Log of build #" + buildId;
      say("Log of build #" + buildId + ": " + e.message, "error");
    } finally {
      if (logController === controller) logController = null;
    }
  }

  if ($("log-close")) $("log-close").addEventListener("click", () => {
    if (logController) logController.abort();
    $("log-view").hidden = true;
    markSelectedBuild();
  });
  if ($("token").value.trim()) {
    showWho();
    if (document.querySelector("#detail-box p.empty, #matrix-box p.empty")) refresh();
  }
})();
