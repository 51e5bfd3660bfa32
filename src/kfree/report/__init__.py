"""Reports people look at: cluster montages, plots, an HTML page per run."""
