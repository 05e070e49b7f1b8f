// Thumbnails of finished frames, the latest one large, and the full frame on click.
// Images come as object URLs (the token is a header); each is revoked when replaced.
import { useEffect, useState } from "preact/hooks";
import { imageUrl } from "./api.js";
import { html } from "./html.js";

const THUMBS = 12;

/** The most recently finished frames, newest first, from the grid's task columns. */
export function latestFrames(grid, count = THUMBS) {
  const order = grid.tasks.finished
    .map((finished, t) => [finished, t])
    .filter(([finished]) => finished != null)
    .sort((a, b) => b[0] - a[0]);
  const start = [];
  let pos = 0;
  grid.tasks.size.forEach((size) => {
    start.push(pos);
    pos += size;
  });
  const frames = [];
  for (const [finished, t] of order) {
    for (let i = start[t] + grid.tasks.size[t] - 1; i >= start[t] && frames.length < count; i -= 1) {
      if (grid.states[i] === "d") frames.push({ frame: grid.frames[i], version: finished });
    }
    if (frames.length >= count) break;
  }
  return frames;
}

function useImage(path) {
  const [state, setState] = useState({ url: null, error: null });
  useEffect(() => {
    if (!path) return undefined;
    const controller = new AbortController();
    let url = null;
    imageUrl(path, controller.signal)
      .then((u) => {
        url = u;
        setState({ url: u, error: null });
      })
      .catch((error) => error.name !== "AbortError" && setState({ url: null, error }));
    return () => {
      controller.abort();
      if (url) URL.revokeObjectURL(url);
    };
  }, [path]);
  return state;
}

function Thumb({ jobId, item, previews, large, onOpen }) {
  const suffix = previews ? "/preview" : "";
  const { url, error } = useImage(`/api/v1/jobs/${jobId}/frames/${item.frame}${suffix}?v=${item.version}`);
  return html`<figure class=${large ? "latest" : "thumb"} data-frame=${item.frame} onClick=${() => onOpen(item.frame)}>
    ${url ? html`<img src=${url} alt=${`frame ${item.frame}`} />` : html`<div class="placeholder">${error ? "no preview" : "…"}</div>`}
    <figcaption>frame ${item.frame}</figcaption>
  </figure>`;
}

export function Thumbnails({ jobId, grid, previews }) {
  const [open, setOpen] = useState(null);
  const items = latestFrames(grid);
  if (!items.length) return html`<p class="dim">No finished frames yet.</p>`;
  const [latest, ...rest] = items;
  return html`<div class="media">
    <${Thumb} jobId=${jobId} item=${latest} previews=${previews} large=${true} onOpen=${setOpen} key=${`L${latest.frame}-${latest.version}`} />
    <div class="thumbs">
      ${rest.map((item) => html`<${Thumb} jobId=${jobId} item=${item} previews=${previews} onOpen=${setOpen} key=${`${item.frame}-${item.version}`} />`)}
    </div>
    ${open != null && html`<${FullFrame} jobId=${jobId} frame=${open} onClose=${() => setOpen(null)} />`}
  </div>`;
}

function FullFrame({ jobId, frame, onClose }) {
  const { url, error } = useImage(`/api/v1/jobs/${jobId}/frames/${frame}`);
  return html`<div class="overlay" id="full-frame" onClick=${onClose}>
    <div class="frame-view">
      ${url ? html`<img src=${url} alt=${`frame ${frame} full size`} />` : html`<p>${error ? error.message : "loading…"}</p>`}
      <p>frame ${frame} · click to close</p>
    </div>
  </div>`;
}
