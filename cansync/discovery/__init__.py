"""Finding peers: pkarr rendezvous, peer exchange, LAN announcements, ticket files."""
