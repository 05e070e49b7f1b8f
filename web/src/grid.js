// The frame grid: one cell per frame on a canvas (10,000 cells draw in a few ms),
// coloured by state; hover for task, server, attempt and times; click to select.
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { age, clock, frameSpec } from "./format.js";
import { html } from "./html.js";

export const STATE_NAMES = { w: "waiting", s: "dispatched", r: "running", d: "done", f: "failed" };
const COLORS = { w: "#c9ced6", s: "#8fb8e8", r: "#2f7fd8", d: "#2e9e5b", f: "#d64541" };

function cellSize(n) {
  if (n > 4000) return 7;
  if (n > 1000) return 10;
  if (n > 200) return 14;
  return 22;
}

/** For each frame position, the index of its task in the grid's task columns. */
function taskOfPosition(grid) {
  const owner = new Int32Array(grid.frames.length);
  let pos = 0;
  grid.tasks.size.forEach((size, t) => {
    owner.fill(t, pos, pos + size);
    pos += size;
  });
  return owner;
}

export function FrameGrid({ grid, selected, onSelect }) {
  const canvas = useRef(null);
  const box = useRef(null);
  const [width, setWidth] = useState(800);
  const [hover, setHover] = useState(null);
  const owner = useMemo(() => taskOfPosition(grid), [grid]);
  const n = grid.frames.length;
  const cell = cellSize(n);
  const cols = Math.max(1, Math.floor(width / cell));
  const rows = Math.ceil(n / cols);

  useEffect(() => {
    const observer = new ResizeObserver((entries) => setWidth(Math.floor(entries[0].contentRect.width)));
    observer.observe(box.current);
    return () => observer.disconnect();
  }, []);

  useEffect(() => {
    const c = canvas.current;
    const ratio = window.devicePixelRatio || 1;
    c.width = cols * cell * ratio;
    c.height = rows * cell * ratio;
    c.style.width = `${cols * cell}px`;
    c.style.height = `${rows * cell}px`;
    const ctx = c.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, cols * cell, rows * cell);
    const gap = cell > 8 ? 1 : 0.5;
    // One fillStyle change per state: batch the cells by colour.
    for (const [state, color] of Object.entries(COLORS)) {
      ctx.fillStyle = color;
      for (let i = grid.states.indexOf(state); i !== -1; i = grid.states.indexOf(state, i + 1)) {
        ctx.fillRect((i % cols) * cell, Math.floor(i / cols) * cell, cell - gap, cell - gap);
      }
    }
    if (selected.size) {
      ctx.strokeStyle = "#111";
      ctx.lineWidth = 2;
      grid.frames.forEach((frame, i) => {
        if (selected.has(frame)) ctx.strokeRect((i % cols) * cell + 1, Math.floor(i / cols) * cell + 1, cell - 3, cell - 3);
      });
    }
  }, [grid, cols, rows, cell, selected]);

  const position = (e) => {
    const rect = canvas.current.getBoundingClientRect();
    const col = Math.floor((e.clientX - rect.left) / cell);
    const row = Math.floor((e.clientY - rect.top) / cell);
    const i = row * cols + col;
    return col < cols && i >= 0 && i < n ? i : null;
  };
  const onMove = (e) => {
    const i = position(e);
    if (i === null) return setHover(null);
    const rect = box.current.getBoundingClientRect();
    setHover({ i, x: e.clientX - rect.left + 14, y: e.clientY - rect.top + 14 });
  };
  const onClick = (e) => {
    const i = position(e);
    if (i !== null) onSelect(grid.frames[i], e.shiftKey);
  };

  let tip = null;
  if (hover) {
    const t = owner[hover.i];
    const columns = grid.tasks;
    const server = columns.server[t] >= 0 ? grid.servers[columns.server[t]] : "—";
    const started = columns.started[t] == null ? null : grid.time_base + columns.started[t];
    const finished = columns.finished[t] == null ? null : grid.time_base + columns.finished[t];
    tip = html`<div class="tooltip" id="grid-tooltip" style=${{ left: `${hover.x}px`, top: `${hover.y}px` }}>
      <b>frame ${grid.frames[hover.i]}</b> · ${STATE_NAMES[grid.states[hover.i]]}<br />
      task ${columns.index[t]} · attempt ${columns.attempt[t]}<br />
      server ${server}<br />
      ${started ? html`started ${clock(started)}${finished ? html` · took ${age(finished - started)}` : ""}` : "not started"}
    </div>`;
  }
  return html`<div class="grid-box" ref=${box} onMouseLeave=${() => setHover(null)}>
    <canvas id="frame-grid" ref=${canvas} data-states=${grid.states} onMouseMove=${onMove} onClick=${onClick}></canvas>
    ${tip}
    <div class="legend">
      ${Object.entries(STATE_NAMES).map(
        ([key, name]) => html`<span><i style=${{ background: COLORS[key] }}></i>${name}</span>`,
      )}
      ${selected.size ? html`<span class="selection">selected: ${frameSpec(selected)}</span>` : html`<span class="dim">click frames to select, shift-click for a range</span>`}
    </div>
  </div>`;
}
