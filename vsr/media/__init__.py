"""Media I/O: probing, decoding, encoding and stream copy, all through PyAV."""
