"""Everything that runs untrusted code: the Backend protocol, Docker / bubblewrap / unsafe, limits, GPUs."""
