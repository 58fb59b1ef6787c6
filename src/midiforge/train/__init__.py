"""The one trainer for every model family, and its checkpoints."""
