"""Problems: sources in their published formats and the shipped wheels, loading and the train/eval split, filters, rejection-sampled solutions."""
