"""Network architectures in the BasicSR / Real-ESRGAN state-dict layout."""
