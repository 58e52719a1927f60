"""Figure drawing shared by the report, the studies and the benchmarks: the paper style
(`style`) and the benchmark figure (`bench`). Imports no other part of the harness, so every
package that draws imports it downward."""
