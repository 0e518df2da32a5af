// The room's polite live region: what a screen reader reads out without moving focus
// (joins, leaves, raised hands for the mentor, the active speaker, new chat messages).
// Each announcement is a new line, so the same words twice are still read twice; only the
// last few lines are kept.

const KEEP = 10;

export class Announcer {
  constructor(region) {
    this.region = region;
    this.last = new Map(); // topic -> time of its last announcement
  }

  say(text) {
    if (!this.region || !text) return;
    const line = document.createElement('p');
    line.textContent = text;
    this.region.append(line);
    while (this.region.childElementCount > KEEP) this.region.firstElementChild.remove();
  }

  /** `say`, unless `topic` was announced less than `gapMs` ago (a chatty speaker switch). */
  sayAtMost(topic, gapMs, text) {
    const now = Date.now();
    if (now - (this.last.get(topic) ?? -Infinity) < gapMs) return false;
    this.last.set(topic, now);
    this.say(text);
    return true;
  }
}
