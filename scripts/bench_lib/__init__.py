"""The sections of scripts/bench, one module each."""
