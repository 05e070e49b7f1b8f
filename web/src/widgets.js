// Small shared pieces: state badges, progress bars, the confirmation dialog, errors.
import { useEffect, useState } from "preact/hooks";
import { html } from "./html.js";

export function StateBadge({ state }) {
  return html`<span class=${`badge state-${state}`}>${state}</span>`;
}

/** Done / running / failed / waiting as one stacked bar with the counts beside it. */
export function Progress({ job, wide }) {
  const p = job.progress;
  const t = p.tasks;
  const total = Math.max(1, t.waiting + t.dispatched + t.running + t.done + t.failed);
  const part = (n, cls, label) =>
    n ? html`<span class=${cls} style=${{ width: `${(100 * n) / total}%` }} title=${`${n} ${label}`}></span>` : null;
  return html`<div class=${wide ? "progress wide" : "progress"}>
    <div class="bar">
      ${part(t.done, "done", "tasks done")}${part(t.running + t.dispatched, "running", "tasks running")}
      ${part(t.failed, "failed", "tasks failed")}
    </div>
    <span class="counts">
      <b>${p.frames_done}/${p.frames_total}</b>
      <span class="c-done" title="tasks done">${t.done}✓</span>
      <span class="c-running" title="tasks running">${t.running + t.dispatched}▶</span>
      <span class="c-failed" title="tasks failed">${t.failed}✗</span>
      <span class="c-waiting" title="tasks waiting">${t.waiting}◌</span>
    </span>
  </div>`;
}

export function ErrorLine({ error }) {
  if (!error) return null;
  return html`<div class="error" role="alert">${error.message || String(error)}</div>`;
}

let openDialog = null;

/** Ask before an action that destroys work; resolves true when confirmed. */
export function confirmAction(message, confirmLabel = "Confirm") {
  return new Promise((resolve) => openDialog && openDialog({ message, confirmLabel, resolve }));
}

export function ConfirmDialog() {
  const [dialog, setDialog] = useState(null);
  useEffect(() => {
    openDialog = setDialog;
    return () => (openDialog = null);
  }, []);
  if (!dialog) return null;
  const close = (answer) => {
    setDialog(null);
    dialog.resolve(answer);
  };
  return html`<div class="overlay" onClick=${() => close(false)}>
    <div class="dialog" role="dialog" onClick=${(e) => e.stopPropagation()}>
      <p>${dialog.message}</p>
      <div class="buttons">
        <button id="confirm-cancel" onClick=${() => close(false)}>Keep</button>
        <button id="confirm-ok" class="danger" onClick=${() => close(true)}>${dialog.confirmLabel}</button>
      </div>
    </div>
  </div>`;
}
