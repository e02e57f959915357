"""Equal-budget tuning: every method gets `tune.trials` trials per outer fold, scored on that fold's inner validation.

`space` builds each method's search space (its declared one plus the experiment's `tune.space`), `sampling`
draws a trial's values with Optuna from the trials before it, `studies` turns trials into ordinary runs (own run
id, record, resume) and finds the next trial of every study from the records on disk, so a killed sweep resumes to
the same trials.
"""
