"""Performance benchmarks of the SSM layers, models and data loaders.

- `command`: `python -m harness.bench` (kernel, layer and model suites; CSV and figure out).
- `steps`: the timed steps (kernel generation, layer forward+backward, training step).
- `timing`: CUDA-event / wall-clock timing and peak memory of one step.
- `floor`: the FFT-convolution floor (an SSM layer whose kernel is free).
- `curve`: `ssm-bench bench curve`, bf16 against fp32 speed and loss curve.
- `data`: `ssm-bench bench data`, data-loader throughput of a task.
- `sweep`: `python -m harness.bench.sweep`, a local-launcher sweep against in-process runs.
- `gpu`: `python -m harness.bench.gpu`, the prepared check of a GPU machine (kernel tests on the
  GPU, layer suite, S4-LegS model step against the floor).
"""
