"""Evaluation: the eval set, generation and scoring (pass@k with intervals), think statistics, the comparison report, the retraining decision."""
