/* The execution page's task panel: a click on a task in the graph or on a bar
 * of the timeline shows that task's details beside the graph, copied from its
 * row in the task table (the table stays the one place they are rendered).
 * The selected task stays selected across live refreshes, and the copy is
 * made again from the fresh row, so the panel follows the task's state.
 * Without this script the same click jumps to the row (the links' href).
 */
(function () {
  "use strict";

  var selected = null; // task name, kept across live refreshes

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function copyOf(node) {
    // A copy must not duplicate ids (the row's, an operator form's).
    var c = node.cloneNode(true);
    if (c.nodeType === Node.ELEMENT_NODE) {
      c.removeAttribute("id");
      c.querySelectorAll("[id]").forEach(function (x) { x.removeAttribute("id"); });
    }
    return c;
  }

  function mark(name) {
    document.querySelectorAll("svg.graph .node.selected, .tl-row.selected").forEach(function (n) {
      n.classList.remove("selected");
    });
    if (name === null) return;
    document.querySelectorAll("svg.graph .node[data-task], .tl-row[data-task]").forEach(function (n) {
      if (n.dataset.task === name) n.classList.add("selected");
    });
  }

  function fill(panel, name) {
    panel.textContent = "";
    var head = el("div", "panel-head");
    head.appendChild(el("strong", "panel-title", name));
    var close = el("button", "btn small panel-close", "Close");
    close.type = "button";
    head.appendChild(close);
    panel.appendChild(head);
    var row = document.getElementById("task-" + name);
    if (!row) {
      panel.appendChild(el("p", "muted", "This task has not run (yet)."));
      return;
    }
    var labels = Array.prototype.map.call(row.closest("table").tHead.rows[0].cells, function (th) {
      return th.textContent.trim();
    });
    var dl = el("dl", "meta");
    Array.prototype.forEach.call(row.cells, function (td, i) {
      if (i === 0) return; // the name is the panel's title
      dl.appendChild(el("dt", null, labels[i] || ""));
      var dd = el("dd");
      Array.prototype.forEach.call(td.childNodes, function (n) { dd.appendChild(copyOf(n)); });
      dl.appendChild(dd);
    });
    panel.appendChild(dl);
    var actions = row.nextElementSibling;
    if (actions && actions.classList.contains("actions-row")) {
      var box = el("div", "panel-actions");
      Array.prototype.forEach.call(actions.cells[0].childNodes, function (n) { box.appendChild(copyOf(n)); });
      panel.appendChild(box);
    }
    var link = el("a", "small", "Show in the task table");
    link.href = "#task-" + encodeURIComponent(name);
    panel.appendChild(link);
  }

  function show(name) {
    var panel = document.getElementById("task-panel");
    if (!panel) return false;
    selected = name;
    fill(panel, name);
    panel.hidden = false;
    panel.dataset.task = name;
    mark(name);
    document.dispatchEvent(new CustomEvent("gust:shown", { detail: panel }));
    return true;
  }

  function hide() {
    var panel = document.getElementById("task-panel");
    selected = null;
    mark(null);
    if (panel) {
      panel.hidden = true;
      panel.textContent = "";
      delete panel.dataset.task;
    }
  }

  document.addEventListener("click", function (e) {
    if (e.target.closest(".panel-close")) { hide(); return; }
    var target = e.target.closest("svg.graph .node[data-task], .tl-row[data-task]");
    if (!target || e.ctrlKey || e.metaKey || e.shiftKey) return; // a modified click opens the link as usual
    if (show(target.dataset.task)) e.preventDefault();
  });

  document.addEventListener("keydown", function (e) {
    if (e.key === "Escape" && selected !== null) hide();
  });

  document.addEventListener("gust:live", function () {
    if (selected !== null) show(selected);
  });
})();
