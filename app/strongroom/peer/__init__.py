"""The peer protocol: phones and the box over Noise-encrypted WebSocket sessions.

frames (CBOR frame codec), handshake (selector, prologue, Noise set-up),
channel (frame fragments in transport messages), session (sans-I/O state
machine of one phone session), server (aiohttp glue: PeerService).
docs/protocol.md is the normative description.
"""
