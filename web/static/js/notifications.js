// Header notifications: unread badge + dropdown, live over /ws/notifications/.
// Server messages: {"type":"notification","notification":{id,title,message,type,link,created_at},"unread":n}
// and {"type":"unread","count":n}. Reconnects with exponential backoff (1 s .. 30 s).
import { csrfToken, localizeTimes } from './util.js';

const root = document.querySelector('[data-notifications]');

function safeLink(link) {
  // Only same-site paths: a notification can never send the user elsewhere.
  return typeof link === 'string' && link.startsWith('/') && !link.startsWith('//') ? link : '/notifications/';
}

function setup(el) {
  const badge = el.querySelector('[data-notif-badge]');
  const toggle = el.querySelector('[data-notif-toggle]');
  const panel = el.querySelector('[data-notif-panel]');
  const list = el.querySelector('[data-notif-list]');
  const markAll = el.querySelector('[data-notif-mark-all]');

  function setUnread(count, bump = false) {
    const n = Math.max(0, Number(count) || 0);
    badge.textContent = n > 99 ? '99+' : String(n);
    badge.hidden = n === 0;
    el.dataset.unread = String(n);
    if (bump && n > 0) {
      badge.classList.remove('bump');
      void badge.offsetWidth; // restart the animation
      badge.classList.add('bump');
    }
  }

  function prepend(note) {
    const empty = list.querySelector('[data-notif-empty]');
    if (empty) empty.remove();
    const li = document.createElement('li');
    li.className = `notif-item unread notif-${note.type || 'info'}`;
    li.dataset.id = String(note.id);
    const a = document.createElement('a');
    a.href = safeLink(note.link);
    const title = document.createElement('strong');
    title.textContent = note.title || '';
    const message = document.createElement('span');
    message.textContent = note.message || '';
    a.append(title, message);
    if (note.created_at) {
      const time = document.createElement('time');
      time.setAttribute('datetime', note.created_at);
      time.dataset.localTime = '';
      a.append(time);
    }
    li.append(a);
    list.prepend(li);
    while (list.children.length > 8) list.lastElementChild.remove();
    localizeTimes(li);
  }

  async function markRead(body) {
    try {
      const response = await fetch('/api/notifications/mark-read/', {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrfToken() },
        body: JSON.stringify(body),
      });
      if (response.ok) {
        const data = await response.json();
        if (typeof data.unread === 'number') setUnread(data.unread);
      }
    } catch (err) {
      // Offline: the badge is corrected by the next WebSocket message.
    }
  }

  function open(show) {
    panel.hidden = !show;
    toggle.setAttribute('aria-expanded', String(show));
    if (show) {
      const first = panel.querySelector('a, button');
      if (first) first.focus();
    }
  }

  toggle.addEventListener('click', () => open(panel.hidden));
  document.addEventListener('click', (event) => {
    if (!panel.hidden && !el.contains(event.target)) open(false);
  });
  el.addEventListener('keydown', (event) => {
    if (event.key === 'Escape' && !panel.hidden) {
      open(false);
      toggle.focus();
    }
  });
  list.addEventListener('click', (event) => {
    const item = event.target.closest('.notif-item.unread');
    if (item && item.dataset.id) {
      item.classList.remove('unread');
      markRead({ ids: [Number(item.dataset.id)] });
    }
  });
  markAll.addEventListener('click', () => {
    list.querySelectorAll('.notif-item.unread').forEach((item) => item.classList.remove('unread'));
    setUnread(0);
    markRead({ all: true });
  });

  let delay = 1000;
  let socket = null;
  function connect() {
    const scheme = window.location.protocol === 'https:' ? 'wss:' : 'ws:';
    socket = new WebSocket(`${scheme}//${window.location.host}${el.dataset.wsPath || '/ws/notifications/'}`);
    socket.addEventListener('open', () => {
      delay = 1000;
      el.dataset.live = 'connected';
    });
    socket.addEventListener('message', (event) => {
      let data;
      try { data = JSON.parse(event.data); } catch (err) { return; }
      if (data.type === 'notification' && data.notification) {
        prepend(data.notification);
        if (typeof data.unread === 'number') setUnread(data.unread, true);
      } else if (data.type === 'unread') {
        setUnread(data.count);
      }
    });
    socket.addEventListener('close', (event) => {
      el.dataset.live = 'disconnected';
      // 4401/4403: not signed in any more; reconnecting would only be refused again.
      if (event.code === 4401 || event.code === 4403) return;
      const wait = delay + Math.random() * 500;
      delay = Math.min(delay * 2, 30000);
      window.setTimeout(connect, wait);
    });
  }
  setUnread(el.querySelector('[data-notif-badge]').textContent);
  connect();
}

if (root) setup(root);
