"""Load and latency benchmarks of the Unpuzzle suite (see bench/README.md)."""
