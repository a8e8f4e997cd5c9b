"""What a person looks at: the HTML report, figures, Pareto fronts and the Optuna dashboard."""
