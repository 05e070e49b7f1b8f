// The Spillway monitor: jobs, a job's frames and logs, render servers, peers; live over SSE.
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { api, getToken, onAuthFailure, setToken } from "./api.js";
import { html } from "./html.js";
import { JobView } from "./job.js";
import { JobsView } from "./jobs.js";
import { connectLive, disconnectLive, useLiveStatus } from "./live.js";
import { PeersView } from "./peers.js";
import { ServersView } from "./servers.js";
import { ConfirmDialog, ErrorLine } from "./widgets.js";
import "./style.css";

function parseRoute(hash) {
  const [path, query = ""] = hash.replace(/^#/, "").split("?");
  const parts = path.split("/").filter(Boolean);
  const params = Object.fromEntries(new URLSearchParams(query));
  if (parts[0] === "job" && parts[1]) return { view: "job", id: decodeURIComponent(parts[1]), params };
  if (parts[0] === "servers" || parts[0] === "peers") return { view: parts[0], params };
  return { view: "jobs", params };
}

function useRoute() {
  const [route, setRoute] = useState(parseRoute(location.hash));
  useEffect(() => {
    const update = () => setRoute(parseRoute(location.hash));
    window.addEventListener("hashchange", update);
    return () => window.removeEventListener("hashchange", update);
  }, []);
  return route;
}

/** Which routes built in parallel with the monitor this agent has (from its OpenAPI
 * document), so the page never calls one that is not there. */
function featuresOf(openapi) {
  const paths = Object.keys((openapi && openapi.paths) || {});
  return {
    logs: paths.some((p) => p.startsWith("/api/v1/jobs/") && p.endsWith("/log")),
    previews: paths.some((p) => p.startsWith("/api/v1/jobs/") && p.endsWith("/preview")),
  };
}

function Login({ site, onLogin }) {
  const [value, setValue] = useState("");
  const [error, setError] = useState(null);
  const submit = async (e) => {
    e.preventDefault();
    setToken(value.trim());
    try {
      await api("/api/v1/jobs?limit=1");
      onLogin();
    } catch (err) {
      setToken("");
      setError(err.status === 401 ? new Error("That token was not accepted; check it and try again.") : err);
    }
  };
  return html`<form class="login" id="login" onSubmit=${submit}>
    <h2>Spillway site ${site}</h2>
    <p>This agent needs a client token (one of <code>[auth] client_tokens</code> in its config).
      It is kept for this browser tab only.</p>
    <input id="token-input" type="password" autocomplete="current-password" placeholder="Token" value=${value}
      onInput=${(e) => setValue(e.target.value)} autofocus />
    <button id="token-submit" type="submit">Sign in</button>
    <${ErrorLine} error=${error} />
  </form>`;
}

function Nav({ site, route, authed, onSignOut }) {
  const live = useLiveStatus();
  const tab = (view, label) =>
    html`<a href=${`#/${view}`} id=${`nav-${view}`} class=${route.view === view || (view === "jobs" && route.view === "job") ? "active" : ""}>${label}</a>`;
  return html`<nav>
    <span class="site">Spillway · <b id="site-name">${site}</b></span>
    ${tab("jobs", "Jobs")}${tab("servers", "Render servers")}${tab("peers", "Peers")}
    <span class="spacer"></span>
    <span id="live-status" class=${live ? "live on" : "live off"}>${live ? "● live" : "○ reconnecting"}</span>
    ${authed && getToken() && html`<button class="link" id="sign-out" onClick=${onSignOut}>sign out</button>`}
  </nav>`;
}

function App() {
  const route = useRoute();
  const [health, setHealth] = useState(null);
  const [features, setFeatures] = useState({ logs: false, previews: false });
  const [authed, setAuthed] = useState(false);
  const [peers, setPeers] = useState([]);
  const [error, setError] = useState(null);

  useEffect(() => {
    api("/api/v1/health")
      .then((h) => {
        setHealth(h);
        setAuthed(!h.client_auth || Boolean(getToken()));
      })
      .catch(setError);
    // Off the first paint's path: only the job view's log and thumbnails use it.
    api("/api/v1/openapi.json")
      .then((openapi) => setFeatures(featuresOf(openapi)))
      .catch(() => setFeatures(featuresOf(null)));
    return onAuthFailure(() => {
      setToken("");
      setAuthed(false);
    });
  }, []);

  useEffect(() => {
    if (!authed) return undefined;
    connectLive(() => {
      setToken("");
      setAuthed(false);
    });
    api("/api/v1/peers")
      .then((body) => setPeers(body.peers.map((p) => p.name)))
      .catch(() => setPeers([]));
    return disconnectLive;
  }, [authed]);

  useEffect(() => {
    if (health) document.title = `Spillway · ${health.site}`;
  }, [health]);

  if (error) return html`<main><${ErrorLine} error=${error} /></main>`;
  if (!health) return html`<main><p>Connecting…</p></main>`;
  if (!authed) return html`<main><${Login} site=${health.site} onLogin=${() => setAuthed(true)} /></main>`;
  const signOut = () => {
    setToken("");
    setAuthed(false);
  };
  let view;
  if (route.view === "job") view = html`<${JobView} jobId=${route.id} features=${features} key=${route.id} />`;
  else if (route.view === "servers") view = html`<${ServersView} />`;
  else if (route.view === "peers") view = html`<${PeersView} />`;
  else view = html`<${JobsView} peers=${peers} initial=${route.params} key=${JSON.stringify(route.params)} />`;
  return html`<${Nav} site=${health.site} route=${route} authed=${authed} onSignOut=${signOut} />
    <main>${view}</main>
    <${ConfirmDialog} />`;
}

render(html`<${App} />`, document.getElementById("app"));
