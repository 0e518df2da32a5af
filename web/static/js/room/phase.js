// Where the room client is; `RoomClient.phase` only ever holds one of these.
//
//   WAITING ──(mentor starts)──> LOBBY ──(Join now)──> CONNECTING ──(joined)──> LIVE
//   LIVE / CONNECTING ──(socket lost)──> RECONNECTING ──(retry)──> RECONNECTING ──(joined)──> LIVE
//   any ──(ended, removed, refused for good)──> ENDED;  LIVE ──(Leave)──> LEFT
//
// ENDED and LEFT are final: nothing reconnects from them. The values are what the
// browser tests print when a room step fails (tests/e2e/room_helpers.py).

export const Phase = Object.freeze({
  WAITING: 'waiting', // the session has not started; the lobby polls until it does
  LOBBY: 'lobby', // the room is open and the devices are being (or have been) asked for
  CONNECTING: 'connecting', // first signaling socket open, "join_session" not yet answered
  RECONNECTING: 'reconnecting', // the connection dropped; a new socket follows after a backoff
  LIVE: 'live', // joined: the media legs are up or coming up
  ENDED: 'ended', // the session ended, or we were removed or refused for good
  LEFT: 'left', // we pressed Leave
});
