// This browser's own media: the camera and microphone asked for in the lobby, and the
// screen while it is shared. Nothing here knows about the connection: the room hands
// these tracks to its PublishLeg and tells the others what changed.

const CAMERA = { width: { ideal: 640 }, height: { ideal: 360 }, frameRate: { ideal: 20, max: 24 } };
const SCREEN = { video: { frameRate: { max: 15 } }, audio: false };

/** Why the camera and microphone could not both be had (docs/sfu.md, "The browser side"). */
export const DeviceProblem = Object.freeze({
  BLOCKED: 'blocked', // the user or the browser's settings refused them
  MISSING: 'missing', // no such device, or it could not be opened
});

export class LocalMedia {
  constructor() {
    this.audio = null;
    this.camera = null;
    this.screen = null;
    this.micOn = false;
    this.camOn = false;
  }

  /**
   * Ask for the camera and microphone, falling back to the microphone alone.
   * @returns {Promise<string|null>} a DeviceProblem, or null when both were granted
   */
  async open() {
    let stream = null;
    let problem = null;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: CAMERA });
    } catch (err) {
      problem = err && err.name === 'NotAllowedError' ? DeviceProblem.BLOCKED : DeviceProblem.MISSING;
      try { // a microphone alone is still worth using
        stream = await navigator.mediaDevices.getUserMedia({ audio: true });
      } catch {
        stream = null;
      }
    }
    this.audio = stream?.getAudioTracks()[0] || null;
    this.camera = stream?.getVideoTracks()[0] || null;
    this.micOn = Boolean(this.audio);
    this.camOn = Boolean(this.camera);
    return problem;
  }

  /** The tracks to publish, in the PublishLeg's order; any may be null. */
  get tracks() {
    return { audio: this.audio, camera: this.camera, screen: this.screen };
  }

  /** This participant's state as the protocol's `participant_state` carries it. */
  get state() {
    return {
      audio_muted: !this.micOn,
      video_muted: !this.camOn,
      screen_sharing: Boolean(this.screen),
    };
  }

  static get canShareScreen() {
    return Boolean(navigator.mediaDevices?.getDisplayMedia);
  }

  /** Mute or unmute; false (and nothing changes) without a microphone. */
  setMic(on) {
    if (!this.audio) return false;
    this.micOn = on;
    this.audio.enabled = on;
    return true;
  }

  /** Start or stop the camera; false (and nothing changes) without one. */
  setCamera(on) {
    if (!this.camera) return false;
    this.camOn = on;
    // A disabled track sends black frames at a trickle: cheap, and no renegotiation.
    this.camera.enabled = on;
    return true;
  }

  /**
   * Ask for a screen to share. `onEnded` runs when the browser's own "Stop sharing" ends it.
   * @returns {Promise<MediaStreamTrack|null>} null when the user closed the picker
   */
  async startScreen(onEnded) {
    let stream;
    try {
      stream = await navigator.mediaDevices.getDisplayMedia(SCREEN);
    } catch {
      return null; // the user closed the picker
    }
    const track = stream.getVideoTracks()[0];
    track.contentHint = 'detail';
    track.addEventListener('ended', onEnded);
    this.screen = track;
    return track;
  }

  /** Stop sharing; false if nothing was shared. */
  stopScreen() {
    const track = this.screen;
    if (!track) return false;
    this.screen = null;
    track.stop();
    return true;
  }

  /** Release every device (the camera light goes off). */
  stop() {
    for (const track of [this.audio, this.camera, this.screen]) track?.stop();
  }
}
