"""Corpus scanning and cleaning, encodings, and the memory-mapped datasets built from them."""
