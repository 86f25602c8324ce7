"""On-demand benchmarks (not tests): each prints ratios against a baseline measured in the same run."""
