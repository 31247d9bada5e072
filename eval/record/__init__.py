"""What is stored: the runs/ layout, metrics.json, the ledger, git history, the plot, the scratchpad."""
