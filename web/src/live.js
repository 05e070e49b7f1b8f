// The agent's Server-Sent Events stream, shared by every view.
// fetch-event-source (not EventSource) so the token travels in a header, never in a URL.
import { fetchEventSource } from "@microsoft/fetch-event-source";
import { useEffect, useState } from "preact/hooks";
import { authHeaders } from "./api.js";

const listeners = new Set();
let controller = null;
let connected = false;
const statusListeners = new Set();

class Fatal extends Error {}

function setConnected(value) {
  connected = value;
  statusListeners.forEach((listener) => listener(value));
}

function dispatch(message) {
  listeners.forEach((listener) => listener(message));
}

/** Open (or reopen, after a new token) the stream. Each (re)connection starts with
 * "hello", after which every view reloads what it shows: nothing is replayed. */
export function connectLive(onUnauthorized) {
  if (controller) controller.abort();
  controller = new AbortController();
  fetchEventSource("/api/v1/events", {
    headers: authHeaders(),
    signal: controller.signal,
    openWhenHidden: true,
    async onopen(response) {
      if (response.status === 401) {
        onUnauthorized();
        throw new Fatal("unauthorized");
      }
      if (!response.ok) throw new Error(`event stream: HTTP ${response.status}`);
      setConnected(true);
    },
    onmessage(event) {
      if (!event.event) return;
      const data = event.data ? JSON.parse(event.data) : {};
      dispatch({ type: event.event, ...data });
    },
    onclose() {
      setConnected(false);
      throw new Error("event stream closed"); // retried by onerror
    },
    onerror(error) {
      setConnected(false);
      if (error instanceof Fatal) throw error;
      return 2000; // retry in 2 s
    },
  }).catch(() => setConnected(false));
}

export function disconnectLive() {
  if (controller) controller.abort();
  controller = null;
  setConnected(false);
}

export function useLiveStatus() {
  const [value, setValue] = useState(connected);
  useEffect(() => {
    statusListeners.add(setValue);
    return () => statusListeners.delete(setValue);
  }, []);
  return value;
}

/**
 * Reload with `load` on mount and whenever `relevant(message)` says a live message
 * concerns this view; at most once per `minIntervalMs`, the last change always loaded.
 */
export function useLiveReload(load, relevant, deps, minIntervalMs = 500) {
  useEffect(() => {
    // Per effect run: a load still in flight for the old deps must not hold up the new one.
    const s = { timer: null, last: 0, running: false, again: false };
    let alive = true;
    const run = async () => {
      if (!alive) return;
      if (s.running) {
        s.again = true;
        return;
      }
      s.running = true;
      s.last = Date.now();
      try {
        await load();
      } finally {
        s.running = false;
        if (s.again && alive) {
          s.again = false;
          schedule();
        }
      }
    };
    const schedule = () => {
      if (s.timer) return;
      const wait = Math.max(0, s.last + minIntervalMs - Date.now());
      s.timer = setTimeout(() => {
        s.timer = null;
        run();
      }, wait);
    };
    const listener = (message) => {
      if (message.type === "hello" || relevant(message)) schedule();
    };
    listeners.add(listener);
    run();
    return () => {
      alive = false;
      listeners.delete(listener);
      clearTimeout(s.timer);
      s.timer = null;
    };
  }, deps);
}
