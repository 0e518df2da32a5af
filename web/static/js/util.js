// Helpers shared by the page scripts. No side effects: safe to import from anywhere.

export function csrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  if (meta && meta.content) return meta.content;
  const match = document.cookie.match(/(?:^|;\s*)peerlearn_csrf=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : '';
}

const timeOptions = {
  weekday: 'short', day: 'numeric', month: 'short', year: 'numeric', hour: '2-digit', minute: '2-digit',
};
const formats = new Map();

// The signed-in user's zone (users.timezone, on <html data-timezone>); none for visitors.
export function userTimeZone() {
  return document.documentElement.dataset.timezone || '';
}

// The browser's IANA zone name (e.g. "Europe/Berlin"); '' when the browser does not say.
export function browserTimeZone() {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || '';
  } catch {
    return '';
  }
}

function formatFor(zone) {
  if (!formats.has(zone)) {
    let format;
    try {
      format = new Intl.DateTimeFormat(undefined, zone ? { ...timeOptions, timeZone: zone, timeZoneName: 'short' } : timeOptions);
    } catch {
      // A zone the server knows but this browser's ICU does not: fall back to the local zone.
      format = new Intl.DateTimeFormat(undefined, timeOptions);
    }
    formats.set(zone, format);
  }
  return formats.get(zone);
}

// <time data-local-time> elements (pages for visitors, times added by scripts) get their
// text in the user's zone, or the browser's local zone for visitors. Times the server
// rendered in the user's zone (<time data-zone>) are left as they are.
export function localizeTimes(root = document) {
  const format = formatFor(userTimeZone());
  root.querySelectorAll('time[data-local-time]').forEach((el) => {
    const when = new Date(el.getAttribute('datetime'));
    if (!Number.isNaN(when.getTime())) {
      el.textContent = format.format(when);
      el.title = when.toISOString();
    }
  });
}
