// ntoslab lifetime timeline (anywidget ES module): one bar per process from creation to exit
// (to the end of the trace when it never exited), denied creations as red crosses.
// Wheel zooms around the pointer, drag pans, double-click (or "reset") shows everything;
// hover for details, click to select. Model: items [{id, label, start, end, denied, tip}]
// with start/end in seconds from the first event, span [t0, t1], selected.

const NS = "http://www.w3.org/2000/svg";
function svg(tag, attrs) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}
function div(cls, text) {
  const e = document.createElement("div");
  e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function render({ model, el: host }) {
  const ROW = 20, LEFT = 190, TOP = 24, RIGHT = 16;
  const root = div("ntl-timeline");
  const bar = div("ntl-tl-bar");
  const title = div("ntl-tl-title");
  const buttons = div("ntl-tl-buttons");
  for (const [label, f] of [["−", 1.5], ["+", 1 / 1.5], ["reset", 0]]) {
    const b = document.createElement("button");
    b.textContent = label;
    b.addEventListener("click", () => (f ? zoom(f, null) : reset()));
    buttons.append(b);
  }
  bar.append(title, buttons);
  const frame = div("ntl-tl-frame");
  const tip = div("ntl-tip");
  root.append(bar, frame, tip);
  host.append(root);
  let view = null, width = 900, dragging = null;

  function items() { return model.get("items") || []; }
  function span() { return model.get("span") || [0, 1]; }
  function reset() { const [a, b] = span(); view = [a, b + (b - a) * 0.02 || 1]; draw(); }
  function x(t) { return LEFT + (t - view[0]) / (view[1] - view[0]) * (width - LEFT - RIGHT); }
  function t(px) { return view[0] + (px - LEFT) / (width - LEFT - RIGHT) * (view[1] - view[0]); }
  function zoom(factor, centre) {
    const c = centre === null ? (view[0] + view[1]) / 2 : centre;
    view = [c - (c - view[0]) * factor, c + (view[1] - c) * factor];
    draw();
  }

  function showTip(item, ev) {
    tip.replaceChildren(div("ntl-tip-title", item.label));
    for (const [k, v] of Object.entries(item.tip || {})) if (v !== null && v !== "") tip.append(div("", `${k}: ${v}`));
    const box = root.getBoundingClientRect();
    tip.style.display = "block";
    tip.style.left = (ev.clientX - box.left + 14) + "px";
    tip.style.top = (ev.clientY - box.top + 10) + "px";
  }

  function draw() {
    const list = items();
    width = Math.max(600, frame.clientWidth || host.clientWidth || 900);
    const height = TOP + ROW * list.length + 8;
    const s = svg("svg", { width, height, class: "ntl-tl-svg" });
    const clip = svg("clipPath", { id: "ntl-clip-" + model.cid });
    clip.append(svg("rect", { x: LEFT, y: 0, width: width - LEFT - RIGHT, height }));
    s.append(clip);
    // axis: about 7 ticks at a round step
    const range = view[1] - view[0];
    const raw = range / 7, mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 5, 10].map((m) => m * mag).find((v) => v >= raw);
    for (let v = Math.ceil(view[0] / step) * step; v <= view[1]; v += step) {
      const px = x(v);
      s.append(svg("line", { x1: px, x2: px, y1: TOP - 4, y2: height, class: "ntl-tl-grid" }));
      const label = svg("text", { x: px, y: TOP - 8, class: "ntl-tl-tick" });
      label.textContent = `${+v.toFixed(6)} s`;
      s.append(label);
    }
    const plot = svg("g", { "clip-path": `url(#ntl-clip-${model.cid})` });
    list.forEach((it, i) => {
      const y = TOP + i * ROW;
      const name = svg("text", { x: LEFT - 6, y: y + ROW * 0.7, class: "ntl-tl-name" + (it.denied ? " ntl-denied" : "") });
      name.textContent = it.label;
      s.append(name);
      let mark;
      if (it.denied) {
        const cx = x(it.start), cy = y + ROW / 2;
        mark = svg("path", { d: `M${cx - 5},${cy - 5}L${cx + 5},${cy + 5}M${cx - 5},${cy + 5}L${cx + 5},${cy - 5}`, class: "ntl-tl-deny" });
      } else {
        const end = it.end === null || it.end === undefined ? span()[1] : it.end;
        mark = svg("rect", { x: x(it.start), y: y + 3, width: Math.max(2, x(end) - x(it.start)), height: ROW - 6,
                             class: "ntl-tl-bar-rect" + (it.end === null ? " ntl-running" : "") + (model.get("selected") === it.id ? " ntl-selected" : "") });
      }
      mark.dataset.key = it.id;
      mark.addEventListener("mousemove", (ev) => showTip(it, ev));
      mark.addEventListener("mouseleave", () => { tip.style.display = "none"; });
      mark.addEventListener("click", () => { model.set("selected", it.id); model.save_changes(); draw(); });
      plot.append(mark);
    });
    s.append(plot);
    s.addEventListener("wheel", (ev) => {
      ev.preventDefault();
      const box = s.getBoundingClientRect();
      zoom(ev.deltaY > 0 ? 1.25 : 0.8, t(ev.clientX - box.left));
    }, { passive: false });
    s.addEventListener("mousedown", (ev) => { dragging = { x: ev.clientX, view: view.slice() }; });
    s.addEventListener("dblclick", reset);
    frame.replaceChildren(s);
    title.textContent = (model.get("title") || "Process lifetimes") + `  [${+view[0].toFixed(3)} s … ${+view[1].toFixed(3)} s]`;
    root.dataset.view = view.map((v) => v.toFixed(6)).join(",");
  }

  window.addEventListener("mousemove", (ev) => {
    if (!dragging) return;
    const dt = (ev.clientX - dragging.x) / (width - LEFT - RIGHT) * (dragging.view[1] - dragging.view[0]);
    view = [dragging.view[0] - dt, dragging.view[1] - dt];
    draw();
  });
  window.addEventListener("mouseup", () => { dragging = null; });
  model.on("change:items", reset);
  model.on("change:span", reset);
  reset();
}

export default { render };
