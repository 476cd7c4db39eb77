// Pages with a [data-refresh] region re-fetch it (htmx, same URL) when one of the tenant's
// flow runs changes state (server-sent events from /live), or every data-every seconds.
(function () {
  "use strict";
  var body = document.body;
  var liveUrl = body.dataset.live;
  function region() { return document.querySelector("[data-refresh]"); }
  var pending = null;
  function refresh() {
    if (pending || !region() || !window.htmx) return;
    pending = setTimeout(function () {
      pending = null;
      if (!region()) return;
      htmx.ajax("GET", location.pathname + location.search, { target: "#live", select: "#live", swap: "outerHTML" });
    }, 150);
  }
  document.addEventListener("DOMContentLoaded", function () {
    if (!liveUrl || !region() || document.getElementById("run")) return;
    var source = new EventSource(liveUrl);
    source.addEventListener("changed", refresh);
    var every = Number(region().dataset.every || 0);
    if (every > 0) setInterval(refresh, every * 1000);
  });
})();
