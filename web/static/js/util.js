// Helpers shared by the page scripts. No side effects: safe to import from anywhere.

export function csrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  if (meta && meta.content) return meta.content;
  const match = document.cookie.match(/(?:^|;\s*)peerlearn_csrf=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : '';
}

const timeFormat = new Intl.DateTimeFormat(undefined, {
  weekday: 'short', day: 'numeric', month: 'short', year: 'numeric', hour: '2-digit', minute: '2-digit',
});

export function localizeTimes(root = document) {
  root.querySelectorAll('time[data-local-time]').forEach((el) => {
    const when = new Date(el.getAttribute('datetime'));
    if (!Number.isNaN(when.getTime())) {
      el.textContent = timeFormat.format(when);
      el.title = when.toISOString();
    }
  });
}
