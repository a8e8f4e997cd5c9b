"""Searches replayed on a benchmark table in simulated time: ASHA, the proposers, and their
reports."""
