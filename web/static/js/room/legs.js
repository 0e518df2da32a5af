// The two peer connections of a participant (docs/protocol.md, "Connections").
//
// publish: we offer once, with three sendonly m-lines in a fixed order (audio, camera,
//   screen) and the "chat" data channel. Turning the camera off or sharing the screen is
//   replaceTrack() plus a "mute" message, never a renegotiation.
// subscribe: only the server offers; we answer. Each offer names, per mid, whose track
//   it carries; m-lines are recycled, so the mapping is re-read after every offer.

function peerConnection(iceServers, forceRelay) {
  return new RTCPeerConnection({
    iceServers,
    bundlePolicy: 'max-bundle',
    iceTransportPolicy: forceRelay ? 'relay' : 'all',
  });
}

function trickle(pc, name, signal) {
  pc.addEventListener('icecandidate', (event) => {
    signal({ type: 'ice_candidate', pc: name, candidate: event.candidate ? event.candidate.toJSON() : null });
  });
}

// The camera as VP8 with three temporal layers (20 / 10 / 5 fps in one stream), where the
// browser can: the SFU then gives each subscriber the layers its link carries
// (docs/sfu.md, "Temporal layers"). Browsers do not list the modes they support
// (Chromium's capabilities carry no scalabilityModes), so ask and read back what was taken;
// elsewhere (Firefox) one layer. Screen share: always one layer.
function addCamera(pc) {
  try {
    const t = pc.addTransceiver('video', { direction: 'sendonly', sendEncodings: [{ scalabilityMode: 'L1T3' }] });
    const encodings = t.sender.getParameters().encodings || [];
    return [t, encodings.length && encodings[0].scalabilityMode === 'L1T3' ? 'L1T3' : 'L1T1'];
  } catch (err) {
    return [pc.addTransceiver('video', { direction: 'sendonly' }), 'L1T1'];
  }
}

export class PublishLeg {
  constructor(iceServers, signal, { forceRelay = false } = {}) {
    this.pc = peerConnection(iceServers, forceRelay);
    this.audio = this.pc.addTransceiver('audio', { direction: 'sendonly' });
    [this.camera, this.cameraLayers] = addCamera(this.pc);
    this.screen = this.pc.addTransceiver('video', { direction: 'sendonly' });
    this.chat = this.pc.createDataChannel('chat');
    trickle(this.pc, 'publish', signal);
  }

  /** Attach the local tracks (any may be null) and return the offer SDP. */
  async offer({ audio = null, camera = null, screen = null }) {
    await Promise.all([
      this.audio.sender.replaceTrack(audio),
      this.camera.sender.replaceTrack(camera),
      this.screen.sender.replaceTrack(screen),
    ]);
    await this.pc.setLocalDescription(await this.pc.createOffer());
    return this.pc.localDescription.sdp;
  }

  acceptAnswer(sdp) {
    return this.pc.setRemoteDescription({ type: 'answer', sdp });
  }

  setCamera(track) {
    return this.camera.sender.replaceTrack(track);
  }

  setScreen(track) {
    return this.screen.sender.replaceTrack(track);
  }

  close() {
    this.chat.close();
    this.pc.close();
  }
}

export class SubscribeLeg {
  /** @param {(mapped: Array<{user_id: number, kind: string, track: MediaStreamTrack}>) => void} onTracks */
  constructor(iceServers, signal, onTracks, { forceRelay = false } = {}) {
    this.pc = peerConnection(iceServers, forceRelay);
    this.signal = signal;
    this.onTracks = onTracks;
    this.queue = Promise.resolve();
    trickle(this.pc, 'subscribe', signal);
  }

  /** Answer a server offer; offers are applied strictly in arrival order. */
  handleOffer(sdp, tracks) {
    this.queue = this.queue.then(() => this.answer(sdp, tracks));
    return this.queue;
  }

  async answer(sdp, tracks) {
    if (this.pc.signalingState === 'closed') return;
    await this.pc.setRemoteDescription({ type: 'offer', sdp });
    await this.pc.setLocalDescription(await this.pc.createAnswer());
    this.signal({ type: 'answer', pc: 'subscribe', sdp: this.pc.localDescription.sdp });
    const byMid = new Map((tracks || []).map((t) => [String(t.mid), t]));
    const mapped = [];
    for (const transceiver of this.pc.getTransceivers()) {
      const entry = byMid.get(String(transceiver.mid));
      if (entry) mapped.push({ user_id: entry.user_id, kind: entry.kind, track: transceiver.receiver.track });
    }
    this.onTracks(mapped);
  }

  close() {
    this.pc.close();
  }
}
