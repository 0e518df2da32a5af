// Firefox ESR in the PeerLearn room page over WebDriver BiDi (puppeteer-core):
//   node room.mjs BASE_URL SESSION_COOKIE_NAME TOKEN SESSION_ID OTHERS SECONDS
import puppeteer from 'puppeteer-core';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const [base, cookieName, token, sid, others, seconds] = process.argv.slice(2);
const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'peerlearn-ff-'));
const browser = await puppeteer.launch({
  browser: 'firefox',
  executablePath: '/usr/bin/firefox-esr',
  headless: true,
  userDataDir: profile,
  extraPrefsFirefox: {
    'media.navigator.streams.fake': true,
    'media.navigator.permission.disabled': true,
    'media.peerconnection.ice.loopback': true,
  },
  env: { ...process.env, MOZ_REMOTE_SETTINGS_DEVTOOLS: '1' },
});
const out = { decoded: [], errors: [] };
try {
  const page = await browser.newPage();
  page.on('console', (m) => { out.errors.push(m.type() + ': ' + m.text()); });
  const url = new URL(base);
  await browser.setCookie({ name: cookieName, value: token, domain: url.hostname, path: '/' });
  await page.goto(`${base}/sessions/${sid}/room`);
  await page.waitForFunction(() => {
    const b = [...document.querySelectorAll('button')].find((x) => x.textContent.trim() === 'Join now');
    return b && !b.disabled;
  }, { timeout: 20000, polling: 250 });
  await page.evaluate(() => [...document.querySelectorAll('button')].find((x) => x.textContent.trim() === 'Join now').click());
  await page.waitForFunction(() => document.querySelector('[data-status]')?.textContent === 'Connected', { timeout: 20000 });
  const deadline = Date.now() + Number(seconds) * 1000;
  while (Date.now() < deadline) {
    out.decoded = await page.evaluate(async () => {
      const room = window.peerlearnRoom;
      if (!room || !room.subscribe) return [];
      const report = await room.subscribe.pc.getStats();
      const res = [];
      report.forEach((s) => {
        if (s.type === 'inbound-rtp' && s.kind === 'video') res.push({ mid: s.mid, decoded: s.framesDecoded || 0 });
      });
      return res;
    });
    if (out.decoded.filter((s) => s.decoded > 30).length >= Number(others)) break;
    await new Promise((r) => setTimeout(r, 500));
  }
  out.ua = await page.evaluate(() => navigator.userAgent);
} catch (e) {
  out.errors.push(String(e));
  try {
    const pages = await browser.pages();
    out.url = pages[pages.length - 1].url();
    out.status = await pages[pages.length - 1].evaluate(() => ({
      status: document.querySelector('[data-status]')?.textContent,
      buttons: [...document.querySelectorAll('button')].map((b) => [b.textContent.trim(), b.disabled, b.hidden]),
      room: (() => {
        const room = window.peerlearnRoom;
        if (!room) return 'no room client';
        return {
          phase: room.phase,
          publish: room.publish && [room.publish.pc.connectionState, room.publish.pc.iceConnectionState, room.publish.pc.signalingState],
          subscribe: room.subscribe && [room.subscribe.pc.connectionState, room.subscribe.pc.signalingState],
          offer: room.publish && room.publish.pc.localDescription && room.publish.pc.localDescription.sdp,
        };
      })(),
    }));
  } catch (e2) { out.errors.push(String(e2)); }
} finally {
  console.log(JSON.stringify(out));
  await browser.close();
  fs.rmSync(profile, { recursive: true, force: true });
}
