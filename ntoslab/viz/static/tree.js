// ntoslab process tree view (anywidget ES module): collapse/expand subtrees, hover for the
// command line, user, exit code and verdict, click to select a process and see its row.
// Model: nodes [{id, parent, label, denied, fault, tip: {k: v}, row: {k: v}}], open_depth,
// selected (a node id; set here on click, readable from Python).

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function table(obj) {
  const t = el("table", "ntl-kv");
  for (const [k, v] of Object.entries(obj)) {
    if (v === null || v === undefined || v === "") continue;
    const tr = el("tr");
    tr.append(el("th", "", k), el("td", "", String(v)));
    t.append(tr);
  }
  return t;
}

function render({ model, el: host }) {
  const root = el("div", "ntl-tree");
  const title = el("div", "ntl-tree-title");
  const list = el("div", "ntl-tree-body");
  const tip = el("div", "ntl-tip");
  const detail = el("div", "ntl-row");
  root.append(title, list, detail, tip);
  host.append(root);
  const labels = new Map();

  function showTip(node, ev) {
    tip.replaceChildren(el("b", "", node.label), table(node.tip || {}));
    tip.style.display = "block";
    const box = root.getBoundingClientRect();
    tip.style.left = (ev.clientX - box.left + 14) + "px";
    tip.style.top = (ev.clientY - box.top + 10) + "px";
  }

  function select(id) {
    for (const [key, span] of labels) span.classList.toggle("ntl-selected", key === id);
    const node = byId.get(id);
    detail.replaceChildren();
    if (node) detail.append(el("b", "", "selected: " + node.label), table(node.row || {}));
  }

  let byId = new Map(), kids = new Map();

  function item(node, depth) {
    const li = el("li", "ntl-node");
    const line = el("div", "ntl-line");
    const children = kids.get(node.id) || [];
    const toggle = el("span", "ntl-toggle", children.length ? "▸" : "•");
    const label = el("span", "ntl-label" + (node.denied ? " ntl-denied" : "") + (node.fault ? " ntl-fault" : ""), node.label);
    label.dataset.key = node.id;
    labels.set(node.id, label);
    const count = el("span", "ntl-count", children.length ? ` ${node.descendants} below` : "");
    line.append(toggle, label, count);
    li.append(line);
    let sub = null;
    function setOpen(open) {
      if (!children.length) return;
      if (open && !sub) {
        sub = el("ul", "ntl-children");
        for (const c of children) sub.append(item(byId.get(c), depth + 1));
        li.append(sub);
      }
      if (sub) sub.style.display = open ? "" : "none";
      toggle.textContent = open ? "▾" : "▸";
      li.classList.toggle("ntl-open", open);
    }
    toggle.addEventListener("click", () => setOpen(!(sub && sub.style.display !== "none")));
    label.addEventListener("click", () => { model.set("selected", node.id); model.save_changes(); select(node.id); });
    label.addEventListener("mouseenter", (ev) => showTip(node, ev));
    label.addEventListener("mousemove", (ev) => showTip(node, ev));
    label.addEventListener("mouseleave", () => { tip.style.display = "none"; });
    if (depth + 1 < model.get("open_depth")) setOpen(true);
    return li;
  }

  function build() {
    const nodes = model.get("nodes") || [];
    byId = new Map(nodes.map((n) => [n.id, n]));
    kids = new Map();
    const roots = [];
    for (const n of nodes) {
      if (n.parent !== null && n.parent !== undefined && byId.has(n.parent)) {
        if (!kids.has(n.parent)) kids.set(n.parent, []);
        kids.get(n.parent).push(n.id);
      } else roots.push(n.id);
    }
    labels.clear();
    title.textContent = model.get("title") || `${nodes.length} processes`;
    const ul = el("ul", "ntl-roots");
    for (const r of roots) ul.append(item(byId.get(r), 0));
    list.replaceChildren(ul);
    select(model.get("selected"));
  }

  model.on("change:nodes", build);
  model.on("change:open_depth", build);
  model.on("change:selected", () => select(model.get("selected")));
  build();
}

export default { render };
