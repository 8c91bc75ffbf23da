// Strongroom web UI: small progressive enhancements. Every action works without this file.
"use strict";

function pollJson(url, everyMs, onData) {
  let stopped = false;
  async function tick() {
    if (stopped) return;
    try {
      const response = await fetch(url, { credentials: "same-origin", cache: "no-store" });
      if (response.ok && onData(await response.json()) === false) { stopped = true; return; }
    } catch (e) { /* the box may be restarting: try again */ }
    setTimeout(tick, everyMs);
  }
  setTimeout(tick, everyMs);
}

// Pairing window: live countdown; reload when a phone shows up or the window changes.
function watchPairing(panel) {
  const seconds = document.getElementById("pairing-seconds");
  pollJson(panel.dataset.pairingUrl, 1000, (data) => {
    if (data.available === false) return false;
    const open = data.open ? "yes" : "no";
    const ticket = data.pending ? data.pending.ticket : "";
    if (open !== panel.dataset.open || ticket !== panel.dataset.ticket) {
      window.location.reload();
      return false;
    }
    if (seconds) seconds.textContent = String(data.seconds_left);
    return true;
  });
}

// Background job: progress bar; reload once it is finished to show the result.
function watchJob(box) {
  const bar = document.getElementById("job-progress");
  const percent = document.getElementById("job-percent");
  pollJson(box.dataset.statusUrl, 700, (data) => {
    if (bar) bar.value = data.percent;
    if (percent) percent.textContent = String(data.percent);
    if (data.state !== "running") {
      window.location.reload();
      return false;
    }
    return true;
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const panel = document.getElementById("pairing");
  if (panel && panel.dataset.pairingUrl) watchPairing(panel);
  const job = document.getElementById("job");
  if (job && job.dataset.state === "running") watchJob(job);
  labelTableCells();
  document.querySelectorAll("input[data-picker]").forEach(searchAsYouType);
  const count = document.getElementById("export-count");
  if (count) countExport(count);
});

// The export form: what it would export, counted on the box for the chosen scope only
// (/exports/count) each time a match is picked, the kind or a day changes. Without this
// file nothing is counted before the export; the export says what it holds.
function countExport(output) {
  const form = output.closest("form");
  const token = form.querySelector("input[name=csrf_token]");
  let asked = 0;
  async function ask() {
    const mine = ++asked;
    const params = new URLSearchParams();
    ["kind", "conversation", "conversation_id", "person", "matter", "matter_id", "since", "until"].forEach((name) => {
      const field = form.querySelector("[name=" + name + "]" + (name === "kind" ? ":checked" : ""));
      if (field) params.set(name, field.value);
    });
    try {
      const response = await fetch("/exports/count?" + params, {
        credentials: "same-origin", cache: "no-store",
        headers: { "X-CSRF-Token": token ? token.value : "" },
      });
      if (!response.ok || mine !== asked) return;
      const data = await response.json();
      output.textContent = data.text;
      output.dataset.count = data.count === undefined ? "" : String(data.count);
    } catch (e) { /* the box may be restarting: the export still says what it holds */ }
  }
  form.addEventListener("picked", ask);
  form.addEventListener("change", (e) => {
    if (e.target.name === "kind" || e.target.type === "date") ask();
  });
  form.querySelectorAll("input[data-picker]").forEach((input) => {
    input.addEventListener("input", () => { asked++; output.textContent = ""; output.dataset.count = ""; });
  });
  if (form.querySelector("input[name=matter_id]").value) ask();
}

// Records office pickers: the first letters typed are looked up on the box
// (/office/search, at most 20 matches); picking one puts its label in the field and
// its number in the hidden <field>_id beside it. Without this file the typed text is
// sent and the box resolves it (one match, or a clear error).
function searchAsYouType(input) {
  const kind = input.dataset.picker;
  const list = document.getElementById(input.getAttribute("aria-controls"));
  const hidden = document.getElementById(input.id + "-id");
  const token = input.form ? input.form.querySelector("input[name=csrf_token]") : null;
  let timer = null;
  let asked = 0;
  let active = -1;

  function close() {
    list.hidden = true;
    list.replaceChildren();
    active = -1;
    input.setAttribute("aria-expanded", "false");
    input.removeAttribute("aria-activedescendant");
  }
  function pick(option) {
    input.value = option.dataset.label;
    if (hidden) hidden.value = option.dataset.value;
    close();
    input.dispatchEvent(new Event("picked", { bubbles: true }));
  }
  function highlight(index) {
    const options = list.querySelectorAll("[role=option]");
    if (!options.length) return;
    active = (index + options.length) % options.length;
    options.forEach((o, i) => o.setAttribute("aria-selected", i === active ? "true" : "false"));
    input.setAttribute("aria-activedescendant", options[active].id);
  }
  async function ask() {
    const q = input.value.trim();
    const mine = ++asked;
    if (!q) { close(); return; }
    const url = "/office/search?" + new URLSearchParams({ kind: kind, q: q });
    try {
      const response = await fetch(url, {
        credentials: "same-origin", cache: "no-store",
        headers: { "X-CSRF-Token": token ? token.value : "" },
      });
      if (!response.ok || mine !== asked) return;
      const data = await response.json();
      list.replaceChildren();
      data.results.forEach((found, i) => {
        const option = document.createElement("li");
        option.id = input.id + "-option-" + i;
        option.setAttribute("role", "option");
        option.dataset.value = found.value;
        option.dataset.label = found.label;
        option.textContent = found.label;
        if (found.detail) {
          const detail = document.createElement("span");
          detail.className = "picker-detail";
          detail.textContent = " " + found.detail;
          option.appendChild(detail);
        }
        option.addEventListener("mousedown", (e) => { e.preventDefault(); pick(option); });
        list.appendChild(option);
      });
      list.hidden = data.results.length === 0;
      input.setAttribute("aria-expanded", list.hidden ? "false" : "true");
      active = -1;
    } catch (e) { /* the box may be restarting: the typed text is still sent */ }
  }
  input.addEventListener("input", () => {
    if (hidden) hidden.value = "";
    // On a form that chooses what its pickers are for (/exports), typing chooses it.
    const choice = input.form ? input.form.querySelector("input[name=kind][value=" + kind + "]") : null;
    if (choice && !choice.checked) { choice.checked = true; choice.dispatchEvent(new Event("change", { bubbles: true })); }
    clearTimeout(timer);
    timer = setTimeout(ask, 150);
  });
  input.addEventListener("keydown", (e) => {
    if (list.hidden) return;
    if (e.key === "ArrowDown") { e.preventDefault(); highlight(active + 1); }
    else if (e.key === "ArrowUp") { e.preventDefault(); highlight(active - 1); }
    else if (e.key === "Escape") { close(); }
    else if (e.key === "Enter" && active >= 0) {
      e.preventDefault();
      pick(list.querySelectorAll("[role=option]")[active]);
    }
  });
  input.addEventListener("blur", () => setTimeout(close, 100));
}

// On a phone, tables are shown as one card per row (style.css): each cell gets its
// column's heading as a label. Without JavaScript the cards simply have no labels.
function labelTableCells() {
  document.querySelectorAll(".table-wrap table").forEach((table) => {
    const heads = Array.from(table.querySelectorAll("thead th"), (th) => th.textContent.trim());
    table.querySelectorAll("tbody tr").forEach((row) => {
      Array.from(row.children).forEach((cell, i) => {
        if (heads[i]) cell.setAttribute("data-label", heads[i]);
      });
    });
  });
}
