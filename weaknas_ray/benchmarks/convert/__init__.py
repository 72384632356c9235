"""Official and published benchmark file formats -> the columns the benchmark loaders cache (one module per format family)."""
