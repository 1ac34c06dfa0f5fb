"""The per-row trace layer as it was before the columnar rewrite (issue 9), kept verbatim as the
oracle the columnar code is compared with: same answers on every real log and synthetic session."""
