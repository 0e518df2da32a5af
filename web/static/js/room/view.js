// Everything the room page draws. Text from other people (names, chat) is only ever set
// with textContent: it is never interpreted as HTML.
import { Announcer } from './announcer.js';
import { DeviceProblem } from './media.js';

const MODERATORS = new Set(['mentor', 'admin']);
// The active speaker is announced once they have held the floor this long, and at most
// this often: a lively discussion must not drown the screen reader.
const SPEAKER_SETTLE_MS = 1500;
const SPEAKER_GAP_MS = 8000;

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function initials(name) {
  const parts = String(name || '?').replace(/_/g, ' ').split(/\s+/).filter(Boolean);
  return (parts.slice(0, 2).map((p) => p[0]).join('') || '?').toUpperCase();
}

function attach(media, track) {
  // A recycled subscribe m-line hands the same track object to a new owner: compare tracks.
  const current = media.srcObject ? media.srcObject.getTracks()[0] : null;
  if (current === (track || null)) return false;
  media.srcObject = track ? new MediaStream([track]) : null;
  return Boolean(track);
}

/** One participant's camera tile (and their screen tile while they share). */
class Tile {
  constructor(view, participant, isSelf) {
    this.view = view;
    this.userId = participant.user_id;
    this.isSelf = isSelf;
    this.root = el('figure', 'tile');
    this.root.dataset.userId = String(participant.user_id);
    this.speaking = false;
    this.handRaised = false;
    this.video = el('video');
    this.video.autoplay = true;
    this.video.playsInline = true;
    this.video.muted = true; // sound plays through the separate <audio> element
    if (isSelf) this.video.classList.add('mirror');
    this.placeholder = el('div', 'tile-placeholder');
    this.avatar = el('span', 'avatar avatar-xl');
    this.placeholder.append(this.avatar);
    this.audio = el('audio');
    this.audio.autoplay = true;
    const caption = el('figcaption', 'tile-caption');
    this.name = el('span', 'tile-name');
    this.badges = el('span', 'tile-badges');
    this.micBadge = el('span', 'badge-mic', 'Muted');
    this.handBadge = el('span', 'badge-hand', 'Hand raised');
    this.badges.append(this.micBadge, this.handBadge);
    caption.append(this.name, this.badges);
    this.root.append(this.video, this.placeholder, this.audio, caption);
    if (!isSelf && MODERATORS.has(view.me.role)) this.root.append(this.moderationMenu());
    this.screen = null;
    this.screenTrack = null;
    this.hasVideo = false;
    this.update(participant);
  }

  moderationMenu() {
    const menu = el('div', 'tile-actions');
    for (const [action, label] of [['mute', 'Mute'], ['remove', 'Remove']]) {
      const button = el('button', 'btn btn-sm tile-action', label);
      button.type = 'button';
      button.dataset.moderate = action;
      button.dataset.target = String(this.userId);
      button.dataset.verb = label;
      menu.append(button);
    }
    return menu;
  }

  update(participant) {
    const label = this.isSelf ? `${participant.display_name} (you)` : participant.display_name;
    this.name.textContent = participant.role === 'mentor' ? `${label} · mentor` : label;
    this.avatar.textContent = initials(participant.display_name);
    this.displayName = participant.display_name;
    this.label = this.name.textContent;
    for (const button of this.root.querySelectorAll('[data-moderate]')) {
      button.setAttribute('aria-label', `${button.dataset.verb} ${participant.display_name}`);
    }
    const state = participant.state || {};
    this.micBadge.hidden = !state.audio_muted;
    this.videoMuted = Boolean(state.video_muted);
    this.refreshVideo();
    this.root.classList.toggle('sharing', Boolean(state.screen_sharing));
    this.screenOn = Boolean(state.screen_sharing);
    this.refreshScreen();
  }

  setTracks({ audio = null, camera = null, screen = null }) {
    this.hasVideo = Boolean(camera);
    if (attach(this.video, camera)) this.video.play().catch(() => {});
    if (!this.isSelf && attach(this.audio, audio)) {
      this.audio.play().catch(() => this.view.soundBlocked());
    }
    this.screenTrack = screen;
    this.refreshVideo();
    this.refreshScreen();
  }

  refreshVideo() {
    // The avatar stands in while the camera is off or its first track has not arrived.
    this.root.classList.toggle('video-off', this.videoMuted || !this.hasVideo);
    this.describe();
  }

  setSpeaking(on) {
    this.speaking = on;
    this.root.classList.toggle('speaking', on);
    this.describe();
  }

  setHand(raised) {
    this.handRaised = raised;
    this.handBadge.hidden = !raised;
    this.describe();
  }

  /** The tile's accessible name: who it is and what a sighted person sees on it. */
  describe() {
    const states = [];
    if (!this.micBadge.hidden) states.push('muted');
    if (this.videoMuted || !this.hasVideo) states.push('camera off');
    if (this.speaking) states.push('speaking');
    if (this.handRaised) states.push('hand raised');
    this.root.setAttribute('aria-label', states.length ? `${this.label}: ${states.join(', ')}` : this.label);
  }

  refreshScreen() {
    const show = this.screenOn && Boolean(this.screenTrack);
    if (show && !this.screen) {
      this.screen = el('figure', 'tile tile-screen');
      this.screen.dataset.screenOf = String(this.userId);
      this.screenVideo = el('video');
      this.screenVideo.autoplay = true;
      this.screenVideo.playsInline = true;
      this.screenVideo.muted = true;
      const caption = el('figcaption', 'tile-caption');
      caption.append(el('span', 'tile-name', `${this.displayName}'s screen`));
      this.screen.setAttribute('aria-label', `${this.displayName}'s shared screen`);
      this.screen.append(this.screenVideo, caption);
      this.view.grid.prepend(this.screen);
    }
    if (this.screen) {
      if (show) {
        if (attach(this.screenVideo, this.screenTrack)) this.screenVideo.play().catch(() => {});
      } else {
        this.screen.remove();
        this.screen = null;
      }
    }
  }

  remove() {
    this.root.remove();
    if (this.screen) this.screen.remove();
  }
}

export class RoomView {
  constructor(root, me) {
    this.root = root;
    this.me = me;
    this.grid = root.querySelector('[data-grid]');
    this.status = root.querySelector('[data-status]');
    this.tiles = new Map();
    this.chatList = root.querySelector('[data-chat-list]');
    this.chatError = root.querySelector('[data-chat-error]');
    this.handsList = root.querySelector('[data-hands-list]');
    this.handsEmpty = root.querySelector('[data-hands-empty]');
    this.clearHands = root.querySelector('[data-clear-hands]');
    this.toasts = root.querySelector('[data-toasts]');
    this.announcer = new Announcer(root.querySelector('[data-announcer]'));
    this.speaker = null;
    this.speakerTimer = null;
    this.handQueue = [];
  }

  /** Read `text` out politely (the live region); nothing is shown. */
  announce(text) {
    this.announcer.say(text);
  }

  /** Focus `node` (made focusable for scripts only when it is not already). */
  focus(node) {
    if (!node) return;
    if (!node.matches('a[href], button, input, textarea, select, [tabindex]')) node.tabIndex = -1;
    node.focus();
  }

  /** The first control of the call's toolbar that works: where focus lands in the room. */
  firstControl() {
    return [...this.root.querySelectorAll('.room-controls .ctl')].find((b) => !b.disabled) || null;
  }

  q(selector) {
    return this.root.querySelector(selector);
  }

  setStatus(text, kind = 'info') {
    this.status.textContent = text;
    this.status.dataset.kind = kind;
  }

  // -- lobby ---------------------------------------------------------------------------

  /** The lobby's preview and its note on what the devices gave (`problem`: a DeviceProblem or null). */
  showDevices({ audio, camera }, problem) {
    const note = this.q('[data-device-note]');
    if (problem) {
      // Denied or missing devices: join anyway, as a listener who can chat.
      note.textContent = problem === DeviceProblem.BLOCKED
        ? 'Camera and microphone are blocked for this site: you will join as a listener. Allow them in your browser settings to be seen and heard.'
        : 'No camera or microphone found: you will join as a listener.';
      note.dataset.kind = 'warning';
    }
    if (camera) {
      this.q('[data-lobby-video]').srcObject = new MediaStream([camera]);
      note.textContent = audio ? 'Camera and microphone are ready.' : 'Camera ready; no microphone found.';
    } else if (audio) {
      note.textContent ||= 'Microphone ready; no camera found.';
    }
  }

  setJoinEnabled(enabled) {
    const button = this.q('[data-join]');
    if (button) button.disabled = !enabled;
  }

  /** The mentor opened the room: the waiting lobby becomes a plain one. */
  showRoomOpen() {
    this.q('[data-start-session]')?.remove();
    this.q('[data-waiting-note]')?.remove();
    this.setStatus('The room is open', 'ok');
  }

  showStage() {
    this.q('[data-lobby]').hidden = true;
    this.q('[data-stage]').hidden = false;
    // The Join button just vanished: focus goes on, to the call's controls.
    this.focus(this.firstControl());
  }

  // -- participants ---------------------------------------------------------------------

  upsert(participant, isSelf = false) {
    let tile = this.tiles.get(participant.user_id);
    if (!tile) {
      tile = new Tile(this, participant, isSelf);
      tile.setHand(this.handQueue.includes(participant.user_id));
      this.tiles.set(participant.user_id, tile);
      // The mentor first, then everyone in order of arrival; yourself right after the mentor.
      if (participant.role === 'mentor') this.grid.prepend(tile.root);
      else this.grid.append(tile.root);
    } else {
      tile.update(participant);
    }
    this.grid.dataset.count = String(this.tiles.size);
    return tile;
  }

  remove(userId) {
    const tile = this.tiles.get(userId);
    if (!tile) return;
    // Focus was on this tile's own buttons (the mentor removing someone): keep it in the room.
    const hadFocus = tile.root.contains(document.activeElement);
    tile.remove();
    if (hadFocus) this.focus(this.firstControl());
    if (this.speaker === userId) this.speaker = null;
    this.tiles.delete(userId);
    this.grid.dataset.count = String(this.tiles.size);
  }

  removeOthers() {
    for (const userId of [...this.tiles.keys()]) if (userId !== this.me.id) this.remove(userId);
  }

  setTracks(userId, tracks) {
    const tile = this.tiles.get(userId);
    if (tile) tile.setTracks(tracks);
  }

  setActiveSpeaker(userId) {
    if (this.speaker !== null) this.tiles.get(this.speaker)?.setSpeaking(false);
    this.speaker = userId;
    this.tiles.get(userId)?.setSpeaking(true);
    clearTimeout(this.speakerTimer);
    if (userId === null || userId === undefined || userId === this.me.id) return;
    this.speakerTimer = setTimeout(() => {
      const tile = this.tiles.get(userId);
      if (this.speaker === userId && tile) {
        this.announcer.sayAtMost('speaker', SPEAKER_GAP_MS, `${tile.displayName} is speaking`);
      }
    }, SPEAKER_SETTLE_MS);
  }

  setHands(queue, nameOf) {
    this.handQueue = queue;
    this.handsList.replaceChildren();
    for (const tile of this.tiles.values()) tile.setHand(queue.includes(tile.userId));
    queue.forEach((userId) => {
      this.handsList.append(el('li', '', nameOf(userId)));
    });
    this.handsEmpty.hidden = queue.length > 0;
    if (this.clearHands) this.clearHands.hidden = queue.length === 0;
  }

  // -- controls ------------------------------------------------------------------------

  setToggle(name, on, labels, disabled = false) {
    const button = this.q(`[data-toggle-${name}]`);
    button.setAttribute('aria-pressed', String(on));
    button.querySelector('[data-label]').textContent = on ? labels[0] : labels[1];
    button.disabled = disabled;
  }

  // -- chat ----------------------------------------------------------------------------

  clearChat() {
    this.chatList.replaceChildren();
  }

  addChat(message) {
    const item = el('li', 'chat-item');
    if (message.user_id === this.me.id) item.classList.add('mine');
    const head = el('div', 'chat-head');
    head.append(el('strong', '', message.display_name || 'Someone'));
    const when = new Date(message.created_at);
    if (!Number.isNaN(when.getTime())) {
      const time = el('time', 'meta', when.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }));
      time.dateTime = when.toISOString();
      head.append(time);
    }
    item.append(head, el('p', 'chat-text', message.text));
    this.chatList.append(item);
    this.chatList.scrollTop = this.chatList.scrollHeight;
  }

  setChatError(text) {
    this.chatError.textContent = text || '';
    this.chatError.hidden = !text;
  }

  // -- notices -------------------------------------------------------------------------

  toast(text, kind = 'info') {
    const item = el('div', `toast toast-${kind}`, text);
    this.toasts.append(item);
    setTimeout(() => item.remove(), 6000);
  }

  soundBlocked() {
    if (this.q('[data-enable-sound]')) return;
    const button = el('button', 'btn btn-primary btn-sm', 'Turn on sound');
    button.type = 'button';
    button.dataset.enableSound = '';
    button.addEventListener('click', () => {
      for (const tile of this.tiles.values()) tile.audio.play().catch(() => {});
      button.remove();
    });
    this.toasts.append(button);
  }

  showEnded(title, reason) {
    this.q('[data-lobby]').hidden = true;
    this.q('[data-stage]').hidden = true;
    const ended = this.q('[data-ended]');
    ended.querySelector('[data-ended-title]').textContent = title;
    ended.querySelector('[data-ended-reason]').textContent = reason;
    ended.hidden = false;
    this.setStatus(title, 'ended');
    clearTimeout(this.speakerTimer);
    // The controls are gone: focus goes to the end screen's heading, which says why.
    this.focus(ended.querySelector('h2'));
  }

  /** The end screen after Leave, with a way back in. */
  showLeft() {
    this.showEnded('You left the room', 'You can rejoin while the session is live.');
    const rejoin = el('a', 'btn btn-ghost', 'Rejoin');
    rejoin.href = window.location.pathname;
    this.q('[data-ended] .room-ended-actions').prepend(rejoin);
  }
}
