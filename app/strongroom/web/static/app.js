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
});

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
