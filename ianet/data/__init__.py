"""Data: triplet lists, datasets and the synthetic video salient-object generator."""
