// Thumbnails of finished frames, the latest one large, and the full frame on click.
// Images come as object URLs (the token is a header); each is revoked when replaced.
import { useEffect, useState } from "preact/hooks";
import { imageUrl } from "./api.js";
import { html } from "./html.js";

/** The most recently stored frames, newest first (the agent lists them with the grid). */
export function latestFrames(grid) {
  return (grid.latest || []).map((f) => ({ frame: f.frame, version: f.at, preview: f.preview }));
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
  const suffix = previews && item.preview ? "/preview" : "";
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
