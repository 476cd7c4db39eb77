// Lays out a flow's graph with dagre off the page's main thread.
// In: {lib, nodes: [{id, width, height}], edges: [[from, to]]}; out: {nodes, edges, width, height}.
self.onmessage = function (event) {
  var msg = event.data;
  importScripts(msg.lib);
  var g = new dagre.graphlib.Graph();
  g.setGraph({ rankdir: "LR", nodesep: 14, ranksep: 46, marginx: 12, marginy: 12 });
  g.setDefaultEdgeLabel(function () { return {}; });
  msg.nodes.forEach(function (n) { g.setNode(n.id, { width: n.width, height: n.height }); });
  msg.edges.forEach(function (e) { g.setEdge(e[0], e[1]); });
  dagre.layout(g);
  var nodes = g.nodes().map(function (id) { var n = g.node(id); return { id: id, x: n.x, y: n.y, width: n.width, height: n.height }; });
  var edges = g.edges().map(function (e) { return g.edge(e).points; });
  var graph = g.graph();
  self.postMessage({ nodes: nodes, edges: edges, width: graph.width, height: graph.height });
};
