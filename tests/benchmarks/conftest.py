"""The benchmarks start servers and drive load for minutes: never part of a pytest run."""

collect_ignore_glob = ["*"]
