"""igcbench studies: Ray Tune schedules evaluations of designs that Optuna proposes.

``python studies/run.py --preset smoke`` runs a sweep; docs/studies.md describes the
command, the presets, the run directory and how a sweep survives crashes. Importing this
package imports neither Ray nor torch; ``studies.sweep`` (Ray) is imported only to sweep.
"""
