// The payer's page: countdown, live state (server-sent events, else polling), "I have paid",
// and going on to the shop once the payment has ended. Everything it needs is on #checkout.
(function () {
  "use strict";
  var page = document.getElementById("checkout");
  if (!page) { return; }
  var base = page.dataset.root;
  var state = JSON.parse(page.dataset.initial);
  var countdown = document.getElementById("countdown");
  var message = document.getElementById("message");
  var deadline = Date.now() + state.seconds_left * 1000;
  var finished = false;
  var source = null;
  var pollTimer = null;
  var tickTimer = null;
  var POLL_MS = 2000;

  function clock(seconds) {
    var h = Math.floor(seconds / 3600), m = Math.floor(seconds % 3600 / 60), s = seconds % 60;
    var mm = h ? (m < 10 ? "0" + m : "" + m) : "" + m;
    return (h ? h + ":" : "") + mm + ":" + (s < 10 ? "0" + s : s);
  }

  function tick() {
    if (countdown) { countdown.textContent = clock(Math.max(0, Math.round((deadline - Date.now()) / 1000))); }
  }

  function stop() {
    if (source) { source.close(); source = null; }
    if (pollTimer) { clearInterval(pollTimer); pollTimer = null; }
    if (tickTimer) { clearInterval(tickTimer); tickTimer = null; }
  }

  function apply(next) {
    if (finished || !next || !next.state) { return; }
    state = next;
    if (next.state === "pending") {
      deadline = Date.now() + next.seconds_left * 1000;
      tick();
      return;
    }
    finished = true;
    stop();
    page.dataset.state = next.state;
    if (next.redirect_url) {
      page.dataset.redirect = "1";
      document.getElementById("continue").href = next.redirect_url;
      setTimeout(function () { window.location.assign(next.redirect_url); }, next.redirect_seconds * 1000);
    }
  }

  function gone(status) {
    // The link is unknown or ended: the page itself says so.
    if (status === 404 || status === 410) { window.location.reload(); return true; }
    return false;
  }

  function poll() {
    fetch(base + "/state", { headers: { Accept: "application/json" }, cache: "no-store" })
      .then(function (r) { return gone(r.status) || !r.ok ? null : r.json(); })
      .then(apply)
      .catch(function () { /* offline for a moment: the next poll tries again */ });
  }

  function startPolling() {
    if (pollTimer || finished) { return; }
    poll();
    pollTimer = setInterval(poll, POLL_MS);
  }

  function startEvents() {
    if (!window.EventSource) { startPolling(); return; }
    source = new EventSource(base + "/events");
    source.addEventListener("state", function (e) { apply(JSON.parse(e.data)); });
    source.addEventListener("ended", function () { window.location.reload(); });
    source.onerror = function () {
      // Blocked, buffered by a proxy or cut: poll instead, for good.
      if (source) { source.close(); source = null; }
      if (!finished) { startPolling(); }
    };
  }

  var paidForm = document.getElementById("paid-form");
  if (paidForm) {
    paidForm.addEventListener("submit", function (e) {
      e.preventDefault();
      message.textContent = page.dataset.textChecking;
      fetch(base + "/paid", { method: "POST", headers: { Accept: "application/json" } })
        .then(function (r) {
          if (gone(r.status)) { return; }
          if (r.status === 429) { message.textContent = page.dataset.textWait; return; }
          return r.ok ? r.json().then(apply) : null;
        })
        .catch(function () { message.textContent = ""; });
    });
  }

  if (state.state === "pending") {
    tick();
    tickTimer = setInterval(tick, 1000);
    startEvents();
  } else {
    apply(state);
  }
})();
