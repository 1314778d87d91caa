"""GB/T 28181: the signalling service devices and lower platforms register to."""
