// ntoslab report runtime: renders the anywidget views of an HTML report from the widget state
// embedded in the page (ipywidgets' widget-state JSON), offline: each view's own ES module
// comes from that state. Other widgets keep the static HTML the report shows for them.
const tag = document.querySelector('script[type="application/vnd.jupyter.widget-state+json"]');
const state = tag ? JSON.parse(tag.textContent).state : {};
const styles = new Set();

class Model {
  constructor(id, attrs) { this.cid = id; this.attrs = { ...attrs }; this.handlers = {}; }
  get(key) { return this.attrs[key]; }
  set(key, value) { this.attrs[key] = value; (this.handlers["change:" + key] || []).forEach((f) => f()); }
  on(event, fn) { (this.handlers[event] = this.handlers[event] || []).push(fn); }
  off(event) { if (event) delete this.handlers[event]; else this.handlers = {}; }
  save_changes() {}
  send() {}
}

for (const host of document.querySelectorAll(".ntoslab-anywidget")) {
  const entry = state[host.dataset.modelId];
  if (!entry || !entry.state._esm) continue;
  try {
    const attrs = entry.state;
    if (attrs._css && !styles.has(attrs._css)) {
      styles.add(attrs._css);
      const style = document.createElement("style");
      style.textContent = attrs._css;
      document.head.append(style);
    }
    const url = URL.createObjectURL(new Blob([attrs._esm], { type: "text/javascript" }));
    const mod = await import(url);
    let widget = mod.default ?? mod;
    if (typeof widget === "function") widget = await widget();
    const model = new Model(host.dataset.modelId, attrs);
    const target = document.createElement("div");
    if (widget.initialize) await widget.initialize({ model });
    host.replaceChildren(target);
    await widget.render({ model, el: target });
    host.dataset.rendered = "true";
  } catch (err) {
    console.error("ntoslab: could not render widget", host.dataset.modelId, err);   // the static face stays
  }
}
