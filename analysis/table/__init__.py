"""The benchmark table: the Benchmark query API, releases, the table index, and the surrogate
that predicts designs a table does not hold."""
