// Peer sites: link state, advertised capacity, jobs forwarded to and accepted from each,
// bytes exchanged and the work rendered each way (the agent's usage ledger).
import { useState } from "preact/hooks";
import { api } from "./api.js";
import { bytes, since } from "./format.js";
import { html } from "./html.js";
import { useLiveReload } from "./live.js";
import { ErrorLine, StateBadge } from "./widgets.js";

/** Preference, cost and what the peer accepts from this site, where the agent says. */
function terms(peer) {
  const parts = [];
  if (peer.preference != null) parts.push(`preference ${peer.preference}`);
  if (peer.cost != null) parts.push(`cost ${peer.cost}`);
  const policy = peer.policy || {};
  if (policy.max_slots) parts.push(`at most ${policy.max_slots} slots`);
  if (policy.max_queued_jobs) parts.push(`${policy.max_queued_jobs} queued jobs`);
  if (policy.packages) parts.push(`packages ${policy.packages.join(", ")}`);
  if (policy.hours) parts.push(`hours ${policy.hours}`);
  return parts.join(" · ");
}

/** Core-hours and frames of one direction of work, or "none". */
function work(w) {
  if (!w || (!w.frames && !w.core_seconds)) return "none";
  return `${w.frames} frames · ${(w.core_seconds / 3600).toFixed(2)} core-h`;
}

/** Bytes exchanged with the peer and the work each side rendered for the other (all time). */
function Usage({ usage }) {
  if (!usage) return html`<span class="dim">–</span>`;
  return html`<div class="peer-usage" data-bytes-in=${usage.bytes_in} data-bytes-out=${usage.bytes_out}
      data-frames-by=${usage.rendered_by.frames} data-frames-for=${usage.rendered_for.frames}>
    <div>${bytes(usage.bytes_out)} out · ${bytes(usage.bytes_in)} in</div>
    <div><span class="dim">rendered by it:</span> ${work(usage.rendered_by)}</div>
    <div><span class="dim">rendered for it:</span> ${work(usage.rendered_for)}</div>
  </div>`;
}

export function PeersView() {
  const [peers, setPeers] = useState(null);
  const [error, setError] = useState(null);
  useLiveReload(
    async () => {
      try {
        setPeers((await api("/api/v1/peers")).peers);
        setError(null);
      } catch (e) {
        setError(e);
      }
    },
    (m) => m.type === "tick" || (m.type === "change" && m.all),
    [],
    1000,
  );
  return html`<section id="peers-view">
    <${ErrorLine} error=${error} />
    <table class="peers">
      <thead><tr><th>Peer</th><th>Link</th><th>Capacity</th><th>Servers</th><th>Terms</th><th>Forwarded to</th><th>Accepted from</th><th>Usage</th><th>Last error</th></tr></thead>
      <tbody>
        ${peers && peers.map((p) => html`<tr class="peer-row" data-peer=${p.name} key=${p.name}>
          <td><b>${p.name}</b><div class="dim small mono">${p.url}</div></td>
          <td><${StateBadge} state=${p.state} />${p.last_seen ? html`<div class="dim small">heard ${since(p.last_seen)} ago</div>` : ""}</td>
          <td>${p.capacity ? html`${p.capacity.free_slots} free slots on ${p.capacity.servers} servers · queue ${p.capacity.queue}` : html`<span class="dim">no advert yet</span>`}${p.refused ? html`<div class="error small refusal">${p.refused.note}, ${since(p.refused.at)} ago; no free slot until its next advert</div>` : ""}</td>
          <td class="small">${(p.servers || []).map((s) => html`<div>${s.name} <span class="dim">${s.status} ${s.slots - (s.advertised_free_slots ?? s.free_slots)}/${s.slots} · ${Object.keys(s.packages).join(", ")}</span></div>`)}</td>
          <td class="small">${terms(p)}</td>
          <td><a href=${`#/jobs?placement=${p.name}`}>${p.jobs_forwarded ?? 0} jobs</a>${p.forward === false ? html`<div class="dim small">not allowed</div>` : ""}</td>
          <td>${p.jobs_accepted ?? 0} jobs${p.accept === false ? html`<div class="dim small">not allowed</div>` : ""}</td>
          <td class="small"><${Usage} usage=${p.usage} /></td>
          <td class="error small">${p.last_error || ""}</td>
        </tr>`)}
      </tbody>
    </table>
    ${peers && peers.length === 0 && html`<p class="empty">This site has no peers configured ([[peers]] in its config).</p>`}
  </section>`;
}
