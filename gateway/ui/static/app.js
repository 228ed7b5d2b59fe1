/* The usage page. Reads the gateway's own JSON API with the key the user typed in; the
   key lives in this tab's sessionStorage only (never a cookie, never a URL). Every value
   from the API reaches the page through textContent, never as HTML. */
"use strict";

const KEY_SLOT = "bedrock-gateway.api-key";
const state = { key: null, admin: false, charts: {} };

function $(id) { return document.getElementById(id); }

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

async function api(method, path, body) {
  const init = { method, headers: { "Authorization": "Bearer " + state.key } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (e) { data = text; }
  if (!response.ok) {
    const message = data && data.error ? data.error.message : ("HTTP " + response.status);
    const error = new Error(message);
    error.status = response.status;
    throw error;
  }
  return data;
}

const usd = (v) => "$" + Number(v || 0).toFixed(4);
const int = (v) => Number(v || 0).toLocaleString("en-US");

function isoDay(date) { return date.toISOString().slice(0, 10); }

function rangeQuery() {
  const start = $("start").value;
  const endDay = new Date($("end").value + "T00:00:00Z");
  endDay.setUTCDate(endDay.getUTCDate() + 1);
  return "start=" + start + "T00:00:00Z&end=" + isoDay(endDay) + "T00:00:00Z";
}

function fillTable(table, headers, rows, numeric, empty) {
  table.replaceChildren();
  const head = el("tr");
  headers.forEach((h) => head.appendChild(el("th", h)));
  table.appendChild(head);
  rows.forEach((cells) => {
    const tr = el("tr");
    cells.forEach((cell, i) => {
      if (cell instanceof Node) { const td = el("td"); td.appendChild(cell); tr.appendChild(td); }
      else tr.appendChild(el("td", cell, numeric && numeric[i] ? "num" : ""));
    });
    table.appendChild(tr);
  });
  if (!rows.length) {
    const tr = el("tr"); const td = el("td", empty || "No data for this period.");
    td.colSpan = headers.length; tr.appendChild(td); table.appendChild(tr);
  }
}

function sumBy(rows, field) {
  const out = new Map();
  rows.forEach((r) => {
    const name = r[field] === null || r[field] === undefined ? "(none)" : r[field];
    const acc = out.get(name) || { requests: 0, tokens: 0, cost: 0 };
    acc.requests += r.requests;
    acc.tokens += r.input_tokens + r.output_tokens + r.cache_read_tokens + r.cache_write_tokens;
    acc.cost += Number(r.cost_usd || 0);
    out.set(name, acc);
  });
  return [...out.entries()].sort((a, b) => b[1].cost - a[1].cost || String(a[0]).localeCompare(String(b[0])));
}

function drawChart(name, canvas, config) {
  if (state.charts[name]) state.charts[name].destroy();
  if (typeof Chart === "undefined") return;
  config.options = Object.assign({ responsive: true, maintainAspectRatio: false, animation: false }, config.options || {});
  state.charts[name] = new Chart(canvas, config);
}

const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"];

async function loadUsage() {
  $("usage-error").textContent = "";
  let report;
  try {
    report = await api("GET", "/v1/usage?group_by=day,team,key_id,model&" + rangeQuery());
  } catch (e) { $("usage-error").textContent = e.message; return; }
  const rows = report.data;
  const total = rows.reduce((s, r) => s + Number(r.cost_usd || 0), 0);
  const requests = rows.reduce((s, r) => s + r.requests, 0);
  $("total").textContent = "Total: " + usd(total) + " over " + int(requests) + " requests";
  const spreadsheet = (entries) => entries.map(([name, a]) => [name, int(a.requests), int(a.tokens), usd(a.cost)]);
  const numeric = [false, true, true, true];
  fillTable($("team-table"), ["Team", "Requests", "Tokens", "Spend"], spreadsheet(sumBy(rows, "team")), numeric);
  [["key_id", "key", "Key"], ["model", "model", "Model"]].forEach(([field, name, title]) => {
    const entries = sumBy(rows, field);
    fillTable($(name + "-table"), [title, "Requests", "Tokens", "Spend"], spreadsheet(entries), numeric);
    drawChart(name, $(name + "-chart"), {
      type: "bar",
      data: {
        labels: entries.map(([label]) => label),
        datasets: [{ label: "Spend (USD)", data: entries.map(([, a]) => a.cost), backgroundColor: PALETTE[0] },
          { label: "Tokens", data: entries.map(([, a]) => a.tokens), backgroundColor: PALETTE[1], xAxisID: "tokens" }],
      },
      options: { indexAxis: "y", scales: { x: { title: { display: true, text: "USD" } },
        tokens: { position: "top", grid: { display: false }, title: { display: true, text: "tokens" } } } },
    });
  });

  const days = [...new Set(rows.map((r) => r.day))].sort();
  const teams = sumBy(rows, "team").map(([name]) => name);
  const datasets = teams.map((team, i) => ({
    label: team,
    backgroundColor: PALETTE[i % PALETTE.length],
    data: days.map((day) => rows.filter((r) => r.day === day && (r.team || "(none)") === team)
      .reduce((s, r) => s + Number(r.cost_usd || 0), 0)),
  }));
  drawChart("spend", $("spend-chart"), {
    type: "bar",
    data: { labels: days, datasets },
    options: { scales: { x: { stacked: true }, y: { stacked: true, title: { display: true, text: "USD" } } } },
  });
  if (state.admin) await loadBudgets();
}

async function loadBudgets() {
  const teams = (await api("GET", "/v1/admin/teams")).data.filter((t) => t.budget_usd_monthly !== null);
  $("budget-section").hidden = teams.length === 0;
  if (!teams.length) return;
  const now = new Date();
  const monthStart = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1));
  const monthEnd = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1));
  const report = await api("GET", "/v1/usage?group_by=day,team&start=" + monthStart.toISOString() + "&end=" + monthEnd.toISOString());
  const days = [];
  for (let d = new Date(monthStart); d < monthEnd; d.setUTCDate(d.getUTCDate() + 1)) days.push(isoDay(d));
  const today = isoDay(now);
  const datasets = [];
  const rows = [];
  teams.forEach((team, i) => {
    let running = 0;
    const remaining = days.map((day) => {
      running += report.data.filter((r) => r.team === team.team && r.day === day)
        .reduce((s, r) => s + Number(r.cost_usd || 0), 0);
      return day <= today ? team.budget_usd_monthly - running : null;
    });
    datasets.push({ label: team.team + " remaining", data: remaining, borderColor: PALETTE[i % PALETTE.length], fill: false });
    rows.push([team.team, usd(team.budget_usd_monthly), usd(running), usd(team.budget_usd_monthly - running),
      (team.budget_usd_monthly > 0 ? (100 * running / team.budget_usd_monthly).toFixed(1) : "-") + "%"]);
  });
  drawChart("budget", $("budget-chart"), {
    type: "line", data: { labels: days, datasets },
    options: { scales: { y: { beginAtZero: true, title: { display: true, text: "USD left" } } } },
  });
  fillTable($("budget-table"), ["Team", "Budget", "Spent", "Remaining", "Used"], rows, [false, true, true, true, true]);
}

async function downloadCsv() {
  const response = await fetch("/v1/usage?group_by=day,team,key_id,model&format=csv&" + rangeQuery(),
    { headers: { "Authorization": "Bearer " + state.key } });
  if (!response.ok) { $("usage-error").textContent = "CSV download failed: HTTP " + response.status; return; }
  const url = URL.createObjectURL(await response.blob());
  const link = el("a");
  link.href = url;
  link.download = "usage-" + $("start").value + "-to-" + $("end").value + ".csv";
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

function showNewKey(id, key) {
  $("new-key").hidden = false;
  $("new-key-id").textContent = id;
  $("new-key-value").textContent = key;
}

function numberOrNull(id) { const v = $(id).value.trim(); return v === "" ? null : Number(v); }
function listOrNull(id) {
  const v = $(id).value.trim();
  return v === "" ? null : v.split(",").map((s) => s.trim()).filter(Boolean);
}
function textOrNull(id) { const v = $(id).value.trim(); return v === "" ? null : v; }

async function loadKeys() {
  const keys = (await api("GET", "/v1/admin/keys")).data;
  const rows = keys.map((k) => {
    const actions = el("span");
    if (k.source === "store" && !k.revoked_at) {
      const rotate = el("button", "Rotate");
      rotate.type = "button";
      rotate.addEventListener("click", () => keyAction(k.id, "rotate"));
      const revoke = el("button", "Revoke");
      revoke.type = "button";
      revoke.addEventListener("click", () => keyAction(k.id, "revoke"));
      const edit = el("button", "Edit");
      edit.type = "button";
      edit.addEventListener("click", () => { $("ek-id").value = k.id; $("ek-team").focus(); });
      const toggle = el("button", k.disabled ? "Enable" : "Disable");
      toggle.type = "button";
      toggle.addEventListener("click", () => patchKey(k.id, { disabled: !k.disabled }));
      actions.append(edit, " ", toggle, " ", rotate, " ", revoke);
    }
    const status = k.revoked_at ? "revoked" : (k.disabled ? "disabled" : "active");
    return [k.id, k.team || "", k.user || "", (k.models || []).join(", ") || "all",
      k.rpm ?? "", k.tpm ?? "", k.budget_usd_monthly ?? "", k.expires_at || "", k.source, status, actions];
  });
  fillTable($("keys-table"), ["Id", "Team", "User", "Models", "RPM", "TPM", "Budget", "Expires", "Source", "Status", ""], rows, null, "No keys.");
  const audit = (await api("GET", "/v1/admin/audit")).data.slice(0, 50);
  fillTable($("audit-table"), ["Time", "Actor", "Action", "Target", "Changes"],
    audit.map((a) => [a.ts, a.actor, a.action, a.target, JSON.stringify(a.changes)]), null,
    "No changes yet.");
}

async function keyAction(id, action) {
  $("keys-error").textContent = "";
  const question = action === "rotate"
    ? "Rotate key " + id + "? The current key stops working at once."
    : "Revoke key " + id + "? This cannot be undone.";
  if (!window.confirm(question)) return;
  try {
    if (action === "rotate") {
      const result = await api("POST", "/v1/admin/keys/" + encodeURIComponent(id) + "/rotate");
      showNewKey(result.id, result.key);
    } else {
      await api("DELETE", "/v1/admin/keys/" + encodeURIComponent(id));
    }
    await loadKeys();
  } catch (e) { $("keys-error").textContent = e.message; }
}

async function patchKey(id, body) {
  $("keys-error").textContent = "";
  try {
    await api("PATCH", "/v1/admin/keys/" + encodeURIComponent(id), body);
    await loadKeys();
  } catch (e) { $("keys-error").textContent = e.message; }
}

async function editKey(event) {
  event.preventDefault();
  const body = {};
  const put = (name, value) => { if (value !== null) body[name] = value; };
  put("team", textOrNull("ek-team"));
  put("models", listOrNull("ek-models"));
  put("rpm", numberOrNull("ek-rpm"));
  put("tpm", numberOrNull("ek-tpm"));
  put("budget_usd_monthly", numberOrNull("ek-budget"));
  if (!Object.keys(body).length) { $("keys-error").textContent = "Nothing to change."; return; }
  await patchKey($("ek-id").value.trim(), body);
  if (!$("keys-error").textContent) $("edit-key-form").reset();
}

async function createKey(event) {
  event.preventDefault();
  $("keys-error").textContent = "";
  const body = {};
  const put = (name, value) => { if (value !== null) body[name] = value; };
  put("id", textOrNull("nk-id"));
  put("team", textOrNull("nk-team"));
  put("user", textOrNull("nk-user"));
  put("models", listOrNull("nk-models"));
  put("rpm", numberOrNull("nk-rpm"));
  put("tpm", numberOrNull("nk-tpm"));
  put("budget_usd_monthly", numberOrNull("nk-budget"));
  const expires = textOrNull("nk-expires");
  if (expires) body.expires_at = expires + "T00:00:00Z";
  try {
    const created = await api("POST", "/v1/admin/keys", body);
    showNewKey(created.id, created.key);
    $("new-key-form").reset();
    await loadKeys();
  } catch (e) { $("keys-error").textContent = e.message; }
}

async function loadTeams() {
  const teams = (await api("GET", "/v1/admin/teams")).data;
  fillTable($("teams-table"), ["Team", "RPM", "TPM", "Budget", "Models", "Source"],
    teams.map((t) => [t.team, t.rpm ?? "", t.tpm ?? "", t.budget_usd_monthly ?? "", (t.models || []).join(", ") || "all", t.source]));
}

async function saveTeam(event) {
  event.preventDefault();
  $("teams-error").textContent = "";
  const body = { rpm: numberOrNull("tm-rpm"), tpm: numberOrNull("tm-tpm"),
    budget_usd_monthly: numberOrNull("tm-budget"), models: listOrNull("tm-models") };
  try {
    await api("PUT", "/v1/admin/teams/" + encodeURIComponent($("tm-name").value.trim()), body);
    await loadTeams();
  } catch (e) { $("teams-error").textContent = e.message; }
}

function showView(id) {
  document.querySelectorAll(".view").forEach((v) => { v.hidden = v.id !== id; });
  document.querySelectorAll(".tab").forEach((t) => t.classList.toggle("active", t.dataset.view === id));
  const loaders = { "usage-view": loadUsage, "keys-view": loadKeys, "teams-view": loadTeams };
  loaders[id]().catch((e) => { $("usage-error").textContent = e.message; });
}

async function signIn(key) {
  state.key = key;
  try {
    await api("GET", "/v1/admin/keys");
    state.admin = true;
  } catch (e) {
    if (e.status !== 403) {
      state.key = null;
      sessionStorage.removeItem(KEY_SLOT);
      $("sign-in-error").textContent = e.status === 401 ? "That key was not accepted." : e.message;
      return;
    }
    state.admin = false;
  }
  sessionStorage.setItem(KEY_SLOT, key);
  $("sign-in-view").hidden = true;
  $("app-view").hidden = false;
  $("who").hidden = false;
  $("who-text").textContent = state.admin ? "Signed in as admin: every team" : "Signed in: your own usage";
  $("keys-tab").hidden = !state.admin;
  $("teams-tab").hidden = !state.admin;
  showView("usage-view");
}

function signOut() {
  sessionStorage.removeItem(KEY_SLOT);
  window.location.reload();
}

document.addEventListener("DOMContentLoaded", () => {
  const now = new Date();
  $("start").value = isoDay(new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1)));
  $("end").value = isoDay(now);
  $("sign-in-form").addEventListener("submit", (event) => {
    event.preventDefault();
    $("sign-in-error").textContent = "";
    const key = $("api-key").value.trim();
    $("api-key").value = "";
    signIn(key);
  });
  $("sign-out").addEventListener("click", signOut);
  $("period-form").addEventListener("submit", (event) => { event.preventDefault(); loadUsage(); });
  $("csv").addEventListener("click", downloadCsv);
  $("new-key-form").addEventListener("submit", createKey);
  $("edit-key-form").addEventListener("submit", editKey);
  $("team-form").addEventListener("submit", saveTeam);
  $("copy-key").addEventListener("click", () => {
    const text = $("new-key-value").textContent;
    if (navigator.clipboard) navigator.clipboard.writeText(text).catch(() => {});
  });
  document.querySelectorAll(".tab").forEach((t) => t.addEventListener("click", () => showView(t.dataset.view)));
  const saved = sessionStorage.getItem(KEY_SLOT);
  if (saved) signIn(saved);
});
