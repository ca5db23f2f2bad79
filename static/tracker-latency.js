// Draws the live latency histograms of the tracker pages as inline SVG, from
// the JSON the page embeds (#latency-data): log-scale bins on the x axis,
// one stacked colour per mode. No library, no CDN.
(function () {
  "use strict";
  var COLORS = {"callback": "#2da44e", "hybrid-callback": "#54aeff", "poll": "#8250df", "hybrid-poll": "#bf8700",
                "by hand": "#57606a", "approval": "#cf222e", "timeout": "#953800"};
  var NS = "http://www.w3.org/2000/svg";
  var W = 560, H = 220, LEFT = 44, RIGHT = 10, TOP = 10, BOTTOM = 40;

  function el(name, attrs, text) {
    var e = document.createElementNS(NS, name);
    Object.keys(attrs).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined) { e.textContent = text; }
    return e;
  }

  function label(ms) {
    if (ms >= 1000) { return Number((ms / 1000).toPrecision(2)) + " s"; }
    return Number(ms.toPrecision(2)) + " ms";
  }

  function draw(svg, data, series) {
    var bins = data.bins, n = bins.length - 1;
    var totals = [];
    for (var i = 0; i < n; i++) {
      totals.push(data.modes.reduce(function (s, m) { return s + m[series][i]; }, 0));
    }
    var max = Math.max.apply(null, totals.concat([1]));
    var plotW = W - LEFT - RIGHT, plotH = H - TOP - BOTTOM, bw = plotW / n;
    svg.setAttribute("viewBox", "0 0 " + W + " " + H);
    svg.setAttribute("width", W);
    svg.setAttribute("height", H);
    svg.appendChild(el("line", {x1: LEFT, y1: TOP + plotH, x2: W - RIGHT, y2: TOP + plotH, stroke: "#8c959f"}));
    svg.appendChild(el("text", {x: LEFT - 6, y: TOP + 8, "text-anchor": "end", "font-size": 10}, String(max)));
    svg.appendChild(el("text", {x: LEFT - 6, y: TOP + plotH, "text-anchor": "end", "font-size": 10}, "0"));
    for (i = 0; i < n; i++) {
      var y = TOP + plotH;
      data.modes.forEach(function (m) {
        var v = m[series][i];
        if (!v) { return; }
        var h = v / max * plotH;
        y -= h;
        var rect = el("rect", {x: (LEFT + i * bw + 0.5).toFixed(1), y: y.toFixed(1), width: Math.max(bw - 1, 1).toFixed(1),
                               height: h.toFixed(1), fill: COLORS[m.mode] || "#0969da", "class": "bar",
                               "data-mode": m.mode});
        rect.appendChild(el("title", {}, m.mode + ": " + v + " between " + label(bins[i]) + " and " + label(bins[i + 1])));
        svg.appendChild(rect);
      });
      var lo = Math.log10(bins[i]);
      if (Math.abs(lo - Math.round(lo)) < 1e-6 || n <= 8) {
        svg.appendChild(el("text", {x: (LEFT + i * bw).toFixed(1), y: TOP + plotH + 14, "font-size": 10,
                                    "text-anchor": "middle"}, label(bins[i])));
      }
    }
    var lx = LEFT;
    data.modes.forEach(function (m) {
      svg.appendChild(el("rect", {x: lx, y: H - 14, width: 10, height: 10, fill: COLORS[m.mode] || "#0969da"}));
      svg.appendChild(el("text", {x: lx + 14, y: H - 5, "font-size": 11}, m.mode));
      lx += 24 + 7 * m.mode.length;
    });
  }

  function init() {
    var node = document.getElementById("latency-data");
    if (!node) { return; }
    var data = JSON.parse(node.textContent);
    if (!data.bins.length) { return; }
    document.querySelectorAll("svg.latency-histogram").forEach(function (svg) {
      while (svg.firstChild) { svg.removeChild(svg.firstChild); }
      draw(svg, data, svg.getAttribute("data-series"));
    });
  }

  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", init); } else { init(); }
  // static/live.js swapped a live region in: draw its histograms again.
  document.addEventListener("gust:live", init);
})();
