/* Long outputs fold: a JSON block or state info taller than FOLDED_PX shows
 * its first lines and a "show all (N lines)" button that opens it in full
 * (and "show less" that folds it again). Blocks inside a closed <details>
 * are measured when it opens. What the user opened stays open across live
 * refreshes (static/live.js dispatches "gust:live" after each swap), keyed
 * by the block's place on the page, as live.js keys open <details>.
 * Without this script the blocks scroll inside their max-height (gust.css).
 */
(function () {
  "use strict";

  var SELECTOR = "pre.json, pre.info";
  var opened = {}; // page path -> {block key: true}

  function keyOf(pre) {
    // The block's index among the blocks of its live region, leaving out the task panel's copies.
    var region = pre.closest("[data-live]") || document;
    var list = Array.prototype.filter.call(region.querySelectorAll(SELECTOR), function (p) {
      return !p.closest("[data-live-skip]");
    });
    return list.indexOf(pre);
  }

  function setState(pre, button, open) {
    pre.classList.toggle("folded", !open);
    pre.classList.toggle("unfolded", open);
    pre.dataset.fold = open ? "open" : "folded";
    button.textContent = open ? "show less" : "show all (" + button.dataset.lines + " lines)";
    button.setAttribute("aria-expanded", open ? "true" : "false");
  }

  function measure(pre) {
    if (pre.dataset.fold || pre.offsetParent === null) return; // done, or hidden (measured when shown)
    pre.classList.add("folded");
    if (pre.scrollHeight <= pre.clientHeight + 2) {
      pre.classList.remove("folded");
      pre.dataset.fold = "short";
      return;
    }
    var button = document.createElement("button");
    button.type = "button";
    button.className = "fold-toggle";
    button.dataset.lines = String(pre.textContent.split("\n").length);
    pre.insertAdjacentElement("afterend", button);
    setState(pre, button, false);
  }

  function scan(root) {
    var seen = opened[location.pathname] || {};
    root.querySelectorAll(SELECTOR).forEach(function (pre) {
      measure(pre);
      var button = pre.nextElementSibling;
      if (pre.dataset.fold === "folded" && button && button.classList.contains("fold-toggle") &&
          !pre.closest("[data-live-skip]") && seen[keyOf(pre)]) {
        setState(pre, button, true);
      }
    });
  }

  document.addEventListener("click", function (e) {
    var button = e.target.closest(".fold-toggle");
    if (!button) return;
    var pre = button.previousElementSibling;
    if (!pre || !pre.matches(SELECTOR)) return;
    var open = pre.dataset.fold !== "open";
    setState(pre, button, open);
    if (pre.closest("[data-live-skip]")) return; // a copy: its original keeps the state
    var i = keyOf(pre);
    var seen = opened[location.pathname] = opened[location.pathname] || {};
    if (open) seen[i] = true; else delete seen[i];
  });

  // <details> and the task panel show blocks that were hidden when the page was scanned.
  document.addEventListener("toggle", function (e) { if (e.target.open) scan(e.target); }, true);
  document.addEventListener("gust:live", function (e) { scan(e.detail); });
  document.addEventListener("gust:shown", function (e) { scan(e.detail); });
  scan(document);
})();
