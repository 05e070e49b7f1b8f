// A task's renderer log: the whole log with a live tail while the attempt runs
// (the agent's log route, long-polled), or the task's stored tail where the agent has none.
import { useEffect, useRef, useState } from "preact/hooks";
import { api } from "./api.js";
import { html } from "./html.js";

const MAX_CHARS = 256 * 1024; // what the page keeps of a long log: its end

function attemptNumber(a) {
  return typeof a === "object" && a !== null ? a.attempt : a;
}

export function LogPanel({ jobId, task, features, onClose }) {
  const [attempt, setAttempt] = useState(null);
  const [log, setLog] = useState({ text: "", meta: null, error: null });
  const pre = useRef(null);

  const ran = task.attempt > 0;
  useEffect(() => {
    if (!features.logs || !ran) return undefined; // a task that never ran has no log yet
    const controller = new AbortController();
    let text = "";
    let alive = true;
    (async () => {
      let offset = 0;
      const base = `/api/v1/jobs/${jobId}/tasks/${task.index}/log`;
      while (alive) {
        const params = new URLSearchParams({ offset });
        if (attempt != null) params.set("attempt", attempt);
        if (offset > 0) params.set("wait", 10);
        let body;
        try {
          body = await api(`${base}?${params}`, { signal: controller.signal });
        } catch (error) {
          if (alive) setLog({ text, meta: null, error });
          return;
        }
        text = (text + body.text).slice(-MAX_CHARS);
        setLog({ text, meta: body, error: null });
        if (body.complete) return;
        offset = body.next_offset;
      }
    })();
    return () => {
      alive = false;
      controller.abort();
    };
  }, [jobId, task.index, attempt, features.logs, ran]);

  useEffect(() => {
    if (pre.current) pre.current.scrollTop = pre.current.scrollHeight;
  }, [log.text]);

  const meta = log.meta;
  const text = features.logs ? log.text : task.log_tail || "";
  return html`<section class="log-panel" id="log-panel">
    <header>
      <b>Log of task ${task.index}</b> (frames ${task.frames}) · ${task.state}
      ${meta && meta.attempts && meta.attempts.length > 1 &&
      html`<select id="log-attempt" value=${attempt ?? meta.attempt} onChange=${(e) => setAttempt(Number(e.target.value))}>
        ${meta.attempts.map((a) => html`<option value=${attemptNumber(a)}>attempt ${attemptNumber(a)}</option>`)}
      </select>`}
      ${meta && html`<span class="dim"> on ${meta.server || "—"}${meta.complete ? "" : " · live"}</span>`}
      ${meta && meta.truncated_bytes ? html`<span class="dim"> · first ${meta.truncated_bytes} bytes not kept</span>` : null}
      <button class="close" onClick=${onClose}>×</button>
    </header>
    ${task.error && html`<div class="error" id="task-error">${task.error}</div>`}
    ${!features.logs && html`<div class="dim small">The last lines the server reported for this task.</div>`}
    ${log.error && html`<div class="error">${log.error.message}</div>`}
    <pre ref=${pre} id="log-text">${ran ? text || "(no output)" : "(not started yet)"}</pre>
  </section>`;
}
