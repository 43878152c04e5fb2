// The ops dashboard refreshes its panels in place (no page reload), every
// data-refresh-seconds, from data-url. Pausing is remembered in localStorage. A failed
// refresh keeps the last panels and says they are stale: at 3 a.m. an old answer that
// says it is old beats a blank page. A static file, not inline: CSP-friendly.
(function () {
  "use strict";
  var panels = document.getElementById("dashboard-panels");
  if (!panels) return;
  var bar = document.getElementById("dashboard-refresh");
  var button = document.getElementById("dashboard-pause");
  var updated = document.getElementById("dashboard-updated");
  var note = document.getElementById("dashboard-note");
  var url = panels.getAttribute("data-url");
  var seconds = Math.max(2, parseInt(panels.getAttribute("data-refresh-seconds"), 10) || 15);
  var KEY = "opsDashboard.paused";
  var timer = null;
  var lastGood = null;

  function paused() {
    try { return window.localStorage.getItem(KEY) === "1"; } catch (e) { return false; }
  }

  function setPaused(value) {
    try {
      if (value) window.localStorage.setItem(KEY, "1"); else window.localStorage.removeItem(KEY);
    } catch (e) { /* private mode: the button still works for this page */ }
    show();
    schedule();
  }

  function refreshedAt() {
    var marker = panels.querySelector("[data-refreshed-at]");
    return marker ? marker.getAttribute("data-refreshed-at") : "";
  }

  function show() {
    button.textContent = paused() ? "Resume" : "Pause";
    button.setAttribute("aria-pressed", paused() ? "true" : "false");
    if (!bar.classList.contains("stale")) {
      updated.textContent = "updated " + refreshedAt();
      note.textContent = paused() ? "· paused" : "· refreshes every " + seconds + " s";
    }
  }

  // Someone typing a reason (or a support UUID) keeps the panels they are typing in.
  function editing() {
    var active = document.activeElement;
    if (active && panels.contains(active) && /^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName)) {
      return true;
    }
    var fields = panels.querySelectorAll("input[type=text], textarea");
    for (var i = 0; i < fields.length; i++) if (fields[i].value) return true;
    return false;
  }

  function stale(why) {
    bar.classList.add("stale");
    panels.classList.add("stale");
    updated.textContent = "stale: last updated " + (lastGood || refreshedAt());
    note.textContent = "· refresh failed (" + why + "), retrying every " + seconds + " s";
  }

  function refresh() {
    if (paused()) return;
    if (editing()) {
      note.textContent = "· refresh held while you type";
      schedule();
      return;
    }
    fetch(url, { credentials: "same-origin", cache: "no-store",
                 headers: { "X-Requested-With": "XMLHttpRequest" } })
      .then(function (response) {
        // A login page (session expired) arrives as a redirect: not panels.
        if (response.redirected) throw new Error("logged out: reload the page");
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.text();
      })
      .then(function (html) {
        if (!paused() && !editing()) {
          panels.innerHTML = html;
          lastGood = refreshedAt();
          bar.classList.remove("stale");
          panels.classList.remove("stale");
        }
        show();
      })
      .catch(function (error) { stale(error.message || "network error"); })
      .then(schedule);
  }

  function schedule() {
    if (timer !== null) window.clearTimeout(timer);
    timer = paused() ? null : window.setTimeout(refresh, seconds * 1000);
  }

  button.addEventListener("click", function () { setPaused(!paused()); });
  lastGood = refreshedAt();
  show();
  schedule();
})();
