// The signaling WebSocket of docs/protocol.md: JSON messages with a "type".
// It does not reconnect by itself; the room decides whether a close is final.

const HANG_UP_WAIT_MS = 2000;

export class Signaling {
  /**
   * @param {string} path  e.g. /ws/session/<id>/ (same origin; the session cookie authenticates)
   * @param {{onOpen: () => void, onMessage: (msg: object) => void, onClose: (ev: CloseEvent) => void}} handlers
   */
  constructor(path, handlers) {
    const scheme = window.location.protocol === 'https:' ? 'wss:' : 'ws:';
    this.ws = new WebSocket(`${scheme}//${window.location.host}${path}`);
    this.ws.addEventListener('open', () => handlers.onOpen());
    this.ws.addEventListener('message', (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return; // the server only sends JSON; anything else is not ours to act on
      }
      if (message && typeof message.type === 'string') handlers.onMessage(message);
    });
    this.ws.addEventListener('close', (event) => handlers.onClose(event));
  }

  get open() {
    return this.ws.readyState === WebSocket.OPEN;
  }

  send(message) {
    if (!this.open) return false;
    this.ws.send(JSON.stringify(message));
    return true;
  }

  /**
   * Say "leave" and let the server close the socket: it closes after its last message, so
   * nothing arrives after the close. A socket that is dead anyway is closed here after a
   * short wait.
   */
  hangUp() {
    if (this.send({ type: 'leave' })) {
      setTimeout(() => this.close(), HANG_UP_WAIT_MS);
    } else {
      this.close();
    }
  }

  close() {
    if (this.ws.readyState === WebSocket.CONNECTING || this.ws.readyState === WebSocket.OPEN) {
      this.ws.close(1000, 'bye');
    }
  }
}
