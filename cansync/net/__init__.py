"""The iroh transport: endpoints, node keys, tickets, framed streams, the passphrase handshake."""
