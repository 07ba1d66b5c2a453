"""Test support: tone corpora, a loopback HTTP server, tiny checkpoints, reference features."""
