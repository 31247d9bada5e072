"""Everything that runs untrusted code: container backends, limits and the time budget."""
