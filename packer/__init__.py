"""Packing: speech segments from the whole archive -> length-homogeneous batches under a padded budget."""
