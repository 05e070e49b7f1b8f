"""Site-to-site federation: TLS material, peers, wire protocol, blob transfer.

See docs/federation.md for the APIs and how they fit together.
"""
