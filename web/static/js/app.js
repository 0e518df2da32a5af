// Small progressive enhancements for every page (CSP: script-src 'self', so no inline code).
// - mobile navigation toggle
// - confirm() before destructive form posts marked with data-confirm
// - <time data-local-time> rendered in the viewer's time zone
// - forms with local times (data-tz-form) get the browser's IANA zone name in their zone
//   field when the server asks (data-tz-detect); the server converts with that zone's rules
//   for the chosen date (control/timezones.py), so a change of daylight-saving time between
//   today and the session's date does not shift it
// - a form the server sent back with errors puts focus on its first invalid field, so a
//   screen reader reads that field and (aria-describedby) its error at once
// - the profile image form posts with the CSRF header (the CSRF middleware reads the
//   token from the header for multipart bodies), then reloads the page it names

import { browserTimeZone, csrfToken, localizeTimes } from './util.js';

// Other modules used to import these from here; util.js is their home now.
export { csrfToken, localizeTimes };

function setupNav() {
  const toggle = document.querySelector('[data-nav-toggle]');
  const nav = document.getElementById('site-nav');
  if (!toggle || !nav) return;
  toggle.addEventListener('click', () => {
    const open = nav.classList.toggle('open');
    toggle.setAttribute('aria-expanded', String(open));
  });
}

function setupConfirm() {
  document.addEventListener('submit', (event) => {
    const form = event.target;
    if (form instanceof HTMLFormElement && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
      event.preventDefault();
    }
  });
}

function setupTimezoneForms() {
  const zone = browserTimeZone();
  if (!zone) return;
  document.querySelectorAll('[data-tz-form] select[data-tz-name][data-tz-detect]').forEach((select) => {
    // A name the server's list lacks (a legacy alias some browsers report) is added as it
    // is: the server accepts any zone it knows and says so if it does not.
    if (![...select.options].some((option) => option.value === zone)) {
      select.add(new Option(zone.replaceAll('_', ' '), zone));
    }
    select.value = zone;
  });
}

function setupUploads() {
  document.querySelectorAll('form[data-upload-form]').forEach((form) => {
    // Without this script the form posts as it is (its first field carries the CSRF token);
    // with it, a failure is shown next to the field instead of on a new page.
    const problem = form.querySelector('[data-upload-error]');
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const button = form.querySelector('button[type="submit"]');
      if (button) button.disabled = true;
      if (problem) problem.hidden = true;
      try {
        // 'manual': the handler answers with a redirect that carries the flash message in a
        // cookie; following it inside fetch would use the message up before the page shows it.
        const response = await fetch(form.action, {
          method: 'POST',
          body: new FormData(form),
          headers: { 'X-CSRF-Token': csrfToken() },
          credentials: 'same-origin',
          redirect: 'manual',
        });
        if (response.type === 'opaqueredirect' || response.ok) {
          window.location.assign(form.dataset.uploadForm || window.location.pathname);
          return;
        }
        throw new Error(response.status === 413 ? 'That file is too large.' : `The server answered ${response.status}.`);
      } catch (err) {
        if (button) button.disabled = false;
        if (problem) {
          problem.textContent = `Upload failed: ${err instanceof TypeError ? 'check your connection and try again.' : err.message}`;
          problem.hidden = false;
        }
      }
    });
  });
}

function focusFirstError() {
  const invalid = document.querySelector('main [aria-invalid="true"]');
  if (invalid instanceof HTMLElement) invalid.focus();
}

// This module can be instantiated more than once on a page: base.html loads it with a
// cache-busting ?v= query and a module importing './app.js' gets a second copy. Wiring the
// listeners twice would toggle the menu twice per click and ask every confirm() twice.
if (!document.documentElement.hasAttribute('data-app-wired')) {
  document.documentElement.setAttribute('data-app-wired', '');
  setupNav();
  setupConfirm();
  localizeTimes();
  setupTimezoneForms();
  setupUploads();
  focusFirstError();
}
