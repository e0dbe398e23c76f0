"""Models: descriptors, architectures, weights and the processors the pipeline runs."""
