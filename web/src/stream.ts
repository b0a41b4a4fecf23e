// The live notification stream. EventSource cannot send an Authorization header, so this
// reads the Server-Sent Events over fetch, and resumes after a break with Last-Event-ID.
import { bearer, refresh, type Notification } from "./api";

const RETRY_MILLISECONDS = 2000;

/** Calls ``onNotification`` for each new notification until ``signal`` aborts. */
export async function followNotifications(
  onNotification: (notification: Notification) => void,
  signal: AbortSignal,
): Promise<void> {
  let lastEventId: string | null = null;
  while (!signal.aborted) {
    try {
      const headers: Record<string, string> = { accept: "text/event-stream" };
      const token = bearer();
      if (token !== null) headers.authorization = `Bearer ${token}`;
      if (lastEventId !== null) headers["last-event-id"] = lastEventId;
      const response = await fetch("/notifications/stream", { headers, signal });
      if (response.status === 401) {
        if (!(await refresh())) return;
        continue;
      }
      if (!response.ok || response.body === null) throw new Error(`HTTP ${response.status}`);
      for await (const event of events(response.body)) {
        if (event.id !== undefined) lastEventId = event.id;
        if (event.type === "notification") onNotification(JSON.parse(event.data) as Notification);
      }
    } catch (error) {
      if (signal.aborted) return;
      console.warn("notification stream broke; reconnecting", error);
    }
    await new Promise((resolve) => setTimeout(resolve, RETRY_MILLISECONDS));
  }
}

interface StreamEvent {
  type: string;
  data: string;
  id?: string;
}

/** The events of a text/event-stream body (the WHATWG parsing rules this stream needs). */
async function* events(body: ReadableStream<Uint8Array>): AsyncGenerator<StreamEvent> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let event: StreamEvent = { type: "message", data: "" };
  let hasData = false;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    const lines = buffer.split(/\r\n|\r|\n/);
    buffer = lines.pop() ?? "";
    for (const line of lines) {
      if (line === "") {
        if (hasData) yield event;
        event = { type: "message", data: "" };
        hasData = false;
        continue;
      }
      if (line.startsWith(":")) continue; // a comment: the heartbeat
      const colon = line.indexOf(":");
      const field = colon === -1 ? line : line.slice(0, colon);
      const value = colon === -1 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "event") event.type = value;
      else if (field === "id") event.id = value;
      else if (field === "data") {
        event.data = hasData ? `${event.data}\n${value}` : value;
        hasData = true;
      }
    }
  }
}
