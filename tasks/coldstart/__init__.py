"""The cold-start set: insertion sites for inline thoughts, annotation, and verification that the stripped code still passes."""
