"""The iroh transport: endpoints, node keys, tickets, framed streams, the passphrase handshake.

Modules: `endpoint` (open_endpoint, PeerEndpoint, PeerConnection, ALPN), `streams` (FrameReader,
FrameWriter, FramedStream), `handshake` (HandshakeKey, authenticate, FailureLimiter), `node_key`
(NodeIdentity), `tickets` (ticket files), `address` (EndpointAddress), `fastwrite` (the bindings'
send-copy fix), `errors`.
"""
