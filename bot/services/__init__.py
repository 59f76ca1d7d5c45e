"""Domain rules. Nothing here imports telegram: handlers and jobs adapt to it."""
