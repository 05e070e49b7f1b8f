// Job detail: summary, controls, frame grid, thumbnails, task table and logs, live.
import { useCallback, useState } from "preact/hooks";
import { api } from "./api.js";
import { age, bytes, clock, frameSpec, since } from "./format.js";
import { FrameGrid } from "./grid.js";
import { html } from "./html.js";
import { placementText } from "./jobs.js";
import { useLiveReload } from "./live.js";
import { LogPanel } from "./logs.js";
import { Thumbnails } from "./media.js";
import { confirmAction, ErrorLine, Progress, StateBadge } from "./widgets.js";

const TASK_PAGE = 100;
const UNFINISHED = ["queued", "running", "paused"];

function Controls({ job, selected, clearSelection, onDone }) {
  const [priority, setPriority] = useState(String(job.priority));
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const local = job.placement === "local";
  const act = async (action, body, question, label) => {
    if (question && !(await confirmAction(question, label))) return;
    setBusy(true);
    try {
      await api(`/api/v1/jobs/${job.id}/${action}`, { method: "POST", body });
      setError(null);
      if (action === "retry" && body) clearSelection();
      onDone();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  const t = job.progress.tasks;
  const unfinished = UNFINISHED.includes(job.state);
  return html`<div class="controls">
    ${["queued", "running"].includes(job.state) &&
    html`<button id="btn-pause" disabled=${busy} onClick=${() => act("pause")}>Pause</button>`}
    ${job.state === "paused" && html`<button id="btn-resume" disabled=${busy} onClick=${() => act("resume")}>Resume</button>`}
    ${unfinished &&
    html`<button id="btn-cancel" class="danger" disabled=${busy}
      onClick=${() => act("cancel", undefined, `Cancel job ${job.name}? Frames still rendering are stopped and their work is lost.`, "Cancel job")}>Cancel…</button>`}
    ${local && t.failed > 0 &&
    html`<button id="btn-retry" disabled=${busy} onClick=${() => act("retry")}>Retry ${t.failed} failed</button>`}
    ${local && selected.size > 0 &&
    html`<button id="btn-requeue" disabled=${busy}
      onClick=${() => act("retry", { frames: frameSpec(selected) }, `Render frames ${frameSpec(selected)} again? Their current output is replaced.`, "Render again")}>
      Requeue ${selected.size} selected</button>`}
    ${unfinished &&
    html`<span class="priority">Priority
      <input id="priority-input" type="number" min="0" max="100" value=${priority} onInput=${(e) => setPriority(e.target.value)} />
      <button id="btn-priority" disabled=${busy || priority === String(job.priority)}
        onClick=${() => act("priority", { priority: Number(priority) })}>Set</button></span>`}
    <${ErrorLine} error=${error} />
  </div>`;
}

function Facts({ job }) {
  const p = job.profile;
  const rows = [
    ["Owner", job.owner],
    ["Package", job.requirement],
    ["Frames", `${job.frames} (${job.frame_count}, chunks of ${job.chunk_size})`],
    ["Scene", job.scene],
    ["Submitted", `${new Date(job.created_at * 1000).toLocaleString()} (${since(job.created_at)} ago)`],
    ["ETA", job.eta_s != null ? age(job.eta_s) : "—"],
    ["Time per frame", job.seconds_per_frame != null ? `${job.seconds_per_frame.toFixed(1)} s` : "—"],
    ["Needs", [p.min_memory_mb ? `${p.min_memory_mb} MiB` : null, p.min_cores > 1 ? `${p.min_cores} cores` : null,
      p.gpu ? "a GPU" : null, (p.tags || []).length ? `tags ${p.tags.join(", ")}` : null].filter(Boolean).join(", ") || "any server"],
    ["Attempts", `up to ${p.max_attempts}, ${p.task_timeout_s} s per task${p.max_servers ? `, at most ${p.max_servers} servers` : ""}`],
    ["Settings", Object.entries(job.settings || {}).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(" ") || "—"],
    ["Output", job.storage_dir],
  ];
  return html`<dl class="facts">${rows.map(([k, v]) => html`<dt>${k}</dt><dd>${v}</dd>`)}</dl>`;
}

function Federation({ job }) {
  if (job.origin_job_id) {
    return html`<div class="fed" id="fed-accepted">Accepted from <b>${job.origin_site}</b>, where it is job <span class="mono">${job.origin_job_id}</span>.</div>`;
  }
  if (job.placement === "local") return null;
  const r = job.remote || {};
  const tr = job.transfer || {};
  return html`<div class="fed" id="fed-forwarded">
    Forwarded to <b>${job.placement}</b>${job.placement_reason ? html` — ${job.placement_reason}` : ""}.<br />
    Remote job <span class="mono" id="remote-job-id">${job.remote_job_id || r.job_id || "—"}</span>
    · remote state ${r.state || "—"} · <span id="remote-frames">${r.frames_done ?? 0}/${job.frame_count}</span> frames done there
    ${r.last_contact_at ? html` · last heard ${since(r.last_contact_at)} ago` : ""}<br />
    ${job.peers_tried && job.peers_tried.length > 1 ? html`Offered to ${job.peers_tried.join(", ")}.<br />` : ""}
    Transfer: ${bytes(tr.bytes_sent || 0)} sent, ${tr.blobs_sent ?? 0} blobs sent, ${tr.blobs_skipped ?? 0} already there
    ${r.forward_state ? html` · ${r.forward_state}` : ""}
  </div>`;
}

function TaskTable({ jobId, page, filter, setFilter, offset, setOffset, onLog }) {
  return html`<section>
    <h3>Tasks
      <select id="task-filter" value=${filter} onChange=${(e) => { setFilter(e.target.value); setOffset(0); }}>
        <option value="">all</option>
        ${["waiting", "dispatched", "running", "done", "failed"].map((s) => html`<option value=${s}>${s}</option>`)}
      </select>
    </h3>
    <table class="tasks">
      <thead><tr><th>#</th><th>Frames</th><th>State</th><th>Attempt</th><th>Server</th><th>Started</th><th>Took</th><th>Error</th><th></th></tr></thead>
      <tbody>
        ${page && page.tasks.map((t) => html`<tr class="task-row" data-task=${t.index} data-state=${t.state} key=${t.id}>
          <td>${t.index}</td><td class="mono">${t.frames}</td><td><${StateBadge} state=${t.state} /></td>
          <td>${t.attempt}${t.failures ? html` <span class="c-failed">(${t.failures} failed)</span>` : ""}</td>
          <td>${t.server || "—"}</td><td>${clock(t.started_at)}</td>
          <td>${t.started_at && t.finished_at ? age(t.finished_at - t.started_at) : ""}</td>
          <td class="error small">${t.error}</td>
          <td><button class="link log-btn" onClick=${() => onLog(t)}>log</button></td>
        </tr>`)}
      </tbody>
    </table>
    ${page && page.tasks_page.total > TASK_PAGE && html`<div class="pager">
      <button disabled=${offset === 0} onClick=${() => setOffset(Math.max(0, offset - TASK_PAGE))}>‹</button>
      ${offset + 1}–${offset + page.tasks.length} of ${page.tasks_page.total}
      <button disabled=${page.tasks_page.next_offset == null} onClick=${() => setOffset(page.tasks_page.next_offset)}>›</button>
    </div>`}
  </section>`;
}

function useJob(jobId, taskQuery) {
  const [state, setState] = useState({ job: null, grid: null, tasks: null, error: null });
  const load = useCallback(async () => {
    try {
      const [body, grid, tasks] = await Promise.all([
        api(`/api/v1/jobs/${jobId}?tasks=0`),
        api(`/api/v1/jobs/${jobId}/grid`),
        api(`/api/v1/jobs/${jobId}/tasks?${taskQuery}`),
      ]);
      setState({ job: body.job, grid, tasks, error: null });
    } catch (error) {
      setState((s) => ({ ...s, error }));
    }
  }, [jobId, taskQuery]);
  useLiveReload(load, (m) => m.type === "change" && (m.all || m.jobs.includes(jobId)), [jobId, taskQuery], 700);
  return [state, load];
}

export function JobView({ jobId, features }) {
  const [filter, setFilter] = useState("");
  const [offset, setOffset] = useState(0);
  const [selected, setSelected] = useState(new Set());
  const [anchor, setAnchor] = useState(null);
  const [logTask, setLogTask] = useState(null);
  const taskQuery = new URLSearchParams({ offset, limit: TASK_PAGE, ...(filter ? { state: filter } : {}) }).toString();
  const [{ job, grid, tasks, error }, reload] = useJob(jobId, taskQuery);

  const select = (frame, range) => {
    const next = new Set(selected);
    if (range && anchor != null) {
      const a = grid.frames.indexOf(anchor);
      const b = grid.frames.indexOf(frame);
      for (let i = Math.min(a, b); i <= Math.max(a, b); i += 1) next.add(grid.frames[i]);
    } else if (next.has(frame)) next.delete(frame);
    else next.add(frame);
    setAnchor(frame);
    setSelected(next);
  };
  if (!job) return html`<section><${ErrorLine} error=${error} />${!error && html`<p>Loading…</p>`}</section>`;
  // The log panel follows the task's latest record (state, error, stored tail).
  const shownTask = logTask && ((tasks && tasks.tasks.find((t) => t.id === logTask.id)) || logTask);
  return html`<section id="job-view" data-job=${job.id} data-state=${job.state}>
    <h2><a href="#/jobs">Jobs</a> › ${job.name} <${StateBadge} state=${job.state} /> <span class="dim mono">${job.id}</span></h2>
    <${ErrorLine} error=${error} />
    <${Controls} job=${job} selected=${selected} clearSelection=${() => setSelected(new Set())} onDone=${reload} key=${`${job.id}-${job.priority}`} />
    <div class="summary">
      <${Progress} job=${job} wide=${true} />
      ${job.why_waiting && html`<div class="why" id="why-waiting">Waiting: ${job.why_waiting}</div>`}
      ${job.error && html`<div class="error" id="job-error">${job.error}</div>`}
      <div class="placement">Placement: ${placementText(job)} · priority ${job.priority}</div>
      <${Federation} job=${job} />
      ${(job.after || []).length > 0 &&
      html`<div class="after" id="job-after">After:
        ${job.after.map((u) => html`<span class=${u.met ? "c-done" : "dim"}> <a href=${`#/job/${u.job_id}`}>${u.name || u.job_id}</a>
          (${u.kind === "end" ? "ends" : u.kind === "frames" ? "frame by frame" : "done"}; ${u.state} ${u.frames_done}/${u.frame_count})${u.met ? " ✓" : ""}</span>`)}
      </div>`}
    </div>
    <div class="columns">
      <div class="main-col">
        <h3>Frames</h3>
        ${grid && html`<${FrameGrid} grid=${grid} selected=${selected} onSelect=${select} />`}
        <h3>Latest frames</h3>
        ${grid && html`<${Thumbnails} jobId=${job.id} grid=${grid} previews=${features.previews} />`}
      </div>
      <div class="side-col"><h3>Profile</h3><${Facts} job=${job} /></div>
    </div>
    ${shownTask && html`<${LogPanel} jobId=${job.id} task=${shownTask} features=${features} onClose=${() => setLogTask(null)} key=${`${shownTask.id}-${shownTask.attempt}`} />`}
    <${TaskTable} jobId=${job.id} page=${tasks} filter=${filter} setFilter=${setFilter} offset=${offset} setOffset=${setOffset} onLog=${setLogTask} />
  </section>`;
}
