"""The measuring engine: workloads, probes, the recorder, the backends, harness policies, bench."""
