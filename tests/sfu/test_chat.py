"""Chat: data-channel relay, persistence hook, limits, WebSocket fallback, history."""

from __future__ import annotations

import json

from peerlearn_sfu import RoomHooks


class RecordingHooks(RoomHooks):
    def __init__(self) -> None:
        super().__init__()
        self.persisted: list[tuple[int, str, str]] = []

    async def on_chat(self, user_id: int, display_name: str, text: str) -> dict:
        self.persisted.append((user_id, display_name, text))
        return await super().on_chat(user_id, display_name, text)


def dc_chats(client) -> list[dict]:
    return [json.loads(m)["message"] for m in client.datachannel_messages]


async def test_chat_over_data_channel_is_relayed_and_persisted(make_client):
    hooks = RecordingHooks()
    alice = await make_client(1, hooks=hooks).join()
    bob = await make_client(2, hooks=hooks).join()
    await alice.publish()
    await bob.publish()
    await alice.wait_for(lambda: alice.chat.readyState == "open")
    await bob.wait_for(lambda: bob.participant.chat_channel is not None)
    await bob.wait_for(lambda: bob.participant.chat_channel.readyState == "open")

    alice.chat.send(json.dumps({"type": "chat", "text": "<b>hello</b>"}))
    await bob.wait_for(lambda: dc_chats(bob), timeout=5)
    message = dc_chats(bob)[0]
    assert message["text"] == "<b>hello</b>"  # plain text, unescaped: clients use textContent
    assert message["user_id"] == 1 and message["display_name"] == "user1" and message["id"]
    assert hooks.persisted == [(1, "user1", "<b>hello</b>")]
    await alice.wait_for(lambda: dc_chats(alice), timeout=5)  # echo carries the stored id


async def test_limits_and_websocket_fallback(make_client):
    hooks = RecordingHooks()
    alice = await make_client(1, hooks=hooks).join()
    bob = await make_client(2, hooks=hooks).join()  # no publish PC: no data channel

    await alice.send({"type": "chat", "text": "x" * 2001})
    error = await alice.wait_message("error", code="chat_too_long")
    assert error["message"]
    assert not bob.of_type("error")

    for i in range(5):
        await alice.send({"type": "chat", "text": f"m{i}"})
    await alice.send({"type": "chat", "text": "one too many"})
    await alice.wait_message("error", code="rate_limited")
    assert [m["message"]["text"] for m in bob.of_type("chat")] == [f"m{i}" for i in range(5)]
    assert not bob.of_type("error")
    assert len(hooks.persisted) == 5

    carol = await make_client(3, hooks=hooks).join()
    history = carol.of_type("chat_history")[0]["messages"]
    assert [m["text"] for m in history] == [f"m{i}" for i in range(5)]
