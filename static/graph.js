/* Pan and zoom for the task graph (templates/includes/graph.html), without a library.
 *
 * The SVG is drawn at its natural size by the server. This script turns its
 * box into a viewport: the mouse wheel zooms about the pointer, a drag pans,
 * the buttons zoom in, out, fit the whole graph or show it at actual size,
 * and + - 0 1 do the same while the graph has the focus. The view is a
 * viewBox (x, y and a scale k), kept per page across live refreshes
 * (static/live.js replaces the HTML on every change), so a change of a task's
 * state does not throw away where the user was looking.
 *
 * A drag does not count as a click: a node under the pointer at the end of a
 * drag is not opened.
 */
(function () {
  "use strict";

  var MIN_SCALE = 0.1;
  var MAX_SCALE = 4;
  var STEP = 1.25;
  var DRAG_PX = 4; // movement under this is a click, not a drag
  var MAX_HEIGHT = 560; // the viewport's height at most (px); a small graph gets less
  var MIN_HEIGHT = 180;
  var views = {}; // graph key -> {x, y, k, fitted}: survives a live refresh

  function clamp(k) { return Math.min(MAX_SCALE, Math.max(MIN_SCALE, k)); }

  function setup(wrap, index) {
    var svg = wrap.querySelector("svg.graph");
    if (!svg || wrap.dataset.pz) return;
    wrap.dataset.pz = "1";
    var key = location.pathname + "#" + index;
    var W = +svg.getAttribute("width") || 1;
    var H = +svg.getAttribute("height") || 1;
    var tools = wrap.parentNode.querySelector(".graph-tools");
    if (tools) tools.hidden = false;
    wrap.classList.add("pannable");
    // The viewport: as wide as the card, as tall as the graph at that width (bounded).
    var natural = H * Math.min(1, wrap.clientWidth / W);
    wrap.style.height = Math.round(Math.min(MAX_HEIGHT, Math.max(MIN_HEIGHT, natural))) + "px";
    svg.setAttribute("width", "100%");
    svg.setAttribute("height", "100%");
    svg.setAttribute("preserveAspectRatio", "xMinYMin meet");

    var view = views[key];

    function size() { return { w: wrap.clientWidth || 1, h: wrap.clientHeight || 1 }; }

    function apply() {
      var s = size();
      svg.setAttribute("viewBox", [view.x, view.y, s.w / view.k, s.h / view.k].map(function (v) {
        return Math.round(v * 100) / 100;
      }).join(" "));
      wrap.dataset.scale = view.k.toFixed(3);
      views[key] = view;
    }

    function fit() {
      var s = size();
      var k = clamp(Math.min(s.w / W, s.h / H, 1.5));
      view = { x: -(s.w / k - W) / 2, y: -(s.h / k - H) / 2, k: k, fitted: true };
      apply();
    }

    function zoomAt(factor, px, py) {
      // Keep the graph point under (px, py) of the viewport where it is.
      var k = clamp(view.k * factor);
      var gx = view.x + px / view.k;
      var gy = view.y + py / view.k;
      view = { x: gx - px / k, y: gy - py / k, k: k, fitted: false };
      apply();
    }

    function zoomCentre(factor) {
      var s = size();
      zoomAt(factor, s.w / 2, s.h / 2);
    }

    function actual() {
      var s = size();
      zoomAt(1 / view.k, s.w / 2, s.h / 2);
    }

    if (view && !view.fitted) apply(); else fit();
    wrap._relayout = function () { if (view.fitted) fit(); else apply(); }; // on a window resize

    wrap.addEventListener("wheel", function (e) {
      e.preventDefault();
      var r = wrap.getBoundingClientRect();
      var delta = e.deltaMode === 1 ? e.deltaY * 16 : e.deltaY; // lines -> pixels
      zoomAt(Math.exp(-delta * 0.0015), e.clientX - r.left, e.clientY - r.top);
    }, { passive: false });

    var drag = null;
    wrap.addEventListener("pointerdown", function (e) {
      if (e.button !== 0) return;
      drag = { x: e.clientX, y: e.clientY, vx: view.x, vy: view.y, moved: false, id: e.pointerId };
    });
    wrap.addEventListener("pointermove", function (e) {
      if (!drag || e.pointerId !== drag.id) return;
      var dx = e.clientX - drag.x;
      var dy = e.clientY - drag.y;
      if (!drag.moved && Math.abs(dx) + Math.abs(dy) < DRAG_PX) return;
      if (!drag.moved) {
        drag.moved = true;
        wrap.classList.add("dragging");
        wrap.setPointerCapture(e.pointerId);
      }
      view = { x: drag.vx - dx / view.k, y: drag.vy - dy / view.k, k: view.k, fitted: false };
      apply();
    });
    function endDrag(e) {
      if (!drag || e.pointerId !== drag.id) return;
      if (drag.moved) {
        wrap.dataset.dragged = "1"; // the click that follows is swallowed below
        wrap.classList.remove("dragging");
      }
      drag = null;
    }
    wrap.addEventListener("pointerup", endDrag);
    wrap.addEventListener("pointercancel", endDrag);
    wrap.addEventListener("click", function (e) {
      if (wrap.dataset.dragged) {
        delete wrap.dataset.dragged;
        e.preventDefault();
        e.stopPropagation();
      }
    }, true);

    var actions = { "in": function () { zoomCentre(STEP); }, out: function () { zoomCentre(1 / STEP); }, fit: fit, actual: actual };
    if (tools) {
      tools.addEventListener("click", function (e) {
        var b = e.target.closest("[data-zoom]");
        if (b && actions[b.dataset.zoom]) actions[b.dataset.zoom]();
      });
    }
    var keys = { "+": "in", "=": "in", "-": "out", "0": "fit", "1": "actual" };
    wrap.addEventListener("keydown", function (e) {
      var name = keys[e.key];
      if (name && !e.ctrlKey && !e.metaKey && !e.altKey) {
        e.preventDefault();
        actions[name]();
      }
    });
  }

  function setupAll(root) {
    root.querySelectorAll("[data-graph]").forEach(function (wrap, i) { setup(wrap, i); });
  }

  setupAll(document);
  document.addEventListener("gust:live", function (e) { setupAll(e.detail); });
  // One listener for the page (graphs come and go with live refreshes): the
  // viewport's width follows the card, so the view box is computed again.
  var pending = 0;
  window.addEventListener("resize", function () {
    cancelAnimationFrame(pending);
    pending = requestAnimationFrame(function () {
      document.querySelectorAll("[data-graph].pannable").forEach(function (wrap) {
        if (wrap._relayout) wrap._relayout();
      });
    });
  });
})();
