// The customer display: follows its terminal's screen (server-sent events, else polling every
// second) and reloads when another screen is up; counts the KHQR down. The page is the server's.
(function () {
  "use strict";
  var page = document.getElementById("display");
  if (!page) { return; }
  var base = page.dataset.root;
  var state = JSON.parse(page.dataset.initial);
  var countdown = document.getElementById("countdown");
  var deadline = Date.now() + state.seconds_left * 1000;
  var source = null;
  var pollTimer = null;
  var leaving = false;
  var POLL_MS = 1000;

  function tick() {
    if (!countdown) { return; }
    var left = Math.max(0, Math.round((deadline - Date.now()) / 1000));
    countdown.textContent = Math.floor(left / 60) + ":" + (left % 60 < 10 ? "0" : "") + (left % 60);
  }

  function reload() {
    if (leaving) { return; }
    leaving = true;
    if (source) { source.close(); source = null; }
    if (pollTimer) { clearInterval(pollTimer); pollTimer = null; }
    window.location.reload();
  }

  function apply(next) {
    if (next && next.key && next.key !== page.dataset.key) { reload(); }
  }

  function poll() {
    fetch(base + "/state", { headers: { Accept: "application/json" }, cache: "no-store", credentials: "same-origin" })
      .then(function (r) {
        if (r.status === 401) { reload(); return null; }  // revoked: the page asks for a code
        return r.ok ? r.json() : null;
      })
      .then(apply)
      .catch(function () { /* offline for a moment: the next poll tries again */ });
  }

  function startPolling() {
    if (pollTimer || leaving) { return; }
    poll();
    pollTimer = setInterval(poll, POLL_MS);
  }

  function startEvents() {
    if (!window.EventSource) { startPolling(); return; }
    source = new EventSource(base + "/events");
    source.addEventListener("screen", function (e) { apply(JSON.parse(e.data)); });
    source.addEventListener("unpaired", reload);
    source.onerror = function () {
      // Blocked, buffered by a proxy or cut: poll instead, for good.
      if (source) { source.close(); source = null; }
      startPolling();
    };
  }

  if (countdown) { tick(); setInterval(tick, 1000); }
  startEvents();
})();
