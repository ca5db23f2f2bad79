/* Live regions without a framework.
 *
 * <div data-live data-live-events="/executions/<id>/events?since=<v>" data-live-poll="2000">
 *
 * The region's HTML is fetched again from the page's own URL with the header
 * "X-Gust-Live: 1" (the server then renders only the region) whenever the
 * event stream says "change". Without an event stream, when the browser has
 * no EventSource, or when the server says it is busy or the stream keeps
 * failing, the region is refreshed every data-live-poll milliseconds instead.
 * Open <details> stay open across a refresh (those inside an element marked
 * data-live-skip are copies and do not count). After a swap the event
 * "gust:live" (detail: the region) lets graph.js, fold.js and execution.js
 * set up the new HTML.
 */
(function () {
  "use strict";

  function regionDetails(region) {
    // Copies shown elsewhere on the page (the task panel, marked data-live-skip) are left out.
    return Array.prototype.filter.call(region.querySelectorAll("details"), function (d) {
      return !d.closest("[data-live-skip]");
    });
  }

  function detailsKeys(region) {
    var keys = [];
    regionDetails(region).forEach(function (d, i) {
      if (d.open) keys.push(d.dataset.key || String(i));
    });
    return keys;
  }

  function swap(region, html) {
    var open = detailsKeys(region);
    region.innerHTML = html;
    regionDetails(region).forEach(function (d, i) {
      if (open.indexOf(d.dataset.key || String(i)) !== -1) d.open = true;
    });
    region.dataset.liveRefreshes = String((+region.dataset.liveRefreshes || 0) + 1);
    document.dispatchEvent(new CustomEvent("gust:live", { detail: region }));
  }

  function refresh(region) {
    // One request at a time; a change that arrives meanwhile asks for one more.
    if (region._busy) { region._again = true; return; }
    region._busy = true;
    fetch(window.location.href, { headers: { "X-Gust-Live": "1" }, credentials: "same-origin", cache: "no-store" })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (html) { swap(region, html); })
      .catch(function () { /* keep the current content; the next change or poll retries */ })
      .finally(function () {
        region._busy = false;
        if (region._again) { region._again = false; refresh(region); }
      });
  }

  function poll(region) {
    if (region._polling) return;
    region._polling = true;
    region.dataset.liveMode = "poll";
    setInterval(function () { if (!document.hidden) refresh(region); }, +region.dataset.livePoll || 2000);
  }

  function listen(region) {
    var failures = 0;
    var source = new EventSource(region.dataset.liveEvents);
    region.dataset.liveMode = "events";
    source.addEventListener("open", function () { failures = 0; });
    source.addEventListener("change", function () { refresh(region); });
    function fallBack() { source.close(); poll(region); }
    source.addEventListener("busy", fallBack);
    source.addEventListener("gone", function () { source.close(); refresh(region); });
    source.addEventListener("error", function () {
      // The server ends every stream after a while and the browser reconnects
      // by itself; only a closed source or repeated failures mean SSE is not
      // working here.
      failures += 1;
      if (source.readyState === EventSource.CLOSED || failures >= 3) fallBack();
    });
  }

  document.querySelectorAll("[data-live]").forEach(function (region) {
    if (region.dataset.liveEvents && "EventSource" in window) listen(region);
    else poll(region);
  });
})();
