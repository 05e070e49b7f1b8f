// The jobs view: every job, paged, filtered and sorted by the agent (SQL), updated live.
import { useEffect, useState } from "preact/hooks";
import { api } from "./api.js";
import { age } from "./format.js";
import { html } from "./html.js";
import { useLiveReload } from "./live.js";
import { ErrorLine, Progress, StateBadge } from "./widgets.js";

const PAGE = 50;
const STATES = ["", "queued", "running", "paused", "done", "failed", "cancelled"];
const PACKAGES = ["", "builtin", "povray", "blender"];
const COLUMNS = [
  ["name", "Name"],
  ["state", "State"],
  [null, "Progress"],
  [null, "Package"],
  [null, "Placement"],
  ["priority", "Priority"],
  [null, "Owner"],
  ["created", "Age"],
  [null, "ETA"],
];

export function placementText(job) {
  if (job.origin_job_id) return `← from ${job.origin_site}`;
  if (job.placement === "local") return "local";
  return `→ ${job.placement}${job.remote_job_id ? ` (${job.remote_job_id})` : ""}`;
}

function query(filters, sort, offset) {
  const params = new URLSearchParams({ limit: PAGE, offset, sort });
  for (const [key, value] of Object.entries(filters)) if (value) params.set(key, value);
  return params.toString();
}

const FILTERS = ["state", "package", "placement", "owner", "q"];

export function JobsView({ peers, initial }) {
  const [filters, setFilters] = useState(Object.fromEntries(FILTERS.map((k) => [k, initial[k] || ""])));
  const [sort, setSort] = useState(initial.sort || "-created");
  const [offset, setOffset] = useState(Number(initial.offset) || 0);
  const [data, setData] = useState(null);
  const [error, setError] = useState(null);
  const [now, setNow] = useState(Date.now() / 1000);
  const qs = query(filters, sort, offset);

  // The view's filters live in the address, so Back from a job returns to the same list.
  useEffect(() => {
    const params = new URLSearchParams();
    for (const key of FILTERS) if (filters[key]) params.set(key, filters[key]);
    if (sort !== "-created") params.set("sort", sort);
    if (offset) params.set("offset", offset);
    const hash = `#/jobs${params.toString() ? `?${params}` : ""}`;
    if (location.hash !== hash) history.replaceState(null, "", hash);
  }, [qs]);

  useLiveReload(
    async () => {
      try {
        setData(await api(`/api/v1/jobs?${qs}`));
        setNow(Date.now() / 1000);
        setError(null);
      } catch (e) {
        setError(e);
      }
    },
    (m) => m.type === "change" && (m.all || m.jobs.length > 0),
    [qs],
    1000,
  );

  const set = (key) => (e) => {
    setFilters({ ...filters, [key]: e.target.value });
    setOffset(0);
  };
  const sortBy = (key) => {
    setSort(sort === `-${key}` ? key : `-${key}`);
    setOffset(0);
  };
  const page = data && data.page;
  return html`<section id="jobs-view">
    <div class="filters">
      <input id="job-search" type="search" placeholder="Search name or id" value=${filters.q} onInput=${set("q")} />
      <label>State <select id="filter-state" value=${filters.state} onChange=${set("state")}>
        ${STATES.map((s) => html`<option value=${s}>${s || "any"}</option>`)}
      </select></label>
      <label>Package <select id="filter-package" value=${filters.package} onChange=${set("package")}>
        ${PACKAGES.map((s) => html`<option value=${s}>${s || "any"}</option>`)}
      </select></label>
      <label>Placement <select id="filter-placement" value=${filters.placement} onChange=${set("placement")}>
        <option value="">any</option><option value="local">local</option>
        <option value="forwarded">forwarded to a peer</option><option value="accepted">accepted from a peer</option>
        ${[...new Set([...(peers || []), ...(initial.placement ? [initial.placement] : [])])]
          .filter((p) => !["local", "forwarded", "accepted"].includes(p))
          .map((p) => html`<option value=${p}>peer ${p}</option>`)}
      </select></label>
      <input id="filter-owner" placeholder="Owner" value=${filters.owner} onInput=${set("owner")} size="10" />
    </div>
    <${ErrorLine} error=${error} />
    <table class="jobs">
      <thead><tr>
        ${COLUMNS.map(([key, label]) =>
          key
            ? html`<th class="sortable" onClick=${() => sortBy(key)}>${label}${sort === key ? " ▲" : sort === `-${key}` ? " ▼" : ""}</th>`
            : html`<th>${label}</th>`,
        )}
      </tr></thead>
      <tbody>
        ${data &&
        data.jobs.map(
          (job) => html`<tr class="job-row" data-job=${job.id} key=${job.id}>
            <td><a href=${`#/job/${job.id}`}>${job.name}</a><div class="dim mono">${job.id}</div></td>
            <td><${StateBadge} state=${job.state} />
              ${job.why_waiting && html`<div class="dim small why">${job.why_waiting}</div>`}
              ${job.state === "failed" && job.error && html`<div class="error small">${job.error}</div>`}</td>
            <td><${Progress} job=${job} /></td>
            <td class="mono">${job.requirement}</td>
            <td class="placement">${placementText(job)}${job.remote && job.remote.frames_done != null
              ? html`<div class="dim small">remote ${job.remote.state || ""} ${job.remote.frames_done}/${job.frame_count}</div>`
              : null}</td>
            <td>${job.priority}</td>
            <td>${job.owner}</td>
            <td title=${new Date(job.created_at * 1000).toLocaleString()}>${age(now - job.created_at)}</td>
            <td>${job.eta_s != null ? age(job.eta_s) : ""}</td>
          </tr>`,
        )}
      </tbody>
    </table>
    ${data && data.jobs.length === 0 && html`<p class="empty">No jobs match.</p>`}
    ${page &&
    html`<div class="pager">
      <button disabled=${offset === 0} onClick=${() => setOffset(Math.max(0, offset - PAGE))}>‹ Newer</button>
      <span id="page-info">${page.total ? `${offset + 1}–${offset + data.jobs.length} of ${page.total}` : "0 jobs"}</span>
      <button disabled=${page.next_offset == null} onClick=${() => setOffset(page.next_offset)}>Older ›</button>
    </div>`}
  </section>`;
}
