"""Long-running work over a study: AI precompute, simulated readers, the demo study."""
