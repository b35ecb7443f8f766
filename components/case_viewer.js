// The case viewer: a fundus photograph on a canvas, with zoom, pan, brightness, contrast, gamma,
// red-free and (saliency arm only) the AI's saliency maps. Everything happens in the browser: no view change
// sends anything to the server. Photographs arrive by signed URL (cached by the browser); the screen
// image (longest side 2048 px) is shown first and the full-resolution file is fetched once the zoom
// needs more pixels than the screen image has. No libraries, no CDN: this file is the whole viewer.
//
// A saliency map arrives as a small grey PNG (revision_core/saliency_render.py) whose grey values mark the
// retina's attribution bands (top 10%, 5%, 1%); the viewer cuts it at those values on screen, at any zoom,
// and draws the bands in blue to cyan (colours no fundus lesion has), filled or as outlines, each outline
// with a dark halo so it reads on a bright disc and a dark periphery alike. The map says which finding it
// explains ("Where the model looked for ... (91%)") and the reader can switch among the top findings.

const VIEWERS = new WeakMap();
const MAX_DEVICE_PX_PER_IMAGE_PX = 8; // zoom limit: one photograph pixel as 8x8 screen pixels
const STATS = (window.__caseViewer = window.__caseViewer || { frames: [], mounts: 0 });
const PRELOADED = new Map(); // url -> Image fetched and decoded ahead (the next case), reused when it comes

function preload(url) {
  if (PRELOADED.has(url)) return;
  const image = new Image();
  image.src = url;
  image.decode().catch(() => PRELOADED.delete(url));
  PRELOADED.set(url, image);
  while (PRELOADED.size > 8) PRELOADED.delete(PRELOADED.keys().next().value);
}

function loadImage(url, onload) {
  // an image fetched ahead when there is one (decoded already), else a new one
  const ahead = PRELOADED.get(url);
  if (ahead && ahead.complete && ahead.naturalWidth) { queueMicrotask(() => onload(ahead)); return ahead; }
  const image = new Image();
  image.decoding = "async";
  image.onload = () => onload(image);
  image.src = url;
  return image;
}

function rgba(rgb, alpha) {
  return `rgba(${rgb[0]}, ${rgb[1]}, ${rgb[2]}, ${alpha})`;
}

export default function (component) {
  const { data, parentElement } = component;
  let viewer = VIEWERS.get(parentElement);
  if (!viewer || viewer.id !== data.id) {
    if (viewer) viewer.destroy();
    viewer = new Viewer(parentElement, data);
    VIEWERS.set(parentElement, viewer);
  }
  return () => {
    viewer.destroy();
    VIEWERS.delete(parentElement);
  };
}

// Brightness and contrast around mid-grey, then gamma:
// out = 255 * (clamp(((in - 128) * contrast + 128) * brightness) / 255) ^ (1 / gamma)
function lookupTable(brightness, contrast, gamma) {
  const lut = new Uint8ClampedArray(256);
  for (let i = 0; i < 256; i++) {
    const v = Math.min(255, Math.max(0, ((i - 128) * contrast + 128) * brightness));
    lut[i] = Math.round(255 * Math.pow(v / 255, 1 / gamma));
  }
  return lut;
}

function el(tag, attrs = {}, children = []) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) node.appendChild(c);
  return node;
}

class Viewer {
  constructor(parent, data) {
    this.id = data.id;
    this.data = data;
    this.parent = parent;
    this.iw = data.width;
    this.ih = data.height;
    this.adjust = { brightness: 1, contrast: 1, gamma: 1, redFree: false };
    this.overlay = { show: false, opacity: 1, style: "filled", index: 0 };
    this.maps = data.maps || [];
    this.pointers = new Map();
    this.frame = 0;
    this.listeners = [];
    STATS.mounts += 1;
    STATS.mounted = { id: this.id, at: performance.now() };
    this.build();
    this.load();
    this.scrollPageToTop();
  }

  on(target, type, fn, opts) {
    target.addEventListener(type, fn, opts);
    this.listeners.push(() => target.removeEventListener(type, fn, opts));
  }

  button(label, title, fn, extra = {}) {
    const b = el("button", { type: "button", title, "aria-label": title, ...extra, text: label });
    this.on(b, "click", fn);
    return b;
  }

  slider(name, label, min, max, step, value, fn) {
    const input = el("input", { type: "range", min, max, step, value: String(value), "aria-label": label,
                                "data-control": name });
    const out = el("output", { text: Number(value).toFixed(2) });
    this.on(input, "input", () => { out.textContent = Number(input.value).toFixed(2); fn(Number(input.value)); });
    this.sliders[name] = { input, out };
    return el("label", { class: "cv-slider" }, [el("span", { text: label }), input, out]);
  }

  mapTools() {
    // the saliency arm's row: which finding's map, filled or outline, its opacity
    const d = this.data;
    const row = el("div", { class: "cv-ai", "data-testid": "map-tools" });
    if (this.maps.length) {
      this.mapSelect = el("select", { "aria-label": "Finding the map explains", "data-control": "map_finding" });
      this.maps.forEach((m, i) => this.mapSelect.append(
        el("option", { value: String(i), text: `${m.name} (${m.percent}%)` })));
      this.on(this.mapSelect, "change", () => this.chooseMap(Number(this.mapSelect.value)));
      row.append(el("label", { class: "cv-field" }, [el("span", { text: "for" }), this.mapSelect]));
      this.styleButtons = {};
      const group = el("div", { class: "cv-segmented", role: "group", "aria-label": "How the map is drawn" });
      for (const [style, label] of [["filled", "Filled"], ["outline", "Outline"]]) {
        const b = this.button(label, `Map drawn ${label.toLowerCase()}`, () => this.setMapStyle(style),
                              { "aria-pressed": String(style === this.overlay.style), "data-control": `map_${style}` });
        this.styleButtons[style] = b;
        group.append(b);
      }
      row.append(group);
    }
    row.append(this.slider("opacity", "Opacity", 0, 1, 0.05, this.overlay.opacity, (v) => this.setOpacity(v)));
    return row;
  }

  mapLegend() {
    // on the photograph while a map is shown: what it explains (top) and what its colours mean (bottom)
    const p = this.data.palette;
    this.caption = el("div", { class: "cv-caption", "data-testid": "map-caption" });
    this.legend = el("div", { class: "cv-legend", "data-testid": "map-legend" });
    const title = el("div", { class: "cv-legend-title",
                              text: `Model attribution (${this.data.method || "saliency"}), not a lesion map` });
    this.legend.append(title);
    if (p && this.maps.length) {
      // strongest first: the top 1%, 5% and 10% of the retina's attribution, each swatch as the map draws it
      const names = ["top 10% of the retina (weakest shown)", "5%", "top 1% (strongest)"];
      const row = el("div", { class: "cv-legend-row" });
      [2, 1, 0].forEach((i) => {
        const b = p.bands[i];
        row.append(el("span", { class: "cv-swatch", style: `background:${rgba(b.fill, 0.75)};border-color:${rgba(b.line, 1)};`
                                + `box-shadow:0 0 0 1px ${rgba(p.halo.rgb, p.halo.alpha)}` }),
                   el("span", { class: "cv-legend-label", text: names[i] }));
      });
      this.legend.append(row);
      this.seenRow = el("div", { class: "cv-legend-row", hidden: "" }, [
        el("span", { class: "cv-swatch cv-swatch-edge" }),
        el("span", { class: "cv-legend-label", text: "dashed: the edge of what the model saw (no map beyond it)" })]);
      this.legend.append(this.seenRow);
    }
    this.stage.append(this.caption, this.legend);
  }

  build() {
    this.sliders = {};
    const d = this.data;
    this.root = el("div", { class: "cv-root", "data-testid": "case-viewer", "data-zoom": "fit", "data-source": "none",
                            "data-case": String(d.id), "data-overlay": "hidden" });
    const tools = el("div", { class: "cv-tools" });
    tools.append(
      this.button("\u2212", "Zoom out (-)", () => this.zoomBy(1 / 1.5)),
      this.button("+", "Zoom in (+)", () => this.zoomBy(1.5)),
      this.button("Fit", "Whole photograph (0 or double-click)", () => this.reset()),
      this.button("1:1", "Native pixels (1)", () => this.zoomTo(window.devicePixelRatio || 1)),
    );
    this.redFreeButton = this.button("Red-free", "Red-free: green channel in grey (G)", () => this.toggleRedFree(),
                                     { "aria-pressed": "false", "data-control": "red_free" });
    tools.append(this.redFreeButton);
    this.hasOverlay = Boolean(this.maps.length || d.overlay);
    if (this.hasOverlay) {
      this.overlayButton = this.button("Where the model looked", "Show where the model looked: its saliency map (S)",
                                       () => this.toggleOverlay(), { "aria-pressed": "false", "data-control": "overlay" });
      tools.append(this.overlayButton);
    }
    tools.append(this.button("Reset all", "Reset zoom and image adjustments (R)", () => this.resetAll()));
    const adjust = el("div", { class: "cv-adjust" }, [
      this.slider("brightness", "Brightness", 0.5, 2, 0.05, 1, (v) => this.setAdjust("brightness", v)),
      this.slider("contrast", "Contrast", 0.5, 2, 0.05, 1, (v) => this.setAdjust("contrast", v)),
      this.slider("gamma", "Gamma", 0.4, 2.5, 0.05, 1, (v) => this.setAdjust("gamma", v)),
    ]);
    this.stage = el("div", { class: "cv-stage", tabindex: "0", "aria-label": "Fundus photograph viewer" });
    this.canvas = el("canvas", { class: "cv-canvas" });
    this.ctx = this.canvas.getContext("2d", { willReadFrequently: true });
    this.status = el("div", { class: "cv-status" });
    this.loading = el("div", { class: "cv-loading", text: "Loading photograph\u2026" });
    this.stage.append(this.canvas, this.loading);
    if (this.hasOverlay) this.mapLegend();
    const help = el("div", { class: "cv-help", text: "Wheel or pinch: zoom \u00b7 drag: pan \u00b7 double-click or 0: fit \u00b7 "
      + "keys: + \u2212 1, arrows, G red-free" + (this.hasOverlay ? ", S map" : "") + ", R reset" });
    this.foot = el("div", { class: "cv-foot" }, [this.status, help]);
    this.root.append(tools, ...(this.hasOverlay ? [this.mapTools()] : []), adjust, this.stage, this.foot);
    this.parent.appendChild(this.root);

    this.on(this.stage, "wheel", (e) => this.onWheel(e), { passive: false });
    this.on(this.stage, "pointerdown", (e) => this.onPointerDown(e));
    this.on(this.stage, "pointermove", (e) => this.onPointerMove(e));
    for (const t of ["pointerup", "pointercancel", "pointerleave"]) this.on(this.stage, t, (e) => this.onPointerUp(e));
    this.on(this.stage, "dblclick", () => this.reset());
    this.on(document, "keydown", (e) => this.onKey(e));
    this.on(window, "resize", () => this.layout());
    this.resizeObserver = new ResizeObserver(() => this.layout());
    this.resizeObserver.observe(this.stage);
    this.layout();
  }

  load() {
    const d = this.data;
    const ready = () => {
      this.loading.remove();
      this.draw();
      for (const url of d.prefetch || []) preload(url); // the next case: fetched and decoded while this one is read
    };
    this.screen = loadImage(d.screen_url, ready);
    this.screen.onerror = () => { this.loading.textContent = "The photograph could not be loaded: reload the page."; };
    if (d.overlay) { // a picture stored before saliency maps had bands: drawn as it is
      this.overlayImage = new Image();
      this.overlayImage.onload = () => this.draw();
      this.overlayImage.src = d.overlay;
    }
    this.mapImages = this.maps.map((m) => loadImage(m.url, () => { this.mapCache = null; this.draw(); }));
    const start = Number.isInteger(d.show_map) ? d.show_map : 0;
    this.chooseMap(start);
    if (Number.isInteger(d.show_map)) this.toggleOverlay();
  }

  chooseMap(index) {
    this.overlay.index = index;
    this.mapCache = null;
    const m = this.maps[index];
    if (this.mapSelect) this.mapSelect.value = String(index);
    if (this.caption) {
      const what = m ? `${m.name.toLowerCase()} (${m.percent}%)` : (this.data.overlay_label || "");
      this.caption.textContent = `Where the model looked for ${what}`;
      this.root.dataset.map = m ? m.finding : "picture";
    }
    this.draw();
  }

  setMapStyle(style) {
    this.overlay.style = style;
    this.mapCache = null;
    for (const [name, b] of Object.entries(this.styleButtons || {})) b.setAttribute("aria-pressed", String(name === style));
    if (this.legend) this.legend.dataset.style = style;
    this.draw();
  }

  wantFull() {
    if (this.full || !this.screen.naturalWidth) return;
    if (this.scale * this.iw <= this.screen.naturalWidth * 1.01) return;
    this.full = new Image();
    this.full.decoding = "async";
    this.full.onload = () => this.draw();
    this.full.src = this.data.full_url;
  }

  scrollPageToTop() {
    // each case starts at the top of the page: heading, photograph and AI panel in view
    const scrollers = [document.scrollingElement, document.querySelector('[data-testid="stMain"]'),
                       document.querySelector('[data-testid="stAppViewContainer"]'),
                       document.querySelector('[data-testid="stMainBlockContainer"]')];
    for (const s of scrollers) if (s && s.scrollTop) s.scrollTop = 0;
    window.scrollTo(0, 0);
  }

  layout() {
    // the stage takes the window's height below its own top (as laid out at the top of the page)
    const rect = this.stage.getBoundingClientRect();
    const scroller = document.querySelector('[data-testid="stMain"]');
    const top = rect.top + (scroller ? scroller.scrollTop : 0) + window.scrollY;
    const foot = this.foot ? this.foot.offsetHeight + 4 : 28; // the status and help lines (one or two)
    const h = Math.max(320, Math.floor(window.innerHeight - top - foot - 12));
    this.stage.style.height = `${h}px`;
    const dpr = window.devicePixelRatio || 1;
    const cw = Math.max(1, Math.round(this.stage.clientWidth * dpr));
    const ch = Math.max(1, Math.round(h * dpr));
    if (cw === this.canvas.width && ch === this.canvas.height && this.scale) return;
    this.canvas.width = cw;
    this.canvas.height = ch;
    this.canvas.style.width = `${this.stage.clientWidth}px`;
    this.canvas.style.height = `${h}px`;
    this.fitScale = Math.min(cw / this.iw, ch / this.ih);
    if (!this.scale || this.isFit) this.reset(); else this.clamp(), this.draw();
  }

  reset() {
    this.scale = this.fitScale;
    this.tx = (this.canvas.width - this.iw * this.scale) / 2;
    this.ty = (this.canvas.height - this.ih * this.scale) / 2;
    this.isFit = true;
    this.draw();
  }

  resetAll() {
    this.adjust = { brightness: 1, contrast: 1, gamma: 1, redFree: false };
    for (const [name, s] of Object.entries(this.sliders)) {
      if (name === "opacity") continue;
      s.input.value = "1"; s.out.textContent = "1.00";
    }
    this.redFreeButton.setAttribute("aria-pressed", "false");
    this.reset();
  }

  maxScale() {
    return Math.max(this.fitScale, MAX_DEVICE_PX_PER_IMAGE_PX);
  }

  zoomTo(scale, cx = this.canvas.width / 2, cy = this.canvas.height / 2) {
    this.viewChangedAt = performance.now();
    const s = Math.min(this.maxScale(), Math.max(this.fitScale, scale));
    this.tx = cx - ((cx - this.tx) * s) / this.scale;
    this.ty = cy - ((cy - this.ty) * s) / this.scale;
    this.scale = s;
    this.isFit = Math.abs(s - this.fitScale) < 1e-9;
    this.clamp();
    this.draw();
  }

  zoomBy(factor, cx, cy) {
    this.zoomTo(this.scale * factor, cx, cy);
  }

  panBy(dx, dy) {
    this.viewChangedAt = performance.now();
    this.tx += dx;
    this.ty += dy;
    this.clamp();
    this.draw();
  }

  clamp() {
    // keep the photograph on screen: centred along an axis where it is smaller than the stage
    const w = this.iw * this.scale, h = this.ih * this.scale, cw = this.canvas.width, ch = this.canvas.height;
    this.tx = w <= cw ? (cw - w) / 2 : Math.min(0, Math.max(cw - w, this.tx));
    this.ty = h <= ch ? (ch - h) / 2 : Math.min(0, Math.max(ch - h, this.ty));
  }

  devicePoint(e) {
    const r = this.canvas.getBoundingClientRect(), dpr = window.devicePixelRatio || 1;
    return [(e.clientX - r.left) * dpr, (e.clientY - r.top) * dpr];
  }

  onWheel(e) {
    e.preventDefault();
    const [x, y] = this.devicePoint(e);
    const delta = e.deltaMode === 1 ? e.deltaY * 16 : e.deltaY;
    this.zoomBy(Math.exp(-delta * 0.002), x, y);
  }

  onPointerDown(e) {
    this.stage.focus({ preventScroll: true });
    this.stage.setPointerCapture?.(e.pointerId);
    this.pointers.set(e.pointerId, this.devicePoint(e));
    this.pinch = null;
  }

  onPointerMove(e) {
    if (!this.pointers.has(e.pointerId)) return;
    const prev = this.pointers.get(e.pointerId), now = this.devicePoint(e);
    this.pointers.set(e.pointerId, now);
    if (this.pointers.size === 1) {
      this.panBy(now[0] - prev[0], now[1] - prev[1]);
    } else if (this.pointers.size === 2) {
      const [a, b] = [...this.pointers.values()];
      const dist = Math.hypot(a[0] - b[0], a[1] - b[1]);
      const mid = [(a[0] + b[0]) / 2, (a[1] + b[1]) / 2];
      if (this.pinch) this.zoomBy(dist / this.pinch, mid[0], mid[1]);
      this.pinch = dist;
    }
  }

  onPointerUp(e) {
    this.pointers.delete(e.pointerId);
    this.pinch = null;
  }

  onKey(e) {
    const target = e.composedPath()[0];
    if (!this.root.isConnected || e.ctrlKey || e.metaKey || e.altKey) return;
    if (target && (["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName) || target.isContentEditable)) {
      if (!(target.type === "range" && this.root.contains(target)) || !["+", "=", "-", "0"].includes(e.key)) return;
    }
    const step = 0.1 * Math.min(this.canvas.width, this.canvas.height);
    const actions = {
      "+": () => this.zoomBy(1.5), "=": () => this.zoomBy(1.5), "-": () => this.zoomBy(1 / 1.5),
      "0": () => this.reset(), "1": () => this.zoomTo(window.devicePixelRatio || 1),
      ArrowLeft: () => this.panBy(step, 0), ArrowRight: () => this.panBy(-step, 0),
      ArrowUp: () => this.panBy(0, step), ArrowDown: () => this.panBy(0, -step),
      g: () => this.toggleRedFree(), G: () => this.toggleRedFree(), r: () => this.resetAll(), R: () => this.resetAll(),
    };
    if (this.hasOverlay) actions.s = actions.S = () => this.toggleOverlay();
    const action = actions[e.key];
    if (!action) return;
    if (e.key.startsWith("Arrow") && this.isFit) return; // nothing to pan: leave the arrows to the page
    e.preventDefault();
    action();
  }

  setAdjust(name, value) {
    this.adjust[name] = value;
    this.draw();
  }

  setOpacity(value) {
    this.overlay.opacity = value;
    if (this.overlay.show) this.draw();
  }

  toggleRedFree() {
    this.adjust.redFree = !this.adjust.redFree;
    this.redFreeButton.setAttribute("aria-pressed", String(this.adjust.redFree));
    this.draw();
  }

  toggleOverlay() {
    this.overlay.show = !this.overlay.show;
    this.overlayButton.setAttribute("aria-pressed", String(this.overlay.show));
    this.root.dataset.overlay = this.overlay.show ? "shown" : "hidden";
    this.draw();
  }

  mapLayer(W, H, sx, sy, sw, sh, dx, dy, dw, dh) {
    // the current map's bands for this view, at CSS-pixel resolution (so every outline is the same width at any
    // zoom), cached until the view, the map or the style change
    const image = this.mapImages[this.overlay.index];
    if (!image || !image.complete || !image.naturalWidth) return null;
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(W / dpr)), h = Math.max(1, Math.round(H / dpr));
    const key = [this.overlay.index, this.overlay.style, w, h, sx, sy, sw, sh, dx, dy, dw, dh].join(",");
    if (this.mapCache && this.mapCache.key === key) return this.mapCache.canvas;
    const canvas = (this.mapCache && this.mapCache.canvas) || document.createElement("canvas");
    canvas.width = w; canvas.height = h;
    const g = canvas.getContext("2d", { willReadFrequently: true });
    g.clearRect(0, 0, w, h);
    g.imageSmoothingEnabled = true; // bilinear upsampling keeps the bands' edges smooth
    const kx = image.naturalWidth / this.iw, ky = image.naturalHeight / this.ih;
    g.drawImage(image, sx * kx, sy * ky, sw * kx, sh * ky, dx / dpr, dy / dpr, dw / dpr, dh / dpr);
    // only the photograph's rectangle on this layer is worked on; a map pixel with no alpha is one the model did
    // not see (a centre crop leaves the photograph's sides out): level UNSEEN
    const x0 = Math.max(0, Math.ceil(dx / dpr)), y0 = Math.max(0, Math.ceil(dy / dpr));
    const x1 = Math.min(w - 1, Math.floor((dx + dw) / dpr) - 1), y1 = Math.min(h - 1, Math.floor((dy + dh) / dpr) - 1);
    const out = new ImageData(w, h);
    if (x1 < x0 || y1 < y0) { g.putImageData(out, 0, 0); this.mapCache = { key, canvas }; return canvas; }
    const p = g.getImageData(0, 0, w, h).data, pal = this.data.palette, [g1, g2, g3] = pal.grey, UNSEEN = 4;
    const level = new Uint8Array(w * h);
    let anyUnseen = false;
    for (let y = y0; y <= y1; y++) {
      for (let x = x0, i = y * w + x0; x <= x1; x++, i++) {
        const j = 4 * i;
        if (p[j + 3] < 128) { level[i] = UNSEEN; anyUnseen = true; continue; }
        const v = p[j];
        level[i] = v >= g3 ? 3 : v >= g2 ? 2 : v >= g1 ? 1 : 0;
      }
    }
    if (this.seenRow) this.seenRow.hidden = !anyUnseen;
    // colours as 32-bit pixels (little-endian RGBA), written in one store each
    const pack = (rgb, a) => ((a << 24) | (rgb[2] << 16) | (rgb[1] << 8) | rgb[0]) >>> 0;
    const fill = this.overlay.style === "filled";
    const halo = pack(pal.halo.rgb, Math.round(255 * pal.halo.alpha)), edge = pack(pal.seen_edge || [235, 240, 255], 230);
    const lines = [0, ...pal.bands.map((b) => pack(b.line, 255))];
    const fills = [0, ...pal.bands.map((b) => (fill ? pack(b.fill, Math.round(255 * b.alpha)) : 0))];
    const o = new Uint32Array(out.data.buffer);
    // an outline is 2 CSS pixels inside a band's edge, in the band's line colour, and 1 outside it, the dark halo;
    // a neighbour the model did not see makes no band edge (the bands stop there, the dashed line says why)
    for (let y = y0; y <= y1; y++) {
      for (let x = x0, i = y * w + x0; x <= x1; x++, i++) {
        const L = level[i];
        if (L === UNSEEN) continue;
        const l1 = x > 0 ? level[i - 1] : L, r1 = x < w - 1 ? level[i + 1] : L;
        const u1 = y > 0 ? level[i - w] : L, d1 = y < h - 1 ? level[i + w] : L;
        if (anyUnseen && (l1 === UNSEEN || r1 === UNSEEN || u1 === UNSEEN || d1 === UNSEEN)) {
          if ((x + y) % 10 < 5) o[i] = edge;
          continue;
        }
        if (L > 0) {
          const l2 = x > 1 ? level[i - 2] : L, r2 = x < w - 2 ? level[i + 2] : L;
          const u2 = y > 1 ? level[i - 2 * w] : L, d2 = y < h - 2 ? level[i + 2 * w] : L;
          if (Math.min(l1, r1, u1, d1, l2, r2, u2, d2) < L) { o[i] = lines[L]; continue; } // UNSEEN (4) never lower
        }
        const hi = Math.max(l1 === UNSEEN ? 0 : l1, r1 === UNSEEN ? 0 : r1, u1 === UNSEEN ? 0 : u1,
                            d1 === UNSEEN ? 0 : d1);
        o[i] = hi > L ? halo : fills[L];
      }
    }
    g.putImageData(out, 0, 0);
    this.mapCache = { key, canvas, scale: this.scale, tx: this.tx, ty: this.ty, W, H,
                      index: this.overlay.index, style: this.overlay.style };
    return canvas;
  }

  paintMap(ctx, W, H, sx, sy, sw, sh, dx, dy, dw, dh) {
    // while the reader zooms or pans, the last layer moves with the photograph (one draw); once they stop for a
    // moment the bands are cut again, sharp, for the new view
    const c = this.mapCache;
    ctx.globalAlpha = this.overlay.opacity;
    if (c && c.index === this.overlay.index && c.style === this.overlay.style && c.W === W && c.H === H
        && (c.scale !== this.scale || c.tx !== this.tx || c.ty !== this.ty)
        && performance.now() - (this.viewChangedAt || 0) < 150) {
      const k = this.scale / c.scale;
      ctx.setTransform(k, 0, 0, k, this.tx - c.tx * k, this.ty - c.ty * k);
      ctx.imageSmoothingEnabled = true;
      ctx.drawImage(c.canvas, 0, 0, W, H);
      ctx.setTransform(1, 0, 0, 1, 0, 0);
      clearTimeout(this.mapTimer);
      this.mapTimer = setTimeout(() => this.draw(), 160);
    } else {
      const layer = this.mapLayer(W, H, sx, sy, sw, sh, dx, dy, dw, dh);
      if (layer) {
        ctx.imageSmoothingEnabled = false;
        ctx.drawImage(layer, 0, 0, W, H);
      }
    }
    ctx.globalAlpha = 1;
  }

  draw() {
    if (this.frame || !this.screen) return;
    this.frame = requestAnimationFrame(() => { this.frame = 0; this.paint(); });
  }

  paint() {
    const t0 = performance.now();
    const ctx = this.ctx, W = this.canvas.width, H = this.canvas.height;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, W, H);
    if (!this.screen.complete || !this.screen.naturalWidth) return;
    this.wantFull();
    const useFull = this.full && this.full.complete && this.full.naturalWidth
      && this.scale * this.iw > this.screen.naturalWidth * 1.01;
    const src = useFull ? this.full : this.screen;
    const k = src.naturalWidth / this.iw; // source pixels per photograph pixel
    // the visible part of the photograph, in photograph pixels
    const x0 = Math.max(0, -this.tx / this.scale), y0 = Math.max(0, -this.ty / this.scale);
    const x1 = Math.min(this.iw, (W - this.tx) / this.scale), y1 = Math.min(this.ih, (H - this.ty) / this.scale);
    if (x1 <= x0 || y1 <= y0) return;
    ctx.imageSmoothingEnabled = this.scale * (useFull ? 1 : 1 / k) < 2;
    ctx.imageSmoothingQuality = "high";
    const dx = this.tx + x0 * this.scale, dy = this.ty + y0 * this.scale;
    const dw = (x1 - x0) * this.scale, dh = (y1 - y0) * this.scale;
    ctx.drawImage(src, x0 * k, y0 * k, (x1 - x0) * k, (y1 - y0) * k, dx, dy, dw, dh);
    const a = this.adjust;
    if (a.redFree || a.brightness !== 1 || a.contrast !== 1 || a.gamma !== 1) {
      const bx = Math.max(0, Math.floor(dx)), by = Math.max(0, Math.floor(dy));
      const bw = Math.min(W, Math.ceil(dx + dw)) - bx, bh = Math.min(H, Math.ceil(dy + dh)) - by;
      if (bw > 0 && bh > 0) {
        const img = ctx.getImageData(bx, by, bw, bh), p = img.data, lut = lookupTable(a.brightness, a.contrast, a.gamma);
        if (a.redFree) {
          for (let i = 0; i < p.length; i += 4) { const v = lut[p[i + 1]]; p[i] = v; p[i + 1] = v; p[i + 2] = v; }
        } else {
          for (let i = 0; i < p.length; i += 4) { p[i] = lut[p[i]]; p[i + 1] = lut[p[i + 1]]; p[i + 2] = lut[p[i + 2]]; }
        }
        ctx.putImageData(img, bx, by);
      }
    }
    if (this.overlay.show && this.maps.length) {
      this.paintMap(ctx, W, H, x0, y0, x1 - x0, y1 - y0, dx, dy, dw, dh);
    } else if (this.overlay.show && this.overlayImage && this.overlayImage.naturalWidth) {
      const ko = this.overlayImage.naturalWidth / this.iw, ko_y = this.overlayImage.naturalHeight / this.ih;
      ctx.globalAlpha = this.overlay.opacity;
      ctx.imageSmoothingEnabled = true;
      ctx.drawImage(this.overlayImage, x0 * ko, y0 * ko_y, (x1 - x0) * ko, (y1 - y0) * ko_y, dx, dy, dw, dh);
      ctx.globalAlpha = 1;
    }
    const t1 = performance.now();
    STATS.frames.push(t1 - t0);
    if (!this.painted) { this.painted = true; STATS.painted = { id: this.id, at: t1 }; } // first sight of this case
    if (STATS.frames.length > 500) STATS.frames.shift();
    const dpr = window.devicePixelRatio || 1;
    const zoom = this.scale / dpr; // screen (CSS) pixels per photograph pixel
    this.root.dataset.zoom = this.isFit ? "fit" : zoom.toFixed(3);
    this.root.dataset.source = useFull ? "full" : "screen";
    this.status.textContent = `${this.iw}\u00d7${this.ih} px \u00b7 `
      + (this.isFit ? "whole photograph" : `zoom ${(this.scale / this.fitScale).toFixed(1)}\u00d7`)
      + ` \u00b7 ${zoom >= 1 ? `1 photo px = ${zoom.toFixed(1)} screen px` : `${(100 * zoom).toFixed(0)}% of native`}`
      + (useFull ? " \u00b7 full resolution" : "");
  }

  destroy() {
    if (this.frame) cancelAnimationFrame(this.frame);
    clearTimeout(this.mapTimer);
    this.resizeObserver?.disconnect();
    for (const off of this.listeners) off();
    this.listeners = [];
    this.root.remove();
    if (this.screen) this.screen.onload = null;
  }
}
