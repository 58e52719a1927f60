"""Convolution kernels of the SSM layers.

- `naive`: the three core sums (Cauchy, Vandermonde, Markov response) as the papers define them,
  every term materialized: the float64 oracle of the tests.
- `blocked`: the same sums blocked in plain torch with bounded memory: the CPU path.
- `ops`: the same sums dispatched to fast paths where one applies; kernel modules call these.
- `params`: parameters shared by S4 and S4D (dt, Lambda, B, C), optimizer tags, system records.
- `dplr`: S4 (diagonal plus low rank, bilinear, Cauchy + Woodbury).
- `diagonal`: S4D (ZOH or bilinear, Vandermonde).
- `hope`: HOPE (Markov parameters sampled on the Moebius-warped circle).
"""
