"""The paper's claims as tests: each claim's text, its test on a sweep's records, verdicts with
Holm-adjusted intervals, and the reproduction tables."""
