// The flow-run page: task runs as a virtualized Gantt timeline (mapped children grouped under
// their parent, with counts by state), the flow's graph (dagre, in a worker) coloured by
// state, the run's logs; all kept live from the page's event stream (/flow-runs/<id>/live).
(function () {
  "use strict";
  var ROW = 24, OVERSCAN = 12;
  // dagre lays out 1,000 tasks in ~3 s (in a worker); far larger flows would take minutes
  var GRAPH_MAX_TASKS = 2000;
  var FINISHED = { Success: 1, Cached: 1, Mapped: 1, Skipped: 1, Cancelled: 1, Failed: 1, TriggerFailed: 1, TimedOut: 1, Aborted: 1, ClientFailed: 1 };
  var COLORS = { Success: "#1f9d55", Cached: "#1f9d55", Mapped: "#1f9d55", Failed: "#d64545", TriggerFailed: "#d64545", TimedOut: "#d64545",
    Aborted: "#d64545", ClientFailed: "#d64545", Running: "#2f80ed", Cancelled: "#7b8794", Skipped: "#9aa5b1", Pending: "#d5d9e0" };
  function color(state) { return COLORS[state] || "#b7791f"; }

  var root = document.getElementById("run");
  if (!root) return;
  var base = document.body.dataset.base || "";
  var runId = root.dataset.runId;
  var runUrl = base + "/flow-runs/" + runId;
  var gantt = document.getElementById("gantt");
  var space = gantt.querySelector(".gantt-space");
  var summary = document.getElementById("task-summary");
  var panel = document.getElementById("task-panel");

  var tasks = new Map();     // id -> [id, slug, map_index, state, start, end]
  var expanded = new Set();  // slugs whose mapped children are shown
  var rows = [];             // what the timeline shows, in order
  var span = [0, 1];
  var dirty = false, graphShown = false, graphData = null;

  // -- the model -------------------------------------------------------------------------
  function rebuild() {
    var groups = new Map();
    var t0 = Infinity, t1 = -Infinity, counts = {};
    tasks.forEach(function (t) {
      var g = groups.get(t[1]);
      if (!g) { g = { slug: t[1], parent: null, children: [], start: Infinity, end: -Infinity, counts: {} }; groups.set(t[1], g); }
      if (t[2] < 0) g.parent = t; else { g.children.push(t); g.counts[t[3]] = (g.counts[t[3]] || 0) + 1; }
      if (t[4] != null) { g.start = Math.min(g.start, t[4]); t0 = Math.min(t0, t[4]); }
      var end = t[5] != null ? t[5] : (t[4] != null ? Date.now() : null);
      if (end != null) { g.end = Math.max(g.end, end); t1 = Math.max(t1, end); }
      counts[t[3]] = (counts[t[3]] || 0) + 1;
    });
    if (t0 === Infinity) { t0 = Date.now(); t1 = t0 + 1000; }
    if (t1 <= t0) t1 = t0 + 1000;
    span = [t0, t1];
    var ordered = Array.from(groups.values()).sort(function (a, b) { return (a.start - b.start) || (a.slug < b.slug ? -1 : 1); });
    rows = [];
    ordered.forEach(function (g) {
      rows.push({ kind: "group", g: g });
      if (g.children.length && expanded.has(g.slug)) {
        g.children.sort(function (a, b) { return a[2] - b[2]; });
        g.children.forEach(function (c) { rows.push({ kind: "child", t: c }); });
      }
    });
    summary.textContent = tasks.size + " task runs · " + Object.keys(counts).sort().map(function (k) { return counts[k] + " " + k; }).join(" · ");
    space.style.height = rows.length * ROW + "px";
    document.getElementById("gantt-scale").innerHTML = "<span>0 s</span><span>" + ((t1 - t0) / 1000).toFixed(1) + " s</span>";
    render();
    if (graphShown) paintGraph();
  }

  function schedule() {
    if (dirty) return;
    dirty = true;
    requestAnimationFrame(function () { dirty = false; rebuild(); });
  }

  // -- the timeline (only the rows in view exist in the DOM) -----------------------------
  function bar(start, end, state) {
    if (start == null) return "";
    var s = span[0], w = span[1] - s;
    var e = end != null ? end : Date.now();
    var left = ((start - s) / w) * 100, width = Math.max(((e - start) / w) * 100, 0.2);
    return '<span class="bar s-' + state + '" style="left:' + left.toFixed(3) + "%;width:" + width.toFixed(3) + '%"></span>';
  }
  function mix(g) {
    var total = g.children.length, html = "";
    Object.keys(g.counts).sort().forEach(function (k) {
      html += '<span style="width:' + (100 * g.counts[k] / total).toFixed(3) + "%;background:" + color(k) + '"></span>';
    });
    var s = span[0], w = span[1] - s;
    var left = g.start === Infinity ? 0 : ((g.start - s) / w) * 100;
    var width = g.start === Infinity ? 100 : Math.max(((g.end - g.start) / w) * 100, 0.5);
    return '<span class="mix" style="left:' + left.toFixed(3) + "%;width:" + width.toFixed(3) + '%">' + html + "</span>";
  }
  function esc(text) { return String(text).replace(/[&<>"]/g, function (c) { return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]; }); }
  function countsText(g) {
    return '<span class="counts-inline">' + Object.keys(g.counts).sort().map(function (k) { return '<i style="color:' + color(k) + '">' + g.counts[k] + " " + k + "</i>"; }).join("") + "</span>";
  }
  function render() {
    var first = Math.max(0, Math.floor(gantt.scrollTop / ROW) - OVERSCAN);
    var last = Math.min(rows.length, Math.ceil((gantt.scrollTop + gantt.clientHeight) / ROW) + OVERSCAN);
    var html = "";
    for (var i = first; i < last; i++) {
      var r = rows[i], top = i * ROW;
      if (r.kind === "group") {
        var g = r.g, t = g.parent, mapped = g.children.length > 0;
        var state = t ? t[3] : "Pending";
        html += '<div class="row" style="top:' + top + 'px" data-slug="' + esc(g.slug) + '"' + (t ? ' data-id="' + t[0] + '"' : "") + ' data-state="' + state + '">' +
          '<span class="label">' + (mapped ? '<span class="toggle">' + (expanded.has(g.slug) ? "▾" : "▸") + "</span>" : "") + esc(g.slug) +
          (mapped ? " <small>×" + g.children.length + "</small>" + countsText(g) : "") + "</span>" +
          '<span class="track">' + (mapped ? mix(g) : bar(t && t[4], t && t[5], state)) + "</span></div>";
      } else {
        var c = r.t;
        html += '<div class="row child" style="top:' + top + 'px" data-id="' + c[0] + '" data-state="' + c[3] + '"><span class="label">' + esc(c[1]) + "[" + c[2] + "]</span>" +
          '<span class="track">' + bar(c[4], c[5], c[3]) + "</span></div>";
      }
    }
    space.innerHTML = html;
  }
  gantt.addEventListener("scroll", function () { requestAnimationFrame(render); }, { passive: true });
  gantt.addEventListener("click", function (ev) {
    var row = ev.target.closest(".row");
    if (!row) return;
    var slug = row.dataset.slug;
    if (slug && ev.target.closest(".toggle, small, .counts-inline")) {
      if (expanded.has(slug)) expanded.delete(slug); else expanded.add(slug);
      rebuild();
      return;
    }
    if (row.dataset.id) openTask(row.dataset.id);
    else if (slug) { if (expanded.has(slug)) expanded.delete(slug); else expanded.add(slug); rebuild(); }
  });

  // -- the task-run panel ----------------------------------------------------------------
  function openTask(id) {
    var url = runUrl + "/tasks/" + id;
    htmx.ajax("GET", url, { target: "#task-panel", swap: "innerHTML" }).then(function () { panel.hidden = false; });
    history.replaceState(null, "", url);
  }
  panel.addEventListener("click", function (ev) {
    if (ev.target.closest("[data-close]")) { ev.preventDefault(); panel.hidden = true; history.replaceState(null, "", runUrl); }
  });

  // -- the graph -------------------------------------------------------------------------
  function showGraph() {
    graphShown = true;
    if (graphData) { paintGraph(); return; }
    fetch(runUrl + "/graph.json", { credentials: "same-origin" }).then(function (r) { return r.json(); }).then(function (data) {
      if (data.tasks.length > GRAPH_MAX_TASKS) {
        document.getElementById("graph").innerHTML = '<p class="muted" style="padding:12px">This flow has ' + data.tasks.length +
          " tasks: the graph is drawn for flows of up to " + GRAPH_MAX_TASKS + " tasks. The timeline shows every task run.</p>";
        return;
      }
      var nodes = data.tasks.map(function (slug) { return { id: slug, width: Math.min(40 + slug.length * 7, 220), height: 34 }; });
      var worker = new Worker(base + "/static/graph-worker.js");
      worker.onmessage = function (ev) { graphData = ev.data; worker.terminate(); paintGraph(); };
      worker.postMessage({ lib: location.origin + base + "/static/vendor/dagre/dagre.min.js", nodes: nodes, edges: data.edges });
    });
  }
  function paintGraph() {
    if (!graphData) return;
    var bySlug = new Map();
    tasks.forEach(function (t) {
      var s = bySlug.get(t[1]);
      if (!s) { s = { state: "Pending", counts: {}, n: 0 }; bySlug.set(t[1], s); }
      if (t[2] < 0) s.state = t[3]; else { s.n++; s.counts[t[3]] = (s.counts[t[3]] || 0) + 1; }
    });
    var svg = '<svg xmlns="http://www.w3.org/2000/svg" width="' + Math.ceil(graphData.width) + '" height="' + Math.ceil(graphData.height) + '">';
    svg += '<defs><marker id="arrow" viewBox="0 0 8 8" refX="7" refY="4" markerWidth="7" markerHeight="7" orient="auto"><path d="M0,0L8,4L0,8z" fill="#a8b1bf"/></marker></defs>';
    graphData.edges.forEach(function (pts) {
      svg += '<polyline class="edge" marker-end="url(#arrow)" points="' + pts.map(function (p) { return p.x.toFixed(1) + "," + p.y.toFixed(1); }).join(" ") + '"/>';
    });
    graphData.nodes.forEach(function (n) {
      var s = bySlug.get(n.id) || { state: "Pending", counts: {}, n: 0 };
      var fill = color(s.state), x = n.x - n.width / 2, y = n.y - n.height / 2;
      var dark = s.state === "Pending";
      svg += '<g class="node" data-slug="' + esc(n.id) + '"><title>' + esc(n.id) + " · " + s.state + "</title>";
      svg += '<rect x="' + x + '" y="' + y + '" width="' + n.width + '" height="' + n.height + '" fill="' + fill + '"/>';
      if (s.n) {
        var off = 0;
        Object.keys(s.counts).sort().forEach(function (k) {
          var w = n.width * s.counts[k] / s.n;
          svg += '<rect x="' + (x + off) + '" y="' + (y + n.height - 6) + '" width="' + w + '" height="6" fill="' + color(k) + '" stroke="none"/>';
          off += w;
        });
      }
      var label = n.id.length > 28 ? n.id.slice(0, 27) + "…" : n.id;
      svg += '<text x="' + n.x + '" y="' + (n.y + 4) + '" text-anchor="middle" fill="' + (dark ? "#263043" : "#fff") + '">' + esc(label) + (s.n ? " ×" + s.n : "") + "</text></g>";
    });
    document.getElementById("graph").innerHTML = svg + "</svg>";
  }

  // -- tabs ------------------------------------------------------------------------------
  document.querySelectorAll(".tabs [data-tab]").forEach(function (btn) {
    btn.addEventListener("click", function () {
      document.querySelectorAll(".tabs [data-tab]").forEach(function (b) { b.setAttribute("aria-selected", String(b === btn)); });
      document.querySelectorAll(".tasks .tab").forEach(function (t) { t.hidden = t.id !== "tab-" + btn.dataset.tab; });
      if (btn.dataset.tab === "graph") showGraph(); else graphShown = false;
      if (btn.dataset.tab === "timeline") render();
    });
  });

  // -- logs ------------------------------------------------------------------------------
  var logs = document.getElementById("logs"), follow = document.getElementById("follow"), lastLog = 0;
  function addLogs(lines) {
    var frag = document.createDocumentFragment();
    lines.forEach(function (l) {
      if (l.id <= lastLog) return;
      lastLog = l.id;
      var div = document.createElement("div");
      div.className = "log l-" + l.level;
      div.innerHTML = "<span>" + esc(l.timestamp.replace("T", " ")) + "</span> <b>" + esc(l.level) + "</b> " + esc(l.name) + ": ";
      div.appendChild(document.createTextNode(l.message));
      frag.appendChild(div);
    });
    logs.appendChild(frag);
    if (follow.checked) logs.scrollTop = logs.scrollHeight;
  }

  // -- live ------------------------------------------------------------------------------
  var source = null;
  JSON.parse(document.getElementById("task-data").textContent).forEach(function (t) { tasks.set(t[0], t); });
  root.dataset.tasksLoaded = String(tasks.size);
  rebuild();
  if (window.performance && performance.mark) performance.mark("runwright:tasks-shown");
  function connect() {
    source = new EventSource(runUrl + "/live?log_after=" + lastLog + "&since=" + encodeURIComponent(root.dataset.tasksSince || ""));
    source.addEventListener("run", function (ev) {
      var run = JSON.parse(ev.data);
      document.getElementById("run-state").innerHTML = '<span class="badge s-' + esc(run.state_type) + '">' + esc(run.state_type) + "</span>";
      document.getElementById("run-message").textContent = run.message || "";
      document.getElementById("run-cancelling").hidden = !(run.cancel_requested && run.state_type === "Running");
      root.dataset.state = run.state_type;
    });
    source.addEventListener("tasks", function (ev) {
      JSON.parse(ev.data).forEach(function (t) { tasks.set(t[0], t); });
      root.dataset.tasksLoaded = String(tasks.size);
      schedule();
    });
    source.addEventListener("logs", function (ev) { addLogs(JSON.parse(ev.data)); });
    source.addEventListener("end", function () { source.close(); root.dataset.live = "ended"; });
  }
  connect();
  // redraw running bars as time passes
  setInterval(function () { if (root.dataset.state === "Running") schedule(); }, 2000);
})();
