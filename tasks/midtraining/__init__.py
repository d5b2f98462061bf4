"""Thinking Mid-training: the corpus with thoughts interleaved, verified and split into an SFT half and an RL half."""
