"""Lua scripts for keys one owner holds in Redis (room claims, job locks).

Each acts on ``KEYS[1]`` only while its value is still ``ARGV[1]`` (the owner's token or
node id): a holder whose key expired and was taken by another must never renew or delete
the new owner's key.
"""

from __future__ import annotations

#: ARGV[2] = the new TTL in ms. Returns 1 when renewed, 0 when the key is no longer ours.
RENEW_IF_OWNER = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
#: Returns 1 when deleted, 0 when the key is no longer ours.
RELEASE_IF_OWNER = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
