"""The GSC archives: sources and checksums, resumable transfer, safe extraction, official test."""
