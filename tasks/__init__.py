"""The stages of both pipelines, grouped by where they sit in them; shared pieces at this level."""
