// Render servers: status, what each renders now, utilisation over the last hour,
// hardware and packages, last error; enable, disable, forget.
import { useState } from "preact/hooks";
import { api } from "./api.js";
import { percent, since } from "./format.js";
import { html } from "./html.js";
import { useLiveReload } from "./live.js";
import { confirmAction, ErrorLine, StateBadge } from "./widgets.js";

export function ServersView() {
  const [servers, setServers] = useState(null);
  const [error, setError] = useState(null);
  const load = async () => {
    try {
      setServers((await api("/api/v1/servers")).servers);
      setError(null);
    } catch (e) {
      setError(e);
    }
  };
  useLiveReload(load, (m) => m.type === "tick" || (m.type === "change" && m.servers), [], 1000);
  const act = async (server, action) => {
    try {
      if (action === "forget") {
        if (!(await confirmAction(`Forget render server ${server.name}? It registers again if it reconnects.`, "Forget"))) return;
        await api(`/api/v1/servers/${server.id}`, { method: "DELETE" });
      } else {
        await api(`/api/v1/servers/${server.id}/${action}`, { method: "POST" });
      }
      await load();
    } catch (e) {
      setError(e);
    }
  };
  return html`<section id="servers-view">
    <${ErrorLine} error=${error} />
    <table class="servers">
      <thead><tr><th>Name</th><th>Status</th><th>Rendering</th><th>Slots</th><th>Last hour</th><th>Hardware</th><th>Packages</th><th>Last error</th><th></th></tr></thead>
      <tbody>
        ${servers && servers.map((s) => html`<tr class="server-row" data-server=${s.name} key=${s.id}>
          <td><b>${s.name}</b><div class="dim small">${s.host}</div></td>
          <td><${StateBadge} state=${s.status} />${s.last_heartbeat ? html`<div class="dim small">seen ${since(s.last_heartbeat)} ago</div>` : ""}</td>
          <td>${(s.current || []).map((c) => html`<div><a href=${`#/job/${c.job}`} class="mono">${c.job}</a> <span class="dim">frames ${c.frames}</span></div>`)}</td>
          <td>${s.slots - s.free_slots}/${s.slots} busy</td>
          <td><div class="util"><span style=${{ width: percent(s.utilisation) }}></span></div>${percent(s.utilisation)}</td>
          <td class="small">${s.cores} cores · ${Math.round(s.memory_mb / 1024)} GiB${s.gpus.length ? ` · ${s.gpus.join(", ")}` : ""}<div class="dim">${s.os} ${s.cpu_model}</div></td>
          <td class="small mono">${Object.entries(s.packages).map(([k, v]) => `${k} ${v}`).join(", ")}${s.tags.length ? html`<div class="dim">tags ${s.tags.join(", ")}</div>` : ""}</td>
          <td class="error small">${s.last_error ? html`${s.last_error.error}<div class="dim">${since(s.last_error.at)} ago</div>` : ""}</td>
          <td class="actions">
            ${s.status === "disabled"
              ? html`<button class="btn-enable" onClick=${() => act(s, "enable")}>Enable</button>`
              : html`<button class="btn-disable" onClick=${() => act(s, "disable")}>Disable</button>`}
            ${s.status === "offline" && html`<button class="danger" onClick=${() => act(s, "forget")}>Forget…</button>`}
          </td>
        </tr>`)}
      </tbody>
    </table>
    ${servers && servers.length === 0 && html`<p class="empty">No render server has connected yet: start one with <code>spillway render-server --agent URL</code>.</p>`}
  </section>`;
}
