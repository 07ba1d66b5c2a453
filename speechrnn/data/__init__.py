"""Data: GSC download and extraction, indexing, the decode-once cache, the synthetic corpus."""
