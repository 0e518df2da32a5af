// The live room's orchestrator: lobby, join, media legs, chat, hands, moderation and
// reconnection. It owns the state (`phase`, participants, hands) and decides; the modules
// under room/ do the work: media.js (our camera, microphone and screen), legs.js (the two
// peer connections), signaling.js (the WebSocket), view.js (everything drawn).
// Protocol: docs/protocol.md. The server (peerlearn_sfu) forwards everyone's encoded media.
import { csrfToken } from './util.js';
import { PublishLeg, SubscribeLeg } from './room/legs.js';
import { LocalMedia } from './room/media.js';
import { Phase } from './room/phase.js';
import { Signaling } from './room/signaling.js';
import { RoomView } from './room/view.js';

const WAITING_POLL_MS = 5000;
const RECONNECT_MAX_MS = 10000;
const ICE_GRACE_MS = 10000; // "disconnected" that lasts this long is treated as a drop
const MODERATORS = new Set(['mentor', 'admin']);
// Alt + a letter (by key position, so layouts and macOS's Option characters do not matter),
// as shown on the buttons; a modifier keeps them from firing while someone types (WCAG 2.1.4).
const SHORTCUTS = {
  KeyM: '[data-toggle-mic]',
  KeyV: '[data-toggle-camera]',
  KeyH: '[data-toggle-hand]',
  KeyC: '[data-chat-input]',
};
const ANNOUNCED_CHAT_CHARS = 200;
// Refusals after which reconnecting cannot help (docs/protocol.md, error codes).
const FINAL_ERRORS = {
  removed: ['You were removed', 'The mentor removed you from this session.'],
  room_full: ['The room is full', 'Everyone who can fit is already in the room.'],
  room_closed: ['The session has ended', 'The room is closed.'],
  server_full: ['The server is full', 'Too many people are in rooms on this server right now. Try again later.'],
  too_many_rooms: ['You are in other rooms', 'Leave one of your other rooms first.'],
  session_not_active: ['The session has ended', 'The room is not open any more.'],
  forbidden: ['You cannot join this room', 'Only the mentor and learners with a seat can join.'],
  not_authenticated: ['Please log in again', 'Your login has expired.'],
  not_found: ['No such session', 'This session does not exist.'],
};

class RoomClient {
  constructor(root) {
    const data = root.dataset;
    this.sessionId = data.sessionId;
    this.wsPath = data.wsPath;
    this.me = { id: Number(data.userId), name: data.userName, role: data.role };
    this.chatMax = Number(data.chatMax) || 2000;
    this.forceRelay = new URLSearchParams(window.location.search).get('relay') === '1';
    this.view = new RoomView(root, this.me);
    this.participants = new Map(); // user_id -> {user_id, display_name, role, state}
    this.hands = [];
    this.local = new LocalMedia();
    // data-state is the server's view of the room: "waiting", "live" (or "ended": no client).
    this.phase = data.state === 'waiting' ? Phase.WAITING : Phase.LOBBY;
    this.signaling = null;
    this.publish = null;
    this.subscribe = null;
    this.retries = 0;
    this.lastError = null;
    this.iceTimer = null;
    this.prepared = false;
    this.bindControls(root);
  }

  // -- lobby ---------------------------------------------------------------------------

  async prepare() {
    // Denied or missing devices still join, as a listener who can chat.
    const problem = await this.local.open();
    this.view.showDevices(this.local, problem);
    this.renderToggles();
    // Joining before the devices are settled would publish without them.
    this.prepared = true;
    this.updateJoinButton();
    if (this.phase === Phase.WAITING) this.waitForStart();
  }

  updateJoinButton() {
    this.view.setJoinEnabled(this.prepared && this.phase === Phase.LOBBY);
  }

  async waitForStart() {
    // Poll the session until the mentor opens the room; joining stays a click (autoplay rules).
    while (this.phase === Phase.WAITING) {
      try {
        const response = await fetch(`/api/sessions/${this.sessionId}/`, { credentials: 'same-origin' });
        if (response.ok) {
          const session = await response.json();
          if (session.status === 'active') return this.roomOpened();
          if (session.status === 'completed' || session.status === 'cancelled') {
            this.phase = Phase.ENDED;
            return this.view.showEnded('The session is over', `This session was ${session.status}.`);
          }
        }
      } catch {
        // offline for a moment: keep waiting
      }
      await new Promise((resolve) => setTimeout(resolve, WAITING_POLL_MS));
    }
    return undefined;
  }

  roomOpened() {
    this.phase = Phase.LOBBY;
    this.updateJoinButton();
    this.view.showRoomOpen();
  }

  async startSession() {
    const response = await this.api('start');
    if (response.ok) this.roomOpened();
    else this.view.setStatus(await errorText(response, 'The session could not be started.'), 'error');
  }

  async endSession() {
    if (!window.confirm('End the session for everyone?')) return;
    const response = await this.api('end');
    if (!response.ok) this.view.toast(await errorText(response, 'The session could not be ended.'), 'error');
    // Success arrives as "session_ended" over the socket, like for everyone else.
  }

  api(action) {
    return fetch(`/api/sessions/${this.sessionId}/${action}/`, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrfToken() },
      body: '{}',
    });
  }

  // -- connection ----------------------------------------------------------------------

  join() {
    this.view.showStage();
    this.view.upsert(this.self(), true);
    this.showOwnTracks();
    this.connect();
  }

  connect() {
    this.phase = this.retries ? Phase.RECONNECTING : Phase.CONNECTING;
    this.view.setStatus(this.retries ? 'Reconnecting…' : 'Connecting…', 'warning');
    this.lastError = null;
    const signaling = new Signaling(this.wsPath, {
      onOpen: () => signaling.send({ type: 'join_session' }),
      onMessage: (message) => {
        if (signaling === this.signaling) this.onMessage(message);
      },
      onClose: () => {
        if (signaling === this.signaling) this.onClosed();
      },
    });
    this.signaling = signaling;
  }

  onClosed() {
    this.teardown();
    if (this.phase === Phase.ENDED || this.phase === Phase.LEFT) return;
    const final = FINAL_ERRORS[this.lastError];
    if (final) {
      this.phase = Phase.ENDED;
      this.view.showEnded(final[0], final[1]);
      return;
    }
    const delay = Math.min(RECONNECT_MAX_MS, 1000 * 2 ** this.retries);
    this.retries += 1;
    this.phase = Phase.RECONNECTING;
    this.view.setStatus(`Connection lost — reconnecting in ${Math.round(delay / 1000)} s…`, 'warning');
    setTimeout(() => {
      if (this.phase === Phase.RECONNECTING) this.connect();
    }, delay);
  }

  /** Drop both peer connections (a fresh join re-creates them); local media is kept. */
  teardown() {
    clearTimeout(this.iceTimer);
    this.publish?.close();
    this.subscribe?.close();
    this.publish = null;
    this.subscribe = null;
    this.participants.clear();
    this.view.removeOthers();
  }

  dropConnection() {
    // A media leg failed (aiortc has no ICE restart): start over with a new signaling socket.
    this.signaling?.hangUp();
  }

  watchLeg(leg) {
    leg.pc.addEventListener('connectionstatechange', () => {
      const state = leg.pc.connectionState;
      clearTimeout(this.iceTimer);
      if (state === 'failed') this.dropConnection();
      else if (state === 'disconnected') this.iceTimer = setTimeout(() => this.dropConnection(), ICE_GRACE_MS);
      else if (state === 'connected' && leg === this.publish) this.view.setStatus('Connected', 'ok');
    });
  }

  send(message) {
    return this.signaling ? this.signaling.send(message) : false;
  }

  // -- server messages -----------------------------------------------------------------

  onMessage(message) {
    const handler = this[`on_${message.type}`];
    if (typeof handler === 'function') handler.call(this, message);
  }

  async on_joined(message) {
    this.retries = 0;
    this.phase = Phase.LIVE;
    this.view.setStatus('Joining the call…', 'info');
    for (const participant of message.participants || []) this.addParticipant(participant);
    this.setHands(message.hands || []);
    const iceServers = Array.isArray(message.ice_servers) ? message.ice_servers : [];
    const options = { forceRelay: this.forceRelay };
    const signal = (m) => this.send(m);
    this.subscribe = new SubscribeLeg(iceServers, signal, (mapped) => this.onTracks(mapped), options);
    this.publish = new PublishLeg(iceServers, signal, options);
    this.watchLeg(this.publish);
    this.watchLeg(this.subscribe);
    this.publish.chat.addEventListener('message', (event) => this.onChatChannel(event.data));
    // Tell the room how we arrive before the media does (mic or camera may be off).
    this.sendState();
    const sdp = await this.publish.offer(this.local.tracks);
    this.send({ type: 'offer', pc: 'publish', sdp });
  }

  on_answer(message) {
    if (message.pc === 'publish' && this.publish) {
      this.publish.acceptAnswer(message.sdp).catch((err) => this.fail('the server answer', err));
    }
  }

  on_offer(message) {
    if (message.pc === 'subscribe' && this.subscribe) {
      this.subscribe.handleOffer(message.sdp, message.tracks).catch((err) => this.fail('a server offer', err));
    }
  }

  on_chat_history(message) {
    this.view.clearChat();
    for (const item of message.messages || []) this.view.addChat(item);
  }

  on_chat(message) {
    if (!message.message) return;
    this.view.addChat(message.message);
    const { user_id: userId, display_name: name, text } = message.message;
    if (userId !== this.me.id) {
      const said = String(text || '').slice(0, ANNOUNCED_CHAT_CHARS);
      this.view.announce(`${name || 'Someone'} in chat: ${said}`);
    }
  }

  on_user_joined(message) {
    const known = this.participants.has(message.user_id);
    this.addParticipant(message);
    if (!known && message.user_id !== this.me.id) this.view.announce(`${message.display_name} joined`);
  }

  on_user_left(message) {
    const name = this.participants.get(message.user_id)?.display_name;
    if (name) this.view.announce(message.reason === 'removed' ? `${name} was removed` : `${name} left`);
    this.participants.delete(message.user_id);
    this.view.remove(message.user_id);
    if (message.reason === 'removed') this.view.toast('A participant was removed by the mentor.');
  }

  on_participant_state(message) {
    const participant = this.participants.get(message.user_id);
    if (participant) {
      participant.state = message.state;
      this.view.upsert(participant);
    }
  }

  on_hands(message) {
    this.setHands(message.queue || []);
  }

  on_active_speaker(message) {
    this.view.setActiveSpeaker(message.user_id);
  }

  on_muted_by_moderator() {
    this.setMic(false, false);
    this.view.toast('The mentor muted your microphone. Unmute when you want to speak.', 'warning');
  }

  on_removed() {
    this.phase = Phase.ENDED;
    this.view.showEnded('You were removed', 'The mentor removed you from this session.');
  }

  on_session_ended(message) {
    this.phase = Phase.ENDED;
    if (message.reason === 'replaced') {
      this.view.showEnded('You joined from somewhere else', 'This session is open in another tab or device.');
    } else {
      this.view.showEnded('The session has ended', 'The mentor closed the room. Thanks for taking part!');
    }
    this.local.stop();
  }

  on_error(message) {
    this.lastError = message.code;
    if (message.code === 'chat_too_long' || message.code === 'rate_limited') {
      this.view.setChatError(message.message);
    } else if (!FINAL_ERRORS[message.code]) {
      this.view.toast(message.message || 'Something went wrong.', 'error');
    }
  }

  // -- participants --------------------------------------------------------------------

  self() {
    return {
      user_id: this.me.id,
      display_name: this.me.name,
      role: this.me.role,
      state: this.local.state,
    };
  }

  addParticipant(participant) {
    this.participants.set(participant.user_id, participant);
    this.view.upsert(participant);
  }

  onTracks(mapped) {
    const byUser = new Map();
    for (const { user_id: userId, kind, track } of mapped) {
      if (!byUser.has(userId)) byUser.set(userId, {});
      byUser.get(userId)[kind] = track;
    }
    for (const userId of this.participants.keys()) {
      const tracks = byUser.get(userId) || {};
      this.view.setTracks(userId, { audio: tracks.audio, camera: tracks.camera, screen: tracks.screen });
    }
  }

  setHands(queue) {
    // The mentor hears who raises a hand (a learner sees the queue; it is not read to them).
    if (MODERATORS.has(this.me.role) && this.phase === Phase.LIVE) {
      for (const userId of queue) {
        const name = this.participants.get(userId)?.display_name;
        if (!this.hands.includes(userId) && userId !== this.me.id && name) {
          this.view.announce(`${name} raised their hand`);
        }
      }
    }
    this.hands = queue;
    const nameOf = (userId) => (userId === this.me.id ? `${this.me.name} (you)` : this.participants.get(userId)?.display_name || 'Someone');
    this.view.setHands(queue, nameOf);
    this.view.setToggle('hand', queue.includes(this.me.id), ['Lower hand', 'Raise hand']);
  }

  // -- our own media -------------------------------------------------------------------

  sendState() {
    this.send({ type: 'mute', kind: 'audio', muted: !this.local.micOn });
    this.send({ type: 'mute', kind: 'video', muted: !this.local.camOn });
    if (this.local.screen) this.send({ type: 'mute', kind: 'screen', muted: false });
  }

  renderToggles() {
    this.view.setToggle('mic', this.local.micOn, ['Mute', 'Unmute'], !this.local.audio);
    this.view.setToggle('camera', this.local.camOn, ['Stop video', 'Start video'], !this.local.camera);
    this.view.setToggle('screen', Boolean(this.local.screen), ['Stop sharing', 'Share screen'],
      !LocalMedia.canShareScreen);
    this.view.upsert(this.self(), true);
  }

  showOwnTracks() {
    this.view.setTracks(this.me.id, { camera: this.local.camera, screen: this.local.screen });
  }

  setMic(on, announce = true) {
    if (!this.local.setMic(on)) return;
    if (announce) this.send({ type: 'mute', kind: 'audio', muted: !on });
    this.renderToggles();
  }

  setCamera(on) {
    if (!this.local.setCamera(on)) return;
    this.send({ type: 'mute', kind: 'video', muted: !on });
    this.renderToggles();
  }

  async toggleScreen() {
    if (this.local.screen) return this.stopScreen();
    const track = await this.local.startScreen(() => this.stopScreen());
    if (!track) return undefined;
    await this.publish?.setScreen(track);
    this.send({ type: 'mute', kind: 'screen', muted: false });
    this.showOwnTracks();
    this.renderToggles();
    return undefined;
  }

  async stopScreen() {
    if (!this.local.stopScreen()) return;
    await this.publish?.setScreen(null);
    this.send({ type: 'mute', kind: 'screen', muted: true });
    this.showOwnTracks();
    this.renderToggles();
  }

  leave() {
    this.phase = Phase.LEFT;
    this.signaling?.hangUp();
    this.teardown();
    this.local.stop();
    this.view.showLeft();
  }

  // -- chat ----------------------------------------------------------------------------

  sendChat(text) {
    const trimmed = text.trim();
    if (!trimmed) return false;
    if (trimmed.length > this.chatMax) {
      this.view.setChatError(`Messages can be at most ${this.chatMax} characters.`);
      return false;
    }
    this.view.setChatError('');
    const message = { type: 'chat', text: trimmed };
    const channel = this.publish?.chat;
    if (channel && channel.readyState === 'open') channel.send(JSON.stringify(message));
    else if (!this.send(message)) {
      this.view.setChatError('Not connected; your message was not sent.');
      return false;
    }
    return true;
  }

  onChatChannel(data) {
    try {
      const message = JSON.parse(data);
      if (message.type === 'chat') this.on_chat(message);
    } catch {
      // ignore anything that is not a relayed chat message
    }
  }

  // -- wiring --------------------------------------------------------------------------

  bindControls(root) {
    const on = (selector, handler) => root.querySelector(selector)?.addEventListener('click', handler);
    on('[data-join]', () => this.join());
    on('[data-start-session]', () => this.startSession());
    on('[data-toggle-mic]', () => this.setMic(!this.local.micOn));
    on('[data-toggle-camera]', () => this.setCamera(!this.local.camOn));
    on('[data-toggle-screen]', () => this.toggleScreen());
    on('[data-toggle-hand]', () => this.send({ type: 'raise_hand', raised: !this.hands.includes(this.me.id) }));
    on('[data-leave]', () => this.leave());
    on('[data-end-session]', () => this.endSession());
    on('[data-clear-hands]', () => this.send({ type: 'moderate', action: 'clear_hands' }));
    root.querySelector('[data-grid]')?.addEventListener('click', (event) => {
      const button = event.target.closest('[data-moderate]');
      if (!button) return;
      const target = Number(button.dataset.target);
      const name = this.participants.get(target)?.display_name || 'this participant';
      if (button.dataset.moderate === 'remove' && !window.confirm(`Remove ${name} from the session? They cannot rejoin.`)) return;
      this.send({ type: 'moderate', action: button.dataset.moderate, target });
    });
    const form = root.querySelector('[data-chat-form]');
    const input = root.querySelector('[data-chat-input]');
    form?.addEventListener('submit', (event) => {
      event.preventDefault();
      if (this.sendChat(input.value)) input.value = '';
    });
    input?.addEventListener('keydown', (event) => {
      if (event.key === 'Enter' && !event.shiftKey) {
        event.preventDefault();
        form.requestSubmit();
      }
    });
    document.addEventListener('keydown', (event) => this.onShortcut(event));
    window.addEventListener('pagehide', () => {
      if (this.phase === Phase.LIVE) this.send({ type: 'leave' });
    });
  }

  onShortcut(event) {
    const selector = SHORTCUTS[event.code];
    if (!selector || !event.altKey || event.ctrlKey || event.metaKey || event.shiftKey) return;
    if (this.phase !== Phase.LIVE && this.phase !== Phase.CONNECTING && this.phase !== Phase.RECONNECTING) return;
    const target = this.view.q(selector);
    if (!target || target.disabled) return;
    event.preventDefault();
    if (target.matches('button')) target.click();
    else target.focus();
  }

  fail(what, err) {
    this.view.toast(`Could not apply ${what}: ${err && err.message ? err.message : err}`, 'error');
    this.dropConnection();
  }
}

async function errorText(response, fallback) {
  try {
    const body = await response.json();
    return body.error?.message || fallback;
  } catch {
    return fallback;
  }
}

const root = document.querySelector('[data-room]');
if (root && root.dataset.state !== 'ended') {
  const client = new RoomClient(root);
  // Read-only handle for diagnostics (and the browser tests' getStats()).
  window.peerlearnRoom = client;
  client.prepare();
}
