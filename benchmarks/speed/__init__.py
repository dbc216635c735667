"""The speed suites: throughput against plain PyTorch loops, FLOPs, memmap RSS and fit scaling
(``python -m benchmarks.speed.run``; see docs/performance.md)."""
