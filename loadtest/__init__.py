"""Throughput, CPU and memory benchmarks of shardproxy against nginx and HAProxy."""
