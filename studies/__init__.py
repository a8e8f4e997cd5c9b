"""igcbench studies: Ray Tune schedules evaluations of designs that Optuna proposes."""
